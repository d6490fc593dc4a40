"""Tests for adacot.evaluation: pass@1 mean and standard error, and scoring each benchmark with a fake model."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from conftest import FakeChatModel

from adacot.config import VerifyParams
from adacot.errors import StageFailure
from adacot.evaluation import evaluate_model, pass_at_1
from adacot.llm import ResponseCache, Sampling
from adacot.prompts import PromptSet
from adacot.schemas import BENCHMARK, EVAL_RESPONSES, conform

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
        }
        for b, qid, q, g, _ in BENCH
    ]
    return conform(pl.DataFrame(rows, schema=BENCHMARK), BENCHMARK, "benchmarks")


def _fake() -> FakeChatModel:
    return FakeChatModel({q: answers for _, _, q, _, answers in BENCH}, model_id="student@abc")


def test_evaluate_model_per_benchmark(
    tmp_path: Path, prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams
) -> None:
    fake = _fake()
    table, metrics = evaluate_model(
        _benchmarks(), fake, prompts, sampling, 2, verify_params, ResponseCache(tmp_path), batch_requests=3
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
    assert dict(table.group_by("benchmark").len().iter_rows()) == {"gsm8k_test": 4, "synthetic_heldout": 6}


def test_evaluate_model_rerun_from_cache(
    tmp_path: Path, prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams
) -> None:
    _, first = evaluate_model(_benchmarks(), _fake(), prompts, sampling, 2, verify_params, ResponseCache(tmp_path))
    fake = _fake()
    _, second = evaluate_model(_benchmarks(), fake, prompts, sampling, 2, verify_params, ResponseCache(tmp_path))
    assert fake.requests == 0
    assert second["cache"]["hits"] == 10
    assert second["benchmarks"] == first["benchmarks"]


def test_no_benchmark_questions_fails_instead_of_scoring_zero(
    prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams
) -> None:
    fake = _fake()
    with pytest.raises(StageFailure, match="there are no benchmark questions"):
        evaluate_model(_benchmarks().head(0), fake, prompts, sampling, 2, verify_params, None)
    assert fake.calls == []
