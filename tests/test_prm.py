"""Tests for adacot.prm: step splitting, aggregation, the generative judge and the scoring table.

Fast tests use fixed scores and a scripted judge; the slow ones run the real bundled model as a
generative judge (vLLM and transformers) and through vLLM's pooling runner as a discriminative PRM.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import engine_params
from openai_fake_server import FakeOpenAIServer, Faults, judge_p_yes

from adacot.config import LevelsParams, Params, PrmParams, parse_params
from adacot.errors import StageFailure
from adacot.levels import aggregate_steps, assign_levels, attempt_scores, question_scores
from adacot.llm import ResponseCache
from adacot.llm.logprobs import yes_share
from adacot.llm.openai_backend import ApiFatalError
from adacot.prm import (
    SINGLE_PASS_FILL,
    GenerativeJudge,
    failing_attempts,
    judge_conversations,
    open_scorer,
    score_failures,
    single_pass_conversation,
    single_pass_prompt,
    split_steps,
)
from adacot.schemas import ATTEMPTS, PRM_SCORES, QUESTIONS, conform

PRM = PrmParams(
    kind="generative",
    backend="local",
    model="base",
    served_model=None,
    api={},
    max_steps=3,
    max_attempts=2,
    max_step_chars=40,
    judge="per_step",
    engine={},
)
SINGLE = PRM.model_copy(update={"judge": "single_pass"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("First add.\n\nThen multiply.\n\nSo \\boxed{6}.", ["First add.", "Then multiply.", "So \\boxed{6}."]),
        ("a = 1\nb = 2\nc = 3\nd = 4", ["b = 2", "c = 3", "d = 4"]),
        (
            "We add 2 and 3. That gives 5. So the answer is 5.",
            ["We add 2 and 3.", "That gives 5.", "So the answer is 5."],
        ),
        ("<think>\nscratch\n\nmore</think>\nOne.\n\nTwo.", ["One.", "Two."]),
        ("", []),
        ("   \n ", []),
        ("x" * 50, ["..." + "x" * 40]),
    ],
    ids=["paragraphs", "lines_last_three", "sentences", "reasoning_stripped", "empty", "blank", "long_step_cut"],
)
def test_split_steps(text: str, expected: list[str]) -> None:
    assert split_steps(text, PRM.max_steps, PRM.max_step_chars) == expected


@pytest.mark.parametrize(
    ("how", "expected"), [("min", 0.2), ("mean", 0.5), ("product", 0.8 * 0.5 * 0.2), ("last", 0.2)]
)
def test_aggregate(how: str, expected: float) -> None:
    assert aggregate_steps([0.8, 0.5, 0.2], how) == pytest.approx(expected)
    assert aggregate_steps([], how) == 0.0


def test_aggregate_unknown() -> None:
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate_steps([0.5], "max")


def test_yes_share() -> None:
    assert yes_share(0.3, 0.1) == pytest.approx(0.75)
    assert yes_share(0.0, 0.0) == 0.5


def test_judge_conversations_show_previous_steps() -> None:
    convs = judge_conversations("What is 2+3?", ["2+3=5", "So 5."])
    assert len(convs) == 2
    assert "(nothing yet)" in convs[0][1]["content"] and "Next step:\n2+3=5" in convs[0][1]["content"]
    assert "Solution so far:\n2+3=5" in convs[1][1]["content"] and "Next step:\nSo 5." in convs[1][1]["content"]
    assert convs[1][1]["content"].endswith("Answer Yes or No.")


class ScriptedJudge:
    """A model with ``yes_probability``: 0.9 for steps holding "=", else 0.2; counts what it was asked."""

    model_id = "judge@1"

    def __init__(self) -> None:
        self.asked = 0

    def yes_probability(self, conversations):
        self.asked += len(conversations)
        return [0.9 if "=" in c[-1]["content"].split("Next step:")[1] else 0.2 for c in conversations]


def _frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    questions = conform(
        pl.DataFrame(
            {
                "question_id": ["q1", "q2"],
                "source": ["synthetic"] * 2,
                "question": ["2+3?", "4*5?"],
                "gold": ["5", "20"],
                "generator_tier": [1, 1],
                "solution": [None, None],
            },
            schema=QUESTIONS,
        ),
        QUESTIONS,
        "q",
    )
    rows = [
        ("q1", 0, "2+3=5\n\nSo \\boxed{5}.", "correct"),
        ("q1", 1, "2+3=6\n\nSo \\boxed{6}.", "wrong"),
        ("q2", 0, "4*5=9\n\nguess", "wrong"),
        ("q2", 1, "", "no_answer"),
        ("q2", 2, "never scored: over max_attempts", "wrong"),
    ]
    attempts = pl.DataFrame(
        [
            {
                "question_id": q,
                "sample_index": i,
                "attempt": t,
                "status": s,
                "finish_reason": "stop",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "model_id": "m",
                "prompt_version": "v",
                "reasoning_tokens": 0,
                "latency_s": 0.0,
                "served_model": "",
                "error": None,
                "reason": "r",
                "extracted": None,
                "tests_passed": None,
                "tests_total": None,
            }
            for q, i, t, s in rows
        ]
    )
    return questions, conform(attempts, ATTEMPTS, "attempts")


def test_failing_attempts_caps_per_question() -> None:
    _, attempts = _frames()
    failed = failing_attempts(attempts, 2)
    assert list(zip(failed["question_id"], failed["sample_index"], strict=True)) == [("q1", 1), ("q2", 0), ("q2", 1)]


def test_score_failures_table_and_combination() -> None:
    questions, attempts = _frames()
    model = ScriptedJudge()
    table, metrics = score_failures(questions, attempts, GenerativeJudge(model), PRM)
    assert list(table.columns) == list(PRM_SCORES)
    assert model.asked == 4  # q1#1 two steps, q2#0 two steps, q2#1 none
    assert table.filter(pl.col("question_id") == "q2", pl.col("sample_index") == 1)["step_index"].to_list() == [None]
    cache = metrics.pop("cache")
    assert cache["misses"] == 4 and cache["hits"] == 0
    assert metrics == {
        "judge": "per_step",
        "grader": "generative:judge@1",
        "questions_scored": 2,
        "attempts_scored": 3,
        "steps_scored": 4,
        "attempts_without_steps": 1,
        "mean_step_score": pytest.approx(0.55),
        "undecided_steps": 0,
        "invalid_step_scores": 0,
        "invalid_examples": [],
    }
    per_attempt = attempt_scores(table, "mean")
    assert dict(
        zip(
            zip(per_attempt["question_id"], per_attempt["sample_index"], strict=True),
            per_attempt["attempt_score"],
            strict=True,
        )
    ) == {
        ("q1", 1): pytest.approx(0.55),
        ("q2", 0): pytest.approx(0.55),
        ("q2", 1): 0.0,
    }
    best = question_scores(table, "min", "best")
    assert dict(zip(best["question_id"], best["prm_score"], strict=True)) == {
        "q1": pytest.approx(0.2),
        "q2": pytest.approx(0.2),
    }
    mean = question_scores(table, "mean", "mean")
    assert dict(zip(mean["question_id"], mean["prm_score"], strict=True))["q2"] == pytest.approx(0.275)


def test_local_judge_answers_are_cached_so_reruns_judge_only_new_steps(tmp_path: Path) -> None:
    questions, attempts = _frames()
    model = ScriptedJudge()
    first, _ = score_failures(questions, attempts, GenerativeJudge(model, ResponseCache(tmp_path)), PRM)
    assert model.asked == 4
    again, metrics = score_failures(questions, attempts, GenerativeJudge(model, ResponseCache(tmp_path)), PRM)
    assert model.asked == 4 and metrics["cache"]["hits"] == 4  # a crash or a rerun judges nothing twice
    assert again.equals(first)
    # One more attempt per question is scored: only its steps go to the judge.
    more = PRM.model_copy(update={"max_attempts": 3})
    _, metrics = score_failures(questions, attempts, GenerativeJudge(model, ResponseCache(tmp_path)), more)
    assert model.asked == 4 + 1 and metrics["cache"]["hits"] == 4 and metrics["cache"]["misses"] == 1


def _api_params(params_raw: dict, url: str, **api: object) -> Params:
    raw = {
        **params_raw,
        "prm": {**params_raw["prm"], "backend": "openai", "served_model": "judge"},
        "api": {**params_raw["api"], "base_urls": ["http://127.0.0.1:9/v1"], "api_key_env": None},
        "student": {**params_raw["student"], "api": {}},
    }
    # The judge's own server, given as a role override: the top-level api points elsewhere.
    raw["prm"]["api"] = {
        "base_urls": [url],
        "max_retries": 1,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.02,
        "request_timeout_s": 5,
        **api,
    }
    return parse_params(raw)


def test_api_judge_reads_top_logprobs_through_the_cache(params_raw: dict, tmp_path: Path) -> None:
    questions, attempts = _frames()
    with FakeOpenAIServer(model="judge") as server:
        params = _api_params(params_raw, server.base_url)
        judge = open_scorer(params, "unused", tmp_path / "cache")
        # params.yaml asks for a single pass; a chat server returns no prompt logprobs: asked per step.
        assert params.prm.judge == "single_pass" and judge.mode == "per_step"
        assert isinstance(judge, GenerativeJudge) and judge.grader_id == "generative:openai:judge"
        table, metrics = score_failures(questions, attempts, judge, PRM)
        asked = server.answered
        # Each step's score is the server's P(Yes) for that judge prompt (every spelling of yes/no summed).
        expected = [
            judge_p_yes(conv[1]["content"])
            for q, steps in [("2+3?", ["2+3=6", "So \\boxed{6}."]), ("4*5?", ["4*5=9", "guess"])]
            for conv in judge_conversations(q, steps)
        ]
        assert table["step_score"].drop_nulls().to_list() == pytest.approx(expected)
        assert asked == 4 and metrics["cache"]["misses"] == 4 and metrics["api"]["requests_sent"] == 4
        assert metrics["judge"] == "per_step"

        again, metrics = score_failures(questions, attempts, open_scorer(params, "unused", tmp_path / "cache"), PRM)
        assert server.answered == asked  # a rerun pays for nothing
        assert metrics["cache"]["hits"] == 4
        assert again.equals(table)


def test_api_judge_needs_a_server_that_returns_logprobs(params_raw: dict, tmp_path: Path) -> None:
    questions, attempts = _frames()
    with FakeOpenAIServer(model="judge", logprobs=False) as server:
        judge = open_scorer(_api_params(params_raw, server.base_url), "unused", tmp_path / "cache")
        with pytest.raises(ApiFatalError, match="top_logprobs"):
            score_failures(questions, attempts, judge, PRM)


def test_api_judge_failures_stop_the_stage_and_a_rerun_asks_only_them(params_raw: dict, tmp_path: Path) -> None:
    questions, attempts = _frames()
    with FakeOpenAIServer(model="judge", faults=Faults(server_error=0.5), seed=1) as server:
        params = _api_params(params_raw, server.base_url, max_retries=0)
        with pytest.raises(RuntimeError, match="judge requests failed for good"):
            score_failures(questions, attempts, open_scorer(params, "unused", tmp_path / "cache"), PRM)
        answered = server.answered
        assert 0 < answered < 4
        server.faults = Faults()
        table, metrics = score_failures(questions, attempts, open_scorer(params, "unused", tmp_path / "cache"), PRM)
    assert metrics["cache"]["hits"] == answered and metrics["cache"]["misses"] == 4 - answered
    assert server.repeated_answers() == {}
    assert table["step_score"].drop_nulls().len() == 4


def test_generative_judge_needs_probabilities() -> None:
    with pytest.raises(TypeError, match="next-token probabilities"):
        GenerativeJudge(object())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_generative_judge_with_the_bundled_model(base_model: Path, backend: str) -> None:
    from adacot.llm import open_local_model

    model = open_local_model(base_model, engine_params(backend), seed=0)
    try:
        judge = GenerativeJudge(model)
        items = [("What is 2 + 3?", ["2 + 3 = 5.", "So the answer is 5."]), ("What is 4 * 5?", ["4 * 5 = 9."])]
        scores = judge.score(items)
        assert [len(s) for s in scores] == [2, 1]
        assert all(0.0 <= v <= 1.0 for row in scores for v in row)
        # The model puts real weight on Yes/No (not the 0.5 of "neither in the top 20") for some step.
        assert any(v != 0.5 for row in scores for v in row)
        assert judge.grader_id.startswith("generative:SmolLM2-135M-Instruct@")
    finally:
        model.close()


def _with_head(base_model: Path, folder: Path, fill: str) -> Path:
    """The bundled model with a classification head written next to its weights, so vLLM's pooling runner
    loads it instead of leaving the head uninitialised (which gave NaN scores now and then).

    ``fill``: ``seeded`` (small random weights from a fixed generator) or ``nan`` (a broken head).
    """
    import json

    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for item in base_model.iterdir():
        (folder / item.name).symlink_to(item)
    hidden = json.loads((base_model / "config.json").read_text())["hidden_size"]
    if fill == "seeded":
        head = torch.randn(2, hidden, generator=torch.Generator().manual_seed(0)) * 0.02
    else:
        head = torch.full((2, hidden), float("nan"))
    save_file({"score.weight": head.contiguous()}, str(folder / "score_head.safetensors"))
    return folder


@pytest.mark.slow
def test_discriminative_prm_through_vllm_pooling_runner(base_model: Path, tmp_path: Path) -> None:
    """The real pooling path on CPU with a seeded head: scores in [0, 1], the same on a second engine."""
    from adacot.llm.vllm_backend import VllmProcessRewardModel

    items = [("What is 2 + 3?", ["2 + 3 = 5.", "So 5."]), ("Q?", ["one step"])]
    model = _with_head(base_model, tmp_path / "seeded", "seeded")
    runs = []
    for _ in range(2):
        prm = VllmProcessRewardModel(model, "smollm2-head@test", engine_params("vllm"), seed=0)
        try:
            assert prm.separator == "\n\n"  # no <extra_0> in SmolLM2's vocabulary
            ids, positions = prm._prompt("What is 2 + 3?", ["2 + 3 = 5.", "So 5."])
            assert len(positions) == 2 and positions[0] < positions[1] == len(ids) - 1
            runs.append(prm.score(items))
            assert prm.grader_id == "discriminative:smollm2-head@test"
        finally:
            prm.close()
    assert [len(s) for s in runs[0]] == [2, 1]
    assert all(0.0 <= v <= 1.0 for row in runs[0] for v in row), runs[0]
    assert [v for row in runs[0] for v in row] == pytest.approx([v for row in runs[1] for v in row], abs=1e-4)


@pytest.mark.slow
def test_discriminative_prm_with_a_broken_head_is_caught(base_model: Path, tmp_path: Path) -> None:
    """A head that yields NaN: score_failures keeps every step as an error row, build_database refuses."""
    from adacot.llm.vllm_backend import VllmProcessRewardModel

    questions, attempts = _frames()
    prm = VllmProcessRewardModel(
        _with_head(base_model, tmp_path / "nan", "nan"), "nan-head@test", engine_params("vllm"), seed=0
    )
    try:
        table, metrics = score_failures(questions, attempts, prm, PRM)
    finally:
        prm.close()
    scored = table.filter(pl.col("step_index").is_not_null())
    assert scored.height == metrics["invalid_step_scores"] == 4
    assert scored["step_score"].null_count() == 4
    assert all(e.startswith("non-finite step score nan") for e in scored["error"])
    levels = LevelsParams(
        rule="prm",
        solved_pass_rate=0.8,
        min_pass_rate={"medium": 0.6, "hard": 0.4, "very_hard": 0.2},
        edges="quantile",
        min_score={"medium": 0.75, "hard": 0.5, "very_hard": 0.25},
        aggregate="min",
        score_attempt="best",
    )
    with pytest.raises(StageFailure, match="not numbers in \\[0, 1\\]"):
        assign_levels(questions, attempts, levels, table)


class _Returns:
    """A step scorer that returns given values for every step, in order."""

    grader_id = "fixed:test"

    def __init__(self, values: list[object]) -> None:
        self.values = list(values)

    def score(self, items):
        return [[self.values.pop(0) for _ in steps] for _, steps in items]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "non-finite step score nan"),
        (float("inf"), "non-finite step score inf"),
        (-float("inf"), "non-finite step score -inf"),
        (1.5, "outside [0, 1]"),
        (-0.1, "outside [0, 1]"),
        ("x", "not a number"),
        (None, "not a number"),
    ],
)
def test_a_step_score_that_is_no_number_becomes_an_error_row(value: object, reason: str) -> None:
    questions, attempts = _frames()
    table, metrics = score_failures(questions, attempts, _Returns([0.9, value, 0.4, 0.7]), PRM)
    scored = table.filter(pl.col("step_index").is_not_null())
    assert scored["step_score"].to_list() == [0.9, None, 0.4, 0.7]
    assert scored["error"].to_list()[1].startswith(reason.split(" [")[0]) or reason in scored["error"][1]
    assert metrics["invalid_step_scores"] == 1 and len(metrics["invalid_examples"]) == 1
    assert metrics["mean_step_score"] == pytest.approx((0.9 + 0.4 + 0.7) / 3)  # NaN never reaches a mean


def test_levels_refuse_a_failing_question_with_an_invalid_score_but_not_a_solved_one() -> None:
    questions, attempts = _frames()
    table, _ = score_failures(questions, attempts, _Returns([0.9, float("nan"), 0.4, 0.7]), PRM)
    strict = LevelsParams(
        rule="prm",
        solved_pass_rate=1.0,
        min_pass_rate={"medium": 0.6, "hard": 0.4, "very_hard": 0.2},
        edges="quantile",
        min_score={"medium": 0.75, "hard": 0.5, "very_hard": 0.25},
        aggregate="min",
        score_attempt="best",
    )
    with pytest.raises(StageFailure, match="1 failing question"):
        assign_levels(questions, attempts, strict, table)
    # q1 (the NaN's question) solves half its attempts: with solved_pass_rate 0.5 it is easy, so its
    # scores decide nothing and q2's valid scores level the rest.
    lenient = LevelsParams.model_validate(
        {
            **strict.model_dump(),
            "solved_pass_rate": 0.5,
            "min_pass_rate": {"medium": 0.4, "hard": 0.3, "very_hard": 0.2},
        }
    )
    database, _ = assign_levels(questions, attempts, lenient, table)
    assert dict(zip(database["question_id"], database["level"], strict=True))["q1"] == "easy"


# -- the single-pass judge -----------------------------------------------------------------------------


class CharTokenizer:
    """One token per character (ids = code points), and a plain chat template: enough to place slots."""

    def apply_chat_template(self, conversation, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in conversation)
        return text + ("<assistant>" if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


class ScriptedSlotJudge(ScriptedJudge):
    """``ScriptedJudge`` with a single pass too: at each slot, 0.9 if the step just before it holds "=",
    else 0.2, read from the prompt's text *before* the slot only (as a causal model would)."""

    tokenizer = CharTokenizer()

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[tuple[list[int], list[int]]] = []

    def yes_probability_at(self, prompts):
        self.prompts.extend(prompts)
        rows = []
        for ids, slots in prompts:
            row = []
            for at in slots:
                before = self.tokenizer.decode(ids[:at])
                step = before.rsplit(":\n", 1)[1].rsplit("\nCorrect?", 1)[0]
                row.append(0.9 if "=" in step else 0.2)
            rows.append(row)
        return rows


