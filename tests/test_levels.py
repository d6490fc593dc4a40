"""Tests for the level rule (adacot.levels): pass-rate bands, PRM score edges, aggregation, versions."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import BAND_RULE

from adacot.config import LevelsParams, Params
from adacot.levels import (
    assign_levels,
    grader_version,
    level_by_pass_rate,
)
from adacot.schemas import DATABASE, PRM_SCORES, QUESTIONS, conform
from adacot.verify.frames import status_counts


def test_status_counts_sorted() -> None:
    assert status_counts(pl.Series(["wrong", "correct", "wrong", "no_answer"])) == {
        "correct": 1,
        "no_answer": 1,
        "wrong": 2,
    }


# Real params' bands: easy >= 0.75, medium >= 0.5, hard >= 0.25, very_hard >= 0.01, else extreme.
LEVEL_CASES = [
    (1.0, "easy"),
    (0.75, "easy"),
    (0.7499, "medium"),
    (0.5, "medium"),
    (0.49, "hard"),
    (0.25, "hard"),
    (0.24, "very_hard"),
    (0.01, "very_hard"),
    (0.0099, "extreme"),
    (0.0, "extreme"),
]


# A fixed rule (not params.yaml's, which users tune) so these tables test the mechanism.
RULE = BAND_RULE
PRM_RULE = LevelsParams.model_validate({**RULE.model_dump(), "rule": "prm"})


def _prm_scores(steps: dict[tuple[str, int], list[float] | None]) -> pl.DataFrame:
    """PRM step-score rows: (question, sample index) -> step scores (None: an attempt with no steps)."""
    rows = []
    for (qid, index), scores in steps.items():
        if scores is None:
            rows.append(
                {
                    "question_id": qid,
                    "sample_index": index,
                    "step_index": None,
                    "step": None,
                    "step_score": None,
                    "grader": "generative:judge@1",
                }
            )
        for i, value in enumerate(scores or []):
            rows.append(
                {
                    "question_id": qid,
                    "sample_index": index,
                    "step_index": i,
                    "step": f"step {i}",
                    "step_score": value,
                    "grader": "generative:judge@1",
                }
            )
    return pl.DataFrame(rows, schema=PRM_SCORES)


@pytest.mark.parametrize(("pass_rate", "level"), LEVEL_CASES)
def test_level_by_pass_rate(params: Params, pass_rate: float, level: str) -> None:
    assert level_by_pass_rate(pass_rate, RULE) == level


def _attempts(correct_by_question: dict[str, tuple[int, int]]) -> pl.DataFrame:
    """Attempt rows: for each question, (correct, total) attempts."""
    rows = []
    for qid, (correct, total) in correct_by_question.items():
        for i in range(total):
            rows.append(
                {
                    "question_id": qid,
                    "sample_index": i,
                    "status": "correct" if i < correct else "wrong",
                    "completion_tokens": 10,
                }
            )
    return pl.DataFrame(rows)


def _pool(ids: list[str]) -> pl.DataFrame:
    rows = [
        {
            "question_id": q,
            "source": "gsm8k" if q.startswith("g") else "synthetic",
            "question": f"Q {q}?",
            "gold": "1",
            "generator_tier": None,
        }
        for q in ids
    ]
    return conform(pl.DataFrame(rows, schema=QUESTIONS), QUESTIONS, "questions")


def test_assign_levels_table(params: Params) -> None:
    counts = {"s4": (4, 4), "s3": (3, 4), "s2": (2, 4), "g1": (1, 4), "g0": (0, 4)}
    expected = {"s4": "easy", "s3": "easy", "s2": "medium", "g1": "hard", "g0": "extreme"}
    table, metrics = assign_levels(_pool(list(counts)), _attempts(counts), RULE)
    assert list(table.columns) == list(DATABASE)
    assert table["question_id"].to_list() == sorted(counts)
    rows = {r["question_id"]: r for r in table.iter_rows(named=True)}
    for qid, (correct, total) in counts.items():
        assert rows[qid]["attempts"] == total
        assert rows[qid]["correct"] == correct
        assert rows[qid]["pass_rate"] == pytest.approx(correct / total)
        assert rows[qid]["level"] == expected[qid]
        assert rows[qid]["completion_tokens"] == 10 * total
    version = grader_version(RULE, 4)
    assert set(table["grader_version"]) == {version}
    assert metrics["grader_version"] == version
    assert metrics["level_histogram"] == {"easy": 2, "medium": 1, "hard": 1, "very_hard": 0, "extreme": 1}
    assert sum(metrics["level_histogram"].values()) == metrics["questions"] == 5
    assert metrics["pass_rate_by_level"]["easy"] == pytest.approx(0.875)
    assert metrics["pass_rate_by_level"]["very_hard"] is None
    assert metrics["mean_pass_rate"] == pytest.approx(0.5)
    assert metrics["by_source"]["gsm8k"] == {"easy": 0, "medium": 0, "hard": 1, "very_hard": 0, "extreme": 1}
    assert sum(metrics["level_share"].values()) == pytest.approx(1.0)


def test_grader_version_changes_with_rule(params: Params) -> None:
    base = grader_version(RULE, 4)
    assert base.startswith("pass_rate_bands:")
    assert grader_version(RULE, 8) != base
    stricter = LevelsParams.model_validate({**RULE.model_dump(), "solved_pass_rate": 1.0})
    assert grader_version(stricter, 4) != base
    assert grader_version(LevelsParams.model_validate(RULE.model_dump()), 4) == base


def test_assign_levels_rule_changes_levels(params: Params) -> None:
    counts = {"s3": (3, 4)}
    strict = LevelsParams.model_validate({**RULE.model_dump(), "solved_pass_rate": 1.0})
    table, _ = assign_levels(_pool(["s3"]), _attempts(counts), strict)
    assert table["level"].item() == "medium"


def test_assign_levels_missing_attempts_raises(params: Params) -> None:
    with pytest.raises(ValueError, match=r"1 question\(s\) have no graded attempts.*'s9'"):
        assign_levels(_pool(["s1", "s9"]), _attempts({"s1": (1, 4)}), RULE)


def test_prm_rule_quantile_edges_split_the_failing_pool() -> None:
    # Eight failing questions with distinct scores, one solved question: quartiles of the failing pool.
    counts = {f"f{i}": (0, 4) for i in range(8)} | {"s4": (4, 4)}
    steps = {(f"f{i}", 0): [0.9, 0.1 * i + 0.05] for i in range(8)}  # min aggregation -> 0.05 .. 0.75
    table, metrics = assign_levels(_pool(list(counts)), _attempts(counts), PRM_RULE, _prm_scores(steps))
    levels = dict(zip(table["question_id"], table["level"], strict=True))
    assert levels["s4"] == "easy"
    assert [levels[f"f{i}"] for i in range(8)] == ["extreme"] * 2 + ["very_hard"] * 2 + ["hard"] * 2 + ["medium"] * 2
    assert metrics["level_histogram"] == {"easy": 1, "medium": 2, "hard": 2, "very_hard": 2, "extreme": 2}
    scores = dict(zip(table["question_id"], table["prm_score"], strict=True))
    assert scores["s4"] is None and scores["f7"] == pytest.approx(0.75)
    assert metrics["score_edges"]["medium"] == pytest.approx(0.575)  # linear 75th percentile of 0.05..0.75
    version = metrics["grader_version"]
    assert version.startswith("prm:") and '"grader":"generative:judge@1"' in version and '"edges":"quantile"' in version
    assert set(table["grader_version"]) == {version}


def test_prm_rule_fixed_edges_aggregation_and_attempt_choice() -> None:
    counts = {"a": (1, 4), "b": (0, 4), "c": (0, 4)}
    steps = {("a", 1): [0.9, 0.8], ("a", 2): [0.4, 0.95], ("b", 0): [0.6, 0.3], ("c", 0): None}
    fixed = LevelsParams.model_validate({**PRM_RULE.model_dump(), "edges": "fixed"})
    table, metrics = assign_levels(_pool(list(counts)), _attempts(counts), fixed, _prm_scores(steps))
    got = dict(zip(table["question_id"], zip(table["prm_score"], table["level"], strict=True), strict=True))
    # best attempt by min: a -> max(0.8, 0.4) = 0.8 (medium); b -> 0.3 (very_hard); c: no steps -> 0 (extreme)
    assert got == {"a": (pytest.approx(0.8), "medium"), "b": (pytest.approx(0.3), "very_hard"), "c": (0.0, "extreme")}
    assert metrics["score_edges"] == {"medium": 0.75, "hard": 0.5, "very_hard": 0.25}
    # The same scores under another aggregation / attempt choice give other levels, without rescoring.
    mean_first = LevelsParams.model_validate({**fixed.model_dump(), "aggregate": "mean", "score_attempt": "first"})
    table2, metrics2 = assign_levels(_pool(list(counts)), _attempts(counts), mean_first, _prm_scores(steps))
    assert dict(zip(table2["question_id"], table2["prm_score"], strict=True))["a"] == pytest.approx(0.85)
    assert metrics2["grader_version"] != metrics["grader_version"]


def test_prm_rule_needs_scores() -> None:
    with pytest.raises(ValueError, match="score_failures"):
        assign_levels(_pool(["a"]), _attempts({"a": (0, 4)}), PRM_RULE)
