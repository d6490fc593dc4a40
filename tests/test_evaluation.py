"""Tests for adacot.evaluation: pass@1 ± stderr, unbiased pass@k, cons@k with equivalent spellings, per-benchmark
decoding, and scoring each benchmark with a fake model (a served model: tests/test_evaluate_served.py)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import polars as pl
import pytest
from conftest import FakeChatModel

from adacot.config import BenchmarkParams, EvaluateParams, Params, VerifyParams
from adacot.errors import StageFailure
from adacot.evaluation import (
    answer_groups,
    consensus_correct,
    decoding_for,
    evaluate_model,
    pass_at_1,
    pass_at_k,
)
from adacot.llm import Price, ResponseCache
from adacot.prompts import PromptSet
from adacot.schemas import BENCHMARK, EVAL_RESPONSES, conform
from adacot.stats import mean_and_stderr

# (per-question pass rates, mean, standard error) worked out by hand:
# stderr = sqrt(sum((x - mean)^2) / (n - 1) / n).
PASS_AT_1_CASES = [
    ([], 0.0, 0.0),
    ([0.5], 0.5, 0.0),  # one question: no spread to measure
    ([1.0, 0.0], 0.5, 0.5),  # var = (0.25 + 0.25) / 1 = 0.5; sqrt(0.5 / 2) = 0.5
    ([0.25, 0.25, 0.25, 0.25], 0.25, 0.0),
    ([1.0, 1.0, 0.0, 0.5], 0.625, math.sqrt(0.6875 / 3 / 4)),  # squares .140625*2 + .390625 + .015625
    ([0.0, 0.5, 1.0], 0.5, math.sqrt(0.5 / 2 / 3)),  # squares .25 + 0 + .25
]


@pytest.mark.parametrize(("scores", "mean", "stderr"), PASS_AT_1_CASES)
def test_pass_at_1(scores: list[float], mean: float, stderr: float) -> None:
    got_mean, got_stderr = pass_at_1(scores)
    assert got_mean == pytest.approx(mean)
    assert got_stderr == pytest.approx(stderr)


C, W = "\\boxed{%s}", "\\boxed{0}"  # a correct answer (filled with the gold) and a wrong one

# benchmark, question id, question, gold, answers for 2 samples
BENCH = [
    ("gsm8k_test", "gsm8k-test-00000", "How many eggs does Janet sell?", "9", [C % 9, W]),  # 0.5
    ("gsm8k_test", "gsm8k-test-00001", "How many bolts does the robe take?", "3", [C % 3, "It is 3."]),  # 1.0
    ("synthetic_heldout", "synthetic-heldout-t1-00000", "What is 1 + 4?", "5", [C % 5, C % 5]),  # 1.0
    ("synthetic_heldout", "synthetic-heldout-t1-00001", "What is 2 + 4?", "6", [W, ("6 +", "length")]),  # 0.0
    ("synthetic_heldout", "synthetic-heldout-t1-00002", "What is 3 + 4?", "7", [W, C % 7]),  # 0.5
]


def _benchmarks() -> pl.DataFrame:
    rows = [
        {
            "benchmark": b,
            "question_id": qid,
            "source": b.split("_")[0],
            "question": q,
            "gold": g,
            "generator_tier": None,
            "solution": None,
        }
        for b, qid, q, g, _ in BENCH
    ]
    return conform(pl.DataFrame(rows, schema=BENCHMARK), BENCHMARK, "benchmarks")


def _fake() -> FakeChatModel:
    return FakeChatModel({q: answers for _, _, q, _, answers in BENCH}, model_id="student@abc")


@pytest.fixture
def evaluate(params: Params) -> EvaluateParams:
    """The real evaluate params with n = 2 and k = 1, 2."""
    return params.evaluate.model_copy(update={"samples": 2, "k": [1, 2]})


def test_evaluate_model_per_benchmark(
    tmp_path: Path, prompts: PromptSet, evaluate: EvaluateParams, verify_params: VerifyParams
) -> None:
    fake = _fake()
    table, metrics = evaluate_model(
        _benchmarks(),
        fake,
        prompts,
        evaluate,
        [],
        0,
        verify_params,
        ResponseCache(tmp_path),
        batch_requests=3,
        price=Price(1.0, 2.0),
    )
    assert list(table.columns) == list(EVAL_RESPONSES)
    assert table.height == 10 == fake.requests
    assert metrics["model_id"] == "student@abc"
    gsm8k, synthetic = metrics["benchmarks"]["gsm8k_test"], metrics["benchmarks"]["synthetic_heldout"]
    assert set(metrics["benchmarks"]) == {"gsm8k_test", "synthetic_heldout"}
    # gsm8k: [0.5, 1.0] -> mean 0.75, stderr sqrt(0.125 / 1 / 2) = 0.25
    assert gsm8k["pass@1"] == pytest.approx(0.75)
    assert gsm8k["stderr"] == pytest.approx(0.25)
    assert gsm8k["questions"] == 2 and gsm8k["samples"] == 2
    assert gsm8k["by_status"] == {"correct": 3, "wrong": 1}
    # synthetic: [1.0, 0.0, 0.5] -> mean 0.5, stderr sqrt(0.5 / 2 / 3)
    assert synthetic["pass@1"] == pytest.approx(0.5)
    assert synthetic["stderr"] == pytest.approx(math.sqrt(0.5 / 2 / 3))
    assert synthetic["questions"] == 3
    assert synthetic["by_status"] == {"correct": 3, "truncated": 1, "wrong": 2}
    assert metrics["completion_tokens"] == int(table["completion_tokens"].sum())
    assert metrics["cache"]["misses"] == 10
    # The two benchmarks' ledgers are added up, the price per token is not.
    assert metrics["cache"]["usd_per_mtok"] == {"input": 1.0, "output": 2.0}
    spent = Price(1.0, 2.0).dollars(int(table["prompt_tokens"].sum()), int(table["completion_tokens"].sum()))
    assert metrics["cache"]["dollars_spent"] == pytest.approx(spent, abs=1e-5)
    assert dict(table.group_by("benchmark").len().iter_rows()) == {"gsm8k_test": 4, "synthetic_heldout": 6}
    # pass@2 (n = 2): a question with any correct sample scores 1; cons@2: the first-answered group wins a tie.
    assert gsm8k["pass@2"] == pytest.approx(1.0) and synthetic["pass@2"] == pytest.approx(2 / 3)
    assert gsm8k["cons@1"] == pytest.approx(1.0)  # both questions' first sample is right
    assert synthetic["cons@1"] == pytest.approx(1 / 3)
    assert synthetic["truncation_rate"] == pytest.approx(1 / 6)
    assert gsm8k["mean_response_tokens"] == pytest.approx(
        table.filter(pl.col("benchmark") == "gsm8k_test")["completion_tokens"].mean()
    )


def test_evaluate_model_rerun_from_cache(
    tmp_path: Path, prompts: PromptSet, evaluate: EvaluateParams, verify_params: VerifyParams
) -> None:
    cache = ResponseCache(tmp_path)
    _, first = evaluate_model(_benchmarks(), _fake(), prompts, evaluate, [], 0, verify_params, cache)
    fake = _fake()
    _, second = evaluate_model(_benchmarks(), fake, prompts, evaluate, [], 0, verify_params, cache)
    assert fake.requests == 0
    assert second["cache"]["hits"] == 10
    assert second["benchmarks"] == first["benchmarks"]


def test_no_benchmark_questions_fails_instead_of_scoring_zero(
    prompts: PromptSet, evaluate: EvaluateParams, verify_params: VerifyParams
) -> None:
    fake = _fake()
    with pytest.raises(StageFailure, match="there are no benchmark questions"):
        evaluate_model(_benchmarks().head(0), fake, prompts, evaluate, [], 0, verify_params, None)
    assert fake.calls == []


# (n, c, k, pass@k) by hand: 1 - C(n-c, k) / C(n, k)
PASS_AT_K_CASES = [
    (4, 1, 1, 0.25),
    (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (4, 0, 2, 0.0),
    (4, 4, 1, 1.0),
    (4, 2, 2, 1 - 1 / 6),  # 1 - C(2,2)/C(4,2)
    (4, 3, 2, 1.0),  # n - c < k: every pair holds a correct sample
    (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
    (64, 1, 8, 8 / 64),  # one correct of n: pass@k = k / n
    (64, 10, 1, 10 / 64),
]


@pytest.mark.parametrize(("n", "c", "k", "expected"), PASS_AT_K_CASES)
def test_pass_at_k_by_hand(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_rejects_impossible_counts() -> None:
    for n, c, k in [(4, 5, 1), (4, 1, 5), (4, 1, 0), (4, -1, 1)]:
        with pytest.raises(ValueError, match="pass@k needs"):
            pass_at_k(n, c, k)


def test_answer_groups_join_equivalent_spellings(verify_params: VerifyParams) -> None:
    answers = ["1/2", "0.5", "\\frac{1}{2}", "3", "1/2", "\\dfrac12", "x=3"]
    labels = answer_groups(answers, verify_params)
    assert labels[0] == labels[1] == labels[2] == labels[4] == labels[5] == 0
    assert labels[3] == 3 and labels[3] != labels[0]
    assert labels[6] == labels[3]  # an assignment equals its value


@pytest.mark.parametrize(
    ("statuses", "extracted", "expected"),
    [
        # the right answer spelled three ways outvotes a wrong answer given twice in one spelling
        (["correct", "wrong", "correct", "wrong", "correct"], ["1/2", "3", "0.5", "3", "\\frac{1}{2}"], True),
        (["wrong", "wrong", "correct"], ["3", "3.0", "1/2"], False),
        # a tie goes to the group answered first
        (["wrong", "correct"], ["3", "1/2"], False),
        (["correct", "wrong"], ["1/2", "3"], True),
        # samples with no answer do not vote; with no vote at all the consensus is wrong
        (["no_answer", "truncated", "correct"], [None, None, "1/2"], True),
        (["no_answer", "truncated"], [None, None], False),
    ],
    ids=["spellings_outvote", "wrong_majority", "tie_first_wrong", "tie_first_right", "abstain", "no_votes"],
)
def test_consensus_correct(
    statuses: list[str], extracted: list[str | None], expected: bool, verify_params: VerifyParams
) -> None:
    assert consensus_correct(statuses, extracted, verify_params) is expected


def test_a_benchmark_overrides_samples_and_decoding(params: Params) -> None:
    evaluate = params.evaluate
    aime = BenchmarkParams(name="aime24", path="a.jsonl", gold="integer", samples=64, max_tokens=32768, temperature=0.6)
    sampling, n = decoding_for(aime, evaluate, 7)
    assert (n, sampling.max_tokens, sampling.temperature, sampling.top_p) == (64, 32768, 0.6, evaluate.top_p)
    assert sampling.seed == 7
    plain, n_plain = decoding_for(None, evaluate, 7)
    assert (n_plain, plain.max_tokens, plain.temperature) == (
        evaluate.samples,
        evaluate.max_tokens,
        evaluate.temperature,
    )


def test_evaluate_model_samples_each_benchmark_its_own_n(
    prompts: PromptSet, evaluate: EvaluateParams, verify_params: VerifyParams
) -> None:
    script = {q: [C % g] * 4 for _, _, q, g, _ in BENCH}
    fake = FakeChatModel(script)
    specs = [BenchmarkParams(name="synthetic_heldout", kind="synthetic", per_tier=1, samples=4, max_tokens=99)]
    table, metrics = evaluate_model(_benchmarks(), fake, prompts, evaluate, specs, 0, verify_params, None)
    assert dict(table.group_by("benchmark").len().iter_rows()) == {"gsm8k_test": 4, "synthetic_heldout": 12}
    synthetic = metrics["benchmarks"]["synthetic_heldout"]
    assert (synthetic["samples"], synthetic["max_tokens"]) == (4, 99)
    assert synthetic["pass@1"] == synthetic["pass@2"] == synthetic["cons@2"] == 1.0
    assert "pass@4" not in synthetic  # k values are those in evaluate.k only
    assert "pass@2" in metrics["benchmarks"]["gsm8k_test"] and metrics["benchmarks"]["gsm8k_test"]["samples"] == 2


def test_a_multiple_choice_benchmark_is_scored_by_the_letter(
    prompts: PromptSet, evaluate: EvaluateParams, verify_params: VerifyParams
) -> None:
    """A GPQA-style fixture (written for this project; GPQA itself is gated) through the source reader and
    the evaluation: a model that answers the right letter on its first sample and "A" on its second."""
    from conftest import GPQA_FIELDS, ROOT

    from adacot.sources import load_source

    spec = BenchmarkParams(
        name="gpqa_like",
        path=str(ROOT / "tests/fixtures/gpqa_like.jsonl"),
        fields=GPQA_FIELDS,
        gold="choice",
    )
    questions = load_source(spec, 0, "test").questions.with_columns(benchmark=pl.lit("gpqa_like"))
    golds = dict(zip(questions["question"], questions["gold"], strict=True))

    def answer(user: str, sample: int) -> str:
        gold = next(g for q, g in golds.items() if q in user)
        return f"Thinking it over.\nAnswer: {gold}" if sample == 0 else "It must be \\boxed{A}."

    table, metrics = evaluate_model(
        conform(questions, BENCHMARK, "b"), FakeChatModel(answer), prompts, evaluate, [spec], 0, verify_params, None
    )
    right_is_a = sum(g == "A" for g in golds.values())
    figures = metrics["benchmarks"]["gpqa_like"]
    assert figures["questions"] == 6
    assert figures["pass@1"] == pytest.approx((6 + right_is_a) / 12)
    assert figures["pass@2"] == pytest.approx(1.0)
    assert set(table["extracted"].to_list()) <= set("ABCD")


def test_mean_and_stderr_do_not_depend_on_the_order_of_the_values() -> None:
    """A metric recomputed from the same scores in another row order is bit-for-bit the same."""
    rng = random.Random(0)
    for size in (2, 3, 7, 42, 100):
        values = [rng.choice([0.0, 0.5, 1.0, 1 / 3, 2 / 3, 0.1]) for _ in range(size)]
        expected = mean_and_stderr(values)
        for _ in range(20):
            rng.shuffle(values)
            assert mean_and_stderr(values) == expected