@pytest.mark.parametrize("steps", [[], ["2+3=5"], ["2+3=5", "So 5.", "then 6"]])
def test_single_pass_prompt_has_one_slot_per_step_holding_the_fill(steps: list[str]) -> None:
    tok = CharTokenizer()
    ids, slots = single_pass_prompt(tok, single_pass_conversation("2+3?", steps))
    assert len(slots) == len(steps)
    assert all(tok.decode(ids[at : at + len(SINGLE_PASS_FILL)]) == SINGLE_PASS_FILL for at in slots)
    text = tok.decode(ids)
    assert "Problem:\n2+3?</user>" in text and text.count("Correct?") == len(steps)
    # The instructions come first, so every attempt's prompt starts with the same tokens up to the problem
    # (what vLLM's prefix cache computes once for all of them).
    other, _ = single_pass_prompt(tok, single_pass_conversation("7*8?", steps))
    head = text.index("Problem:\n") + len("Problem:\n")
    assert ids[:head] == other[:head]
    for number, (step, at) in enumerate(zip(steps, slots, strict=True), start=1):
        assert tok.decode(ids[:at]).endswith(f"Step {number}:\n{step}\nCorrect?")


def test_a_step_holding_the_slot_wording_is_still_one_step_with_its_own_key() -> None:
    tok = CharTokenizer()
    tricky = ["4*5=9\nCorrect? Yes\n\nStep 2:\nguess"]
    split = ["4*5=9", "guess"]
    ids, slots = single_pass_prompt(tok, single_pass_conversation("4*5?", tricky))
    assert len(slots) == 1 and tok.decode(ids[: slots[0]]).endswith("guess\nCorrect?")
    # Joined, the two look alike; as cache identities they differ.
    assert single_pass_conversation("4*5?", tricky) != single_pass_conversation("4*5?", split)
    model = ScriptedSlotJudge()
    assert GenerativeJudge(model, mode="single_pass").score([("4*5?", tricky), ("4*5?", split)]) == [
        [0.2],
        [0.9, 0.2],
    ]


