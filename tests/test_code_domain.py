"""The code domain's stages on fixtures with a scripted fake model and the real sandbox: grading (k attempts
run against every test, share of tests passed), the tests_passed level rule, the PRM's code steps and judge
wording, teacher filtering (kept only when every test passes) and evaluation (pass@1 / pass@k, no cons@k)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import FakeChatModel

from adacot.codetests import read_tests
from adacot.config import Params, VerifyParams, parse_params
from adacot.evaluation import evaluate_model
from adacot.generation import generate_solutions, select_solutions
from adacot.grading import grade_attempts
from adacot.levels import assign_levels
from adacot.llm import ResponseCache, Sampling
from adacot.prm import judge_conversations, score_failures, split_code_steps
from adacot.prompts import PromptSet
from adacot.schemas import ATTEMPTS, BENCHMARK, QUESTIONS, SAMPLE, conform
from adacot.stageio import load_prompts

ROOT = Path(__file__).resolve().parents[1]

QUESTIONS_TESTS = {
    "sq": (
        "Write a function sq(x) returning x squared.",
        ["assert sq(2) == 4", "assert sq(3) == 9", "assert sq(0) == 0"],
    ),
    "rev": ("Write a function rev(s) returning s reversed.", ["assert rev('ab') == 'ba'", "assert rev('') == ''"]),
    "add": ("Write a function add(a, b) returning a + b.", ["assert add(1, 2) == 3"]),
}


def block(code: str) -> str:
    return f"Let me think.\n\nI will write it.\n\n```python\n{code}```\n"


SQ_RIGHT = block("def sq(x):\n    return x * x\n")
SQ_PARTIAL = block("def sq(x):\n    return x + x\n")  # right for 2 and 0, wrong for 3
SCRIPT: dict[str, list[Any]] = {
    "sq(x)": [SQ_RIGHT, SQ_PARTIAL, "No code today.", ("```python\ndef sq(x):\n    return", "length")],
    "rev(s)": [
        block("def rev(s):\n    return s[::-1]\n"),
        block("def rev(s):\n    raise ValueError('no')\n"),
        block("def rev(s):\n    while True:\n        pass\n"),
        "```bash\necho hi\n```",
    ],
    "add(a, b)": [block("def add(a, b):\n    return a - b\n")] * 4,
}
EXPECTED = {
    ("sq", 0): ("correct", 3),
    ("sq", 1): ("wrong", 2),
    ("sq", 2): ("no_answer", None),
    ("sq", 3): ("truncated", None),
    ("rev", 0): ("correct", 2),
    ("rev", 1): ("runtime_error", 0),  # raises on both tests (every test runs while grading)
    ("rev", 2): ("timeout", 0),
    ("rev", 3): ("no_answer", None),
    ("add", 0): ("wrong", 0),
}


@pytest.fixture
def code_params(params_raw: dict[str, Any]) -> Params:
    params_raw["domain"] = "code"
    params_raw["verify"]["sandbox"].update(wall_s=2, cpu_s=1, total_wall_s=10)
    return parse_params(params_raw)


@pytest.fixture
def verify(code_params: Params) -> VerifyParams:
    return code_params.verify


@pytest.fixture(scope="module")
def code_prompts() -> PromptSet:
    return load_prompts(ROOT / "prompts/code.yaml", "code")


def questions() -> pl.DataFrame:
    rows = [
        {
            "question_id": qid,
            "source": "fixture",
            "question": text,
            "gold": read_tests(tests).to_json(),
            "generator_tier": None,
            "solution": None,
        }
        for qid, (text, tests) in QUESTIONS_TESTS.items()
    ]
    return conform(pl.DataFrame(rows, schema=QUESTIONS), QUESTIONS, "questions")


SAMPLING = Sampling(max_tokens=256, temperature=0.7, top_p=0.95, seed=0)


def graded(tmp_path: Path, code_prompts: PromptSet, verify: VerifyParams) -> tuple[pl.DataFrame, dict[str, Any]]:
    fake = FakeChatModel(SCRIPT)
    return grade_attempts(
        questions(), fake, code_prompts, SAMPLING, 4, verify, ResponseCache(tmp_path / "cache"), domain="code"
    )


def test_grading_runs_every_attempt_against_its_tests(
    tmp_path: Path, code_prompts: PromptSet, verify: VerifyParams
) -> None:
    table, metrics = graded(tmp_path, code_prompts, verify)
    assert list(table.columns) == list(ATTEMPTS)
    got = {(r["question_id"], r["sample_index"]): (r["status"], r["tests_passed"]) for r in table.iter_rows(named=True)}
    for key, want in EXPECTED.items():
        assert got[key] == want, key
    partial = table.filter((pl.col("question_id") == "sq") & (pl.col("sample_index") == 1)).row(0, named=True)
    assert partial["tests_total"] == 3 and "test 1" in partial["reason"]
    assert partial["extracted"].startswith("def sq(x):")
    assert all(table["reason"])
    assert metrics["by_status"]["correct"] == 2
    assert metrics["programs_run"] == 9  # every attempt with a complete program block
    # rev #1 raises on both tests: a runtime error passes none; rev #2 loops and is stopped by the wall limit.
    assert 0 < metrics["mean_tests_passed_share"] < 1


def test_tests_passed_rule_levels_failures_by_their_best_share(
    tmp_path: Path, code_prompts: PromptSet, verify: VerifyParams, code_params: Params
) -> None:
    attempts, _ = graded(tmp_path, code_prompts, verify)
    rule = code_params.levels.model_copy(update={"rule": "tests_passed", "edges": "fixed", "solved_pass_rate": 0.5})
    database, metrics = assign_levels(questions(), attempts, rule)
    rows = {r["question_id"]: r for r in database.iter_rows(named=True)}
    # Mean over the 4 attempts (correct 1, never ran 0): sq (1 + 2/3 + 0 + 0) / 4; rev (1 + 0 + 0 + 0) / 4;
    # add 0 (4 programs, no test passed).
    assert rows["sq"]["tests_passed_share"] == pytest.approx((1 + 2 / 3) / 4)
    assert rows["rev"]["tests_passed_share"] == pytest.approx(0.25)
    assert rows["add"]["tests_passed_share"] == 0.0
    assert rows["sq"]["level"] == "very_hard"  # 0.417 >= very_hard's 0.25, < hard's 0.5
    assert rows["rev"]["level"] == "very_hard"
    assert rows["add"]["level"] == "extreme"
    assert metrics["grader_version"].startswith("tests_passed:")
    assert "tests_passed_share_by_level" in metrics


def test_tests_passed_rule_needs_the_code_domain(params_raw: dict[str, Any]) -> None:
    params_raw["levels"]["rule"] = "tests_passed"
    with pytest.raises(ValueError, match="needs domain=code"):
        parse_params(params_raw)


def test_a_domain_without_sources_is_refused_before_work(params_raw: dict[str, Any]) -> None:
    params_raw["domain"] = "code"
    params_raw["benchmarks"] = [b for b in params_raw["benchmarks"] if b.get("gold") != "code"]
    with pytest.raises(ValueError, match="no entry of benchmarks is in that domain"):
        parse_params(params_raw)


def test_prm_steps_of_a_code_attempt_end_with_its_program(code_prompts: PromptSet) -> None:
    steps = split_code_steps(SQ_PARTIAL, max_steps=6, max_step_chars=400)
    assert steps == ["Let me think.", "I will write it.", "def sq(x):\n    return x + x"]
    assert split_code_steps("just prose.\n\nmore prose.", 6, 400) == ["just prose.", "more prose."]
    assert split_code_steps(SQ_PARTIAL, max_steps=1, max_step_chars=400) == ["def sq(x):\n    return x + x"]
    judged = judge_conversations("Q", steps, code_prompts.judge)
    assert "programming problems" in judged[0][0]["content"]
    assert judged[2][1]["content"].endswith("Is the next step correct? Answer Yes or No.")


class _ConstantScorer:
    grader_id = "constant:0.5"

    def __init__(self) -> None:
        self.items: list[tuple[str, list[str]]] = []

    def score(self, items: Any) -> list[list[float]]:
        self.items = list(items)
        return [[0.5] * len(steps) for _, steps in items]


def test_score_failures_on_code_scores_the_program_as_a_step(
    tmp_path: Path, code_prompts: PromptSet, verify: VerifyParams, code_params: Params
) -> None:
    attempts, _ = graded(tmp_path, code_prompts, verify)
    scorer = _ConstantScorer()
    _, metrics = score_failures(questions(), attempts, scorer, code_params.prm, "code")
    assert metrics["attempts_scored"] == 9  # the first prm.max_attempts = 3 failing attempts of each question
    last_steps = [steps[-1] for _, steps in scorer.items if steps]
    assert "def sq(x):\n    return x + x" in last_steps


def test_teacher_solutions_are_kept_only_when_every_test_passes(
    tmp_path: Path, code_prompts: PromptSet, verify: VerifyParams
) -> None:
    sample_rows = questions().with_columns(
        attempts=pl.lit(4, pl.Int32),
        correct=pl.lit(0, pl.Int32),
        pass_rate=pl.lit(0.0),
        prm_score=pl.lit(None, pl.Float64),
        tests_passed_share=pl.lit(0.0),
        level=pl.lit("hard"),
        grader_version=pl.lit("fixture"),
        completion_tokens=pl.lit(0, pl.Int64),
        target_share=pl.lit(0.2),
    )
    sample = conform(sample_rows, SAMPLE, "sample")
    teacher = FakeChatModel(
        {
            "sq(x)": [SQ_PARTIAL, SQ_RIGHT],
            "rev(s)": ["no code", "```python\nrev = 1\n```"],
            "add(a, b)": [SCRIPT["add(a, b)"][0]] * 2,
        }
    )
    solutions, _ = generate_solutions(sample, teacher, code_prompts, SAMPLING, 2, ResponseCache(tmp_path / "c"))
    table, rows, metrics = select_solutions(solutions, code_prompts, verify, keep_unverified=False, domain="code")
    assert [r["question_id"] for r in rows] == ["sq"]
    kept = table.filter(pl.col("kept")).row(0, named=True)
    assert kept["sample_index"] == 1 and kept["status"] == "correct" and kept["tests_passed"] == 3
    assert rows[0]["completion"][0]["content"] == SQ_RIGHT.strip()
    assert metrics["questions_without_kept_solution"] == 2
    assert metrics["by_status"] == {"correct": 1, "no_answer": 1, "runtime_error": 1, "wrong": 3}


def test_evaluation_reports_pass_at_k_per_benchmark_without_votes(
    tmp_path: Path, code_prompts: PromptSet, verify: VerifyParams, code_params: Params
) -> None:
    bench = conform(questions().with_columns(benchmark=pl.lit("fixture_bench")), BENCHMARK, "benchmarks")
    model = FakeChatModel(SCRIPT)
    evaluate = code_params.evaluate.model_copy(update={"samples": 4, "k": [1, 2, 4]})
    table, metrics = evaluate_model(
        bench, model, code_prompts, evaluate, [], 0, verify, ResponseCache(tmp_path / "e"), domain="code"
    )
    figures = metrics["benchmarks"]["fixture_bench"]
    assert figures["pass@1"] == pytest.approx((1 / 4 + 1 / 4 + 0) / 3)
    assert figures["pass@4"] == pytest.approx(2 / 3)
    assert not any(key.startswith("cons@") for key in figures)
    assert 0 < figures["mean_tests_passed_share"] < 1
    assert figures["by_status"]["timeout"] == 1
    assert table.filter(pl.col("status") == "correct").height == 2
