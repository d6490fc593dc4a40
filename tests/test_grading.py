"""Tests for adacot.grading: scripted attempts get the right verdicts, the cache makes reruns free."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import BAND_RULE, FakeChatModel

from adacot.config import Params, VerifyParams
from adacot.errors import StageFailure
from adacot.grading import grade_attempts
from adacot.levels import assign_levels
from adacot.llm import ResponseCache, Sampling
from adacot.prompts import PromptSet
from adacot.schemas import ATTEMPTS, QUESTIONS, conform
from adacot.vocabulary import LEVELS

QUESTIONS_GOLD = {
    "q1": ("What is 2 + 3?", "5"),
    "q2": ("Ava has 4 apples and gets 3 more. How many apples does Ava have now?", "7"),
    "q3": ("What is 27 + 48?", "75"),
}

# Per question: (scripted answer, finish_reason), expected status, for sample 0..3.
SCRIPT: dict[str, list[tuple[tuple[str, str], str]]] = {
    "q1": [
        (("2 + 3 = 5, so the answer is \\boxed{5}.", "stop"), "correct"),
        (("\\boxed{6}", "stop"), "wrong"),
        (("I am not sure how to do this.", "stop"), "no_answer"),
        (("Let me think. First 2 then", "length"), "truncated"),
    ],
    "q2": [
        (("Ava has 4 + 3 = 7 apples. \\boxed{7}", "stop"), "correct"),
        (("The answer is 7.", "stop"), "correct"),
        (("\\boxed{7}", "stop"), "correct"),
        (("4 - 3 = \\boxed{1}", "stop"), "wrong"),
    ],
    "q3": [
        (("27 + 48 = 65. \\boxed{65}", "stop"), "wrong"),
        (("", "stop"), "no_answer"),
        (("\\boxed{75}", "length"), "correct"),  # cut off after the boxed answer: still judged
        (("27 + 48 = 6", "length"), "truncated"),
    ],
}


def _questions() -> pl.DataFrame:
    rows = [
        {"question_id": qid, "source": "synthetic", "question": q, "gold": g, "generator_tier": 1}
        for qid, (q, g) in QUESTIONS_GOLD.items()
    ]
    return conform(pl.DataFrame(rows, schema=QUESTIONS), QUESTIONS, "questions")


def _fake() -> FakeChatModel:
    return FakeChatModel({QUESTIONS_GOLD[qid][0]: [answer for answer, _ in cases] for qid, cases in SCRIPT.items()})


def _expected_statuses() -> dict[tuple[str, int], str]:
    return {(qid, i): status for qid, cases in SCRIPT.items() for i, (_, status) in enumerate(cases)}


def test_grade_attempts_verdicts_and_metrics(
    tmp_path: Path, prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams
) -> None:
    assert verify_params.workers == 1
    fake = _fake()
    table, metrics = grade_attempts(
        _questions(), fake, prompts, sampling, 4, verify_params, ResponseCache(tmp_path / "cache"), batch_requests=2
    )
    assert list(table.columns) == list(ATTEMPTS)
    assert table.height == 12 == fake.requests
    got = {(r["question_id"], r["sample_index"]): r["status"] for r in table.iter_rows(named=True)}
    assert got == _expected_statuses()
    assert all(reason for reason in table["reason"])  # every verdict says why
    assert table.filter((pl.col("question_id") == "q1") & (pl.col("sample_index") == 1))["extracted"].item() == "6"
    assert set(table["model_id"]) == {fake.model_id}
    assert set(table["prompt_version"]) == {prompts.version}
    assert "cached" not in table.columns  # a warm rerun must write the same bytes (see the rerun test)
    assert set(table.filter(pl.col("finish_reason") == "length")["completion_tokens"]) == {sampling.max_tokens}

    assert metrics["questions"] == 3
    assert metrics["attempts"] == 12
    assert sum(metrics["by_status"].values()) == metrics["attempts"]
    assert metrics["by_status"] == {"correct": 5, "no_answer": 2, "truncated": 2, "wrong": 3}
    assert metrics["completion_tokens"] == int(table["completion_tokens"].sum())
    assert metrics["cache"]["misses"] == 12 and metrics["cache"]["hits"] == 0
    # The student prompt was used, with the question inside it.
    assert all("\\boxed{}" in user for user, _ in fake.asked)


def test_grade_attempts_rerun_hits_cache(
    tmp_path: Path, prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams
) -> None:
    first, _ = grade_attempts(
        _questions(), _fake(), prompts, sampling, 4, verify_params, ResponseCache(tmp_path), batch_requests=2
    )
    rerun_fake = _fake()
    second, metrics = grade_attempts(
        _questions(), rerun_fake, prompts, sampling, 4, verify_params, ResponseCache(tmp_path), batch_requests=2
    )
    assert rerun_fake.requests == 0
    assert metrics["cache"]["hits"] == metrics["attempts"] == 12
    assert metrics["cache"]["misses"] == 0
    # Identical tables: a warm rerun leaves the DVC output unchanged, so nothing downstream reruns.
    assert second.equals(first)


# The level rule itself is tested in test_levels.py; this checks grading's output feeds it.
RULE = BAND_RULE


def test_grade_then_level(
    tmp_path: Path, prompts: PromptSet, sampling: Sampling, params: Params, verify_params: VerifyParams
) -> None:
    attempts, _ = grade_attempts(_questions(), _fake(), prompts, sampling, 4, verify_params, None)
    database, metrics = assign_levels(_questions(), attempts, RULE)
    # q1: 1/4 -> hard; q2: 3/4 -> easy; q3: 1/4 -> hard.
    assert dict(zip(database["question_id"], database["level"], strict=True)) == {
        "q1": "hard",
        "q2": "easy",
        "q3": "hard",
    }
    assert set(metrics["level_histogram"]) == set(LEVELS)


def test_an_empty_question_table_fails_before_asking(
    prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams
) -> None:
    fake = _fake()
    with pytest.raises(StageFailure, match="the question table is empty, nothing to grade"):
        grade_attempts(_questions().head(0), fake, prompts, sampling, 4, verify_params, None)
    assert fake.calls == []
