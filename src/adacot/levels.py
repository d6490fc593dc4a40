"""The level rule: how a question gets one of the five levels (``LEVELS``, named in ``vocabulary.py``).

The rule turns a question's graded attempts (and, for the paper's rule, the PRM grader's step scores of
its failed attempts) into one database row with its pass rate, PRM score and level: solved questions are
``easy``; failing ones are ordered by PRM score (step scores -> attempt score -> question score, cut at
fixed or quantile edges), by pass-rate bands, or (code) by the mean share of tests their attempts
passed, as ``levels`` in params.yaml says. It all runs in build_database,
so changing the rule never reruns the student or the PRM.

This module does not ask any model (``grading.py`` asks the student, ``prm.py`` scores steps) and does not
give levels weights (``distribution`` params, ``sampling.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from adacot.errors import StageFailure
from adacot.schemas import DATABASE, conform
from adacot.vocabulary import LEVELS

if TYPE_CHECKING:  # the params type is only needed for annotations
    from adacot.config import LevelsParams


def grader_version(levels: LevelsParams, attempts: int, prm_grader: str | None = None) -> str:
    """A stable label of the level rule, recorded in every database row so rules are never mixed.

    It names everything that decides a level: the rule, k, the solved threshold and, for the PRM rule,
    the grader (kind and model id), the edges, the aggregation and which attempt scores the question.
    """
    rule: dict[str, Any] = {"rule": levels.rule, "solved": levels.solved_pass_rate, "k": attempts}
    if levels.rule == "pass_rate_bands":
        rule["bands"] = levels.min_pass_rate
    elif levels.rule == "tests_passed":
        rule["edges"] = levels.edges
        if levels.edges == "fixed":
            rule["min_score"] = levels.min_score
    else:
        rule.update(grader=prm_grader, edges=levels.edges, aggregate=levels.aggregate, attempt=levels.score_attempt)
        if levels.edges == "fixed":
            rule["min_score"] = levels.min_score
    return f"{levels.rule}:" + json.dumps(rule, sort_keys=True, separators=(",", ":"))


def level_by_pass_rate(pass_rate: float, levels: LevelsParams) -> str:
    """The level of one question under the pass-rate-band rule."""
    if pass_rate >= levels.solved_pass_rate:
        return "easy"
    for level in LEVELS[1:-1]:
        if pass_rate >= levels.min_pass_rate[level]:
            return level
    return "extreme"


def score_edges(scores: list[float], levels: LevelsParams) -> dict[str, float]:
    """The minimum PRM score of each failing level but ``extreme``.

    ``fixed``: ``levels.min_score``. ``quantile``: the 75th, 50th and 25th percentiles of the failing pool's
    scores, so the pool splits into four failing levels of (about) equal size; ties stay together.
    """
    failing = LEVELS[1:-1]
    if levels.edges == "fixed":
        return {lv: levels.min_score[lv] for lv in failing}
    if not scores:
        return {lv: 1.0 for lv in failing}
    series = pl.Series(scores, dtype=pl.Float64)
    edges = {}
    for level, q in zip(failing, (0.75, 0.5, 0.25), strict=True):
        value = series.quantile(q, interpolation="linear")
        if value is None:  # only for an all-null series, which the caller never passes
            raise ValueError("no PRM scores to cut into levels")
        edges[level] = float(value)
    return edges


def level_by_score(score: float, edges: dict[str, float]) -> str:
    """The failing level of a PRM score: the first whose edge it reaches, else ``extreme``."""
    for level in LEVELS[1:-1]:
        if score >= edges[level]:
            return level
    return "extreme"


def aggregate_steps(scores: Sequence[float], how: str) -> float:
    """One attempt's score from its step scores: ``min`` (the paper's default), ``mean``, ``product``, ``last``."""
    if not scores:
        return 0.0  # no reasoning at all: the least credit
    if how == "min":
        return min(scores)
    if how == "mean":
        return sum(scores) / len(scores)
    if how == "product":
        return math.prod(scores)
    if how == "last":
        return scores[-1]
    raise ValueError(f"unknown aggregation {how!r}: use min, mean, product or last")


def attempt_scores(prm_scores: pl.DataFrame, how: str) -> pl.DataFrame:
    """One score per scored attempt: (question_id, sample_index, attempt_score)."""
    grouped = (
        prm_scores.sort("question_id", "sample_index", "step_index")
        .group_by("question_id", "sample_index", maintain_order=True)
        .agg(pl.col("step_score").drop_nulls())
    )
    return grouped.with_columns(
        attempt_score=pl.col("step_score").map_elements(
            lambda s: aggregate_steps(list(s), how), return_dtype=pl.Float64
        )
    ).select("question_id", "sample_index", "attempt_score")


def question_scores(prm_scores: pl.DataFrame, aggregate_how: str, pick: str) -> pl.DataFrame:
    """One PRM score per question with scored attempts: the ``best``, ``first`` or ``mean`` attempt score."""
    per_attempt = attempt_scores(prm_scores, aggregate_how).sort("question_id", "sample_index")
    expr = {
        "best": pl.col("attempt_score").max(),
        "first": pl.col("attempt_score").first(),
        "mean": pl.col("attempt_score").mean(),
    }[pick]
    return per_attempt.group_by("question_id", maintain_order=True).agg(prm_score=expr)


def refuse_invalid_scores(prm_scores: pl.DataFrame, failing: pl.Series) -> None:
    """Raise ``StageFailure`` when a failing question's level would rest on a step score that is no number.

    score_failures keeps such scores (NaN, inf, out of [0, 1]) as rows with an ``error``; combining the
    others as if they were not there would still place the question on a level, silently. Solved
    questions are ``easy`` whatever their scores, so only failing ones count.
    """
    bad = prm_scores.filter(pl.col("error").is_not_null() & pl.col("question_id").is_in(failing.implode()))
    if bad.height:
        first = bad.row(0, named=True)
        raise StageFailure(
            f"{bad['question_id'].n_unique()} failing question(s) would be levelled on {bad.height} PRM step "
            f"score(s) that are not numbers in [0, 1] (first: {first['question_id']} attempt "
            f"{first['sample_index']} step {first['step_index']}: {first['error']}); fix the grader "
            "(prm.kind, prm.model) and rerun score_failures"
        )


def assign_levels(
    questions: pl.DataFrame,
    attempts: pl.DataFrame,
    levels: LevelsParams,
    prm_scores: pl.DataFrame | None = None,
    edges: dict[str, float] | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per question: attempts, correct, pass rate, PRM score, level, grader version; and metrics.

    Solved questions (pass rate >= ``solved_pass_rate``) are ``easy``. The rest are levelled by
    ``levels.rule``: ``pass_rate_bands`` by pass rate; ``prm`` by the PRM score of their failed attempts
    (``prm_scores``, the step scores of the score_failures stage, combined here), cut at ``edges`` when
    given (the pool's, to level an evaluation set alike), else at ``score_edges``. A question with no
    attempts at all is a contract error (grading must answer every question), not something to level; a
    failing question with a step score that is no number fails the stage (``refuse_invalid_scores``).
    """
    per_question = attempts.group_by("question_id").agg(
        attempts=pl.len().cast(pl.Int32),
        correct=(pl.col("status") == "correct").sum().cast(pl.Int32),
        completion_tokens=pl.col("completion_tokens").sum(),
    )
    table = questions.join(per_question, on="question_id", how="left")
    missing = table.filter(pl.col("attempts").is_null())["question_id"].to_list()
    if missing:
        raise ValueError(f"{len(missing)} question(s) have no graded attempts, e.g. {missing[:3]}; rerun grading")
    k = int(table.select(pl.col("attempts").max()).item() or 0)
    table = table.with_columns(pass_rate=pl.col("correct") / pl.col("attempts"))
    solved = pl.col("pass_rate") >= levels.solved_pass_rate
    table = table.join(tests_passed_shares(attempts), on="question_id", how="left").with_columns(
        tests_passed_share=pl.when(solved).then(None).otherwise(pl.col("tests_passed_share"))
    )
    grader = None
    if levels.rule == "prm":
        if prm_scores is None:
            raise ValueError("levels.rule=prm needs the PRM step scores of the score_failures stage")
        grader = ",".join(sorted(set(prm_scores["grader"].drop_nulls().to_list()))) or None
        refuse_invalid_scores(prm_scores, table.filter(~solved)["question_id"])
        table = table.join(
            question_scores(prm_scores, levels.aggregate, levels.score_attempt), on="question_id", how="left"
        )
        # A failing question whose attempts had nothing to score gets the least credit.
        table, edges = _level_by_column(table, "prm_score", solved, levels, edges)
    elif levels.rule == "tests_passed":
        # A failing question whose attempts never ran (no program, truncated) passed no test.
        table, edges = _level_by_column(
            table.with_columns(prm_score=pl.lit(None, dtype=pl.Float64)), "tests_passed_share", solved, levels, edges
        )
    else:
        edges = None
        table = table.with_columns(
            prm_score=pl.lit(None, dtype=pl.Float64),
            level=pl.col("pass_rate").map_elements(lambda p: level_by_pass_rate(p, levels), return_dtype=pl.String),
        )
    version = grader_version(levels, k, grader)
    table = conform(table.with_columns(grader_version=pl.lit(version)).sort("question_id"), DATABASE, "database")
    metrics = level_metrics(table)
    metrics.update(grader_version=version, score_edges=edges, **truncation_metrics(table, attempts))
    return table, metrics