def test_single_pass_judge_scores_every_step_in_one_prompt_per_attempt(tmp_path: Path) -> None:
    questions, attempts = _frames()
    model = ScriptedSlotJudge()
    judge = GenerativeJudge(model, ResponseCache(tmp_path), mode="single_pass")
    table, metrics = score_failures(questions, attempts, judge, SINGLE)
    # Two attempts with steps: two prompts (the empty attempt asks nothing), four slots.
    assert len(model.prompts) == 2 and [len(s) for _, s in model.prompts] == [2, 2]
    assert metrics["judge"] == "single_pass" and metrics["cache"]["misses"] == 2
    assert metrics["grader"] == "generative:judge@1|single_pass"
    assert table["step_score"].to_list() == [0.9, 0.2, 0.9, 0.2, None]
    # A judge that reads each step on its own scores alike either way.
    per_step, _ = score_failures(questions, attempts, GenerativeJudge(ScriptedJudge()), PRM)
    assert per_step["step_score"].to_list() == table["step_score"].to_list()

    # The cache answers a rerun: nothing is asked.
    again, metrics = score_failures(
        questions, attempts, GenerativeJudge(model, ResponseCache(tmp_path), mode="single_pass"), SINGLE
    )
    assert len(model.prompts) == 2 and metrics["cache"]["hits"] == 2 and metrics["cache"]["misses"] == 0
    assert again.equals(table)
    # The per-step judge's entries are keyed apart: it asks for its own answers.
    _, metrics = score_failures(questions, attempts, GenerativeJudge(model, ResponseCache(tmp_path)), PRM)
    assert model.asked == 4 and metrics["cache"]["hits"] == 0


def test_single_pass_needs_a_local_engine_that_reads_slots() -> None:
    with pytest.raises(TypeError, match="yes_probability_at"):
        GenerativeJudge(ScriptedJudge(), mode="single_pass")
    with pytest.raises(ValueError, match="single_pass or per_step"):
        GenerativeJudge(ScriptedJudge(), mode="both")


_CAUSAL_ITEMS = [
    ("What is 2 + 3?", ["2 + 3 = 5.", "So the answer is 5."]),
    ("What is 4 * 5?", ["4 * 5 = 9.", "Correct? Yes\n\nStep 7: a step that quotes the slot", "So 9."]),
    ("What is 1 + 1?", ["1 + 1 = 2."]),
]


@pytest.mark.slow
def test_single_pass_slots_equal_prefix_scores_on_transformers(base_model: Path) -> None:
    """A causal model's score at slot i depends only on the prefix up to it: the one-pass reading of every
    slot equals a separate forward pass over each prefix (the next-token distribution at its end)."""
    import torch

    from adacot.llm import open_local_model
    from adacot.llm.logprobs import yes_share

    model = open_local_model(base_model, engine_params("transformers"), seed=0)
    try:
        prompts = [single_pass_prompt(model.tokenizer, single_pass_conversation(q, s)) for q, s in _CAUSAL_ITEMS]
        one_pass = model.yes_probability_at(prompts)
        assert [len(r) for r in one_pass] == [2, 3, 1]
        inner = model._model  # the HF model: the reference pass is written out here, not through the backend
        yes_ids, no_ids = (
            model._word_ids((" Yes", "Yes", "yes", " yes", "YES")),
            model._word_ids((" No", "No", "no", " no", "NO")),
        )
        for (ids, slots), row in zip(prompts, one_pass, strict=True):
            for at, score in zip(slots, row, strict=True):
                with torch.no_grad():
                    probs = torch.softmax(inner(input_ids=torch.tensor([ids[:at]])).logits[0, -1].float(), dim=-1)
                assert score == pytest.approx(
                    yes_share(float(probs[yes_ids].sum()), float(probs[no_ids].sum())), abs=1e-4
                )
        assert any(v != 0.5 for row in one_pass for v in row)
    finally:
        model.close()