def truncation_metrics(table: pl.DataFrame, attempts: pl.DataFrame) -> dict[str, Any]:
    """The share of the student's attempts cut at the token limit, overall and per level.

    A level full of cut attempts measures how long the student talks as much as what it can solve: the
    grading budget (``grade.max_tokens``) should leave this small. Empty for callers without token data.
    """
    if "finish_reason" not in attempts.columns:
        return {}
    cut = attempts.select("question_id", (pl.col("finish_reason") == "length").cast(pl.Float64).alias("cut"))
    joined = cut.join(table.select("question_id", "level"), on="question_id", how="inner")
    by_level: dict[str, float | None] = {}
    for level in LEVELS:
        values = joined.filter(pl.col("level") == level)["cut"]
        by_level[level] = float(values.mean()) if values.len() else None  # type: ignore[arg-type]
    overall = float(joined["cut"].mean()) if joined.height else 0.0  # type: ignore[arg-type]
    return {"truncation_rate": overall, "truncation_by_level": by_level}


def _level_by_column(
    table: pl.DataFrame, column: str, solved: pl.Expr, levels: LevelsParams, edges: dict[str, float] | None
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Solved questions ``easy``; failing ones cut by ``column`` (a score in [0, 1], missing = 0) at ``edges``
    when given, else at ``score_edges`` of the failing ones. Returns the table and the edges used."""
    table = table.with_columns(pl.when(solved).then(None).otherwise(pl.col(column).fill_null(0.0)).alias(column))
    cut = edges if edges is not None else score_edges(table.filter(~solved)[column].to_list(), levels)
    level = pl.col(column).map_elements(lambda s: level_by_score(s, cut), return_dtype=pl.String)
    return table.with_columns(level=pl.when(solved).then(pl.lit("easy")).otherwise(level)), cut


def tests_passed_shares(attempts: pl.DataFrame) -> pl.DataFrame:
    """(question_id, tests_passed_share): the mean over a code question's k attempts of the share of its
    tests each passed (a correct attempt 1, one that never ran, no program or cut off, 0), so a question
    the student sometimes solves ranks above one it never does. No row for math questions (no tests)."""
    if "tests_total" not in attempts.columns:  # attempts of a caller that only counts verdicts
        return pl.DataFrame(schema={"question_id": pl.String, "tests_passed_share": pl.Float64})
    share = pl.when(pl.col("tests_total") > 0).then(pl.col("tests_passed") / pl.col("tests_total")).otherwise(0.0)
    return (
        attempts.group_by("question_id")
        .agg(tests_passed_share=share.mean().cast(pl.Float64), _ran=pl.col("tests_total").is_not_null().any())
        .filter(pl.col("_ran"))
        .drop("_ran")
    )


def level_metrics(table: pl.DataFrame) -> dict[str, Any]:
    """Level histogram, shares, pass rate and PRM score per level, by source: the database's metrics."""
    histogram = {level: int((table["level"] == level).sum()) for level in LEVELS}

    def mean_by_level(column: str) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for level in LEVELS:
            values = table.filter(pl.col("level") == level)[column].drop_nulls()
            out[level] = float(values.mean()) if values.len() else None  # type: ignore[arg-type]
        return out

    shares = (
        {"tests_passed_share_by_level": mean_by_level("tests_passed_share")}
        if table["tests_passed_share"].drop_nulls().len()
        else {}
    )
    return {
        **shares,
        "questions": table.height,
        "level_histogram": histogram,
        "level_share": {lv: (c / table.height if table.height else 0.0) for lv, c in histogram.items()},
        "pass_rate_by_level": mean_by_level("pass_rate"),
        "prm_score_by_level": mean_by_level("prm_score"),
        "mean_pass_rate": float(table["pass_rate"].mean()) if table.height else 0.0,  # type: ignore[arg-type]
        "by_source": {
            src: {lv: int(((table["source"] == src) & (table["level"] == lv)).sum()) for lv in LEVELS}
            for src in sorted(set(table["source"].to_list()))
        },
    }