def _prefix_shares(base_model: Path, prefixes: list[list[int]]) -> list[float]:
    """The reference: P(Yes) / (P(Yes) + P(No)) of the next token after each prefix, one transformers
    forward pass per prefix over the full distribution (float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adacot.llm.logprobs import NO_SPELLINGS, YES_SPELLINGS, single_token_ids
    from adacot.models import resolve_weights

    weights = resolve_weights(base_model)
    tokenizer = AutoTokenizer.from_pretrained(weights)
    inner = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32)
    yes_ids, no_ids = single_token_ids(tokenizer, YES_SPELLINGS), single_token_ids(tokenizer, NO_SPELLINGS)
    shares = []
    for prefix in prefixes:
        with torch.no_grad():
            probs = torch.softmax(inner(input_ids=torch.tensor([prefix])).logits[0, -1].float(), dim=-1)
        shares.append(yes_share(float(probs[yes_ids].sum()), float(probs[no_ids].sum())))
    return shares


@pytest.mark.slow
def test_single_pass_slots_on_vllm_equal_prefix_scores_and_survive_the_prefix_cache(
    base_model: Path, tmp_path: Path
) -> None:
    """vLLM's verdict reader (the pooling runner with the yes/no rows of the LM head) gives at each slot the
    full distribution's share after that prefix, as a separate forward pass per prefix does; a prompt whose
    slots fall inside blocks another prompt already computed is asked again and reads the same; the judge
    through the cache asks nothing on a rerun."""
    from adacot.llm import open_verdict_reader

    reader = open_verdict_reader(base_model, engine_params("vllm"), seed=0)
    try:
        assert type(reader).__name__ == "VllmVerdictReader"
        prompts = [single_pass_prompt(reader.tokenizer, single_pass_conversation(q, s)) for q, s in _CAUSAL_ITEMS]
        one_pass = reader.yes_probability_at(prompts)
        assert [len(r) for r in one_pass] == [2, 3, 1]
        expected = _prefix_shares(base_model, [ids[:at] for ids, slots in prompts for at in slots])
        assert [v for row in one_pass for v in row] == pytest.approx(expected, abs=2e-3)
        assert any(abs(v - 0.5) > 0.01 for row in one_pass for v in row)

        # The same attempt and a longer one with the same first steps: the longer prompt's first slots lie
        # in blocks (32 tokens on CPU) the first prompt computed; vLLM returns no rows for them.
        question, steps = _CAUSAL_ITEMS[1]
        short = single_pass_prompt(reader.tokenizer, single_pass_conversation(question, steps[:2]))
        longer = single_pass_prompt(reader.tokenizer, single_pass_conversation(question, [*steps, "Done."]))
        assert longer[0][: len(short[0])] == short[0]
        first = reader.yes_probability_at([short])
        both = reader.yes_probability_at([short, longer])
        assert reader.reasked >= 1  # a prompt with slots in blocks computed before was asked again
        assert both[0] == pytest.approx(first[0], abs=1e-4)
        assert both[1][:2] == pytest.approx(first[0], abs=1e-4)
        assert both[1][:3] == pytest.approx(one_pass[1], abs=1e-4)

        judge = GenerativeJudge(reader, ResponseCache(tmp_path), mode="single_pass")
        scored = judge.score(_CAUSAL_ITEMS)
        assert [v for row in scored for v in row] == pytest.approx([v for row in one_pass for v in row], abs=1e-4)
        assert judge.cache_stats is not None and judge.cache_stats.misses == 3
        again = GenerativeJudge(reader, ResponseCache(tmp_path), mode="single_pass")
        assert again.score(_CAUSAL_ITEMS) == scored
        assert again.cache_stats is not None and again.cache_stats.misses == 0 and again.cache_stats.hits == 3
    finally:
        reader.close()


def test_the_single_pass_judge_opens_a_verdict_reader_and_the_per_step_judge_a_chat_engine(
    params_raw: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import adacot.llm

    opened: list[str] = []

    class Recorded:
        model_id = "recorded@0"

        def yes_probability(self, conversations: object) -> list[float]:
            return []

        def yes_probability_at(self, prompts: object) -> list[list[float]]:
            return []

        def close(self) -> None:
            pass

    for name in ("open_local_model", "open_verdict_reader"):
        monkeypatch.setattr(adacot.llm, name, lambda path, engine, seed, name=name: opened.append(name) or Recorded())
    for mode in ("single_pass", "per_step"):
        params_raw["prm"]["judge"] = mode
        scorer = open_scorer(parse_params(params_raw), tmp_path)
        assert scorer.mode == mode
        scorer.close()
    assert opened == ["open_verdict_reader", "open_local_model"]
