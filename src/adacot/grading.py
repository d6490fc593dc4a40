"""Grading: the student's k attempts per question, their verdicts, and the level rule.

``grade_attempts`` asks the student model k times per question (through the response cache) and judges
every attempt with the shared verifier; ``assign_levels`` turns attempts into one database row per
question with its pass rate and level under the params' level rule. The two are separate DVC stages, so
changing the level rule never reruns the student. This module does not sample or train.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from adacot.config import LevelsParams, VerifyParams
from adacot.levels import LEVELS
from adacot.llm import ChatModel, Price, ResponseCache, Sampling, cached_complete
from adacot.prompts import PromptSet
from adacot.schemas import ATTEMPTS, DATABASE, conform
from adacot.verify import verify_many


def status_counts(statuses: pl.Series) -> dict[str, int]:
    """Counts by verdict status, sorted by name, for metrics."""
    return {str(k): int(v) for k, v in sorted(statuses.value_counts().iter_rows())}


def judge(
    golds: list[str | None], texts: list[str], finish_reasons: list[str], verify: VerifyParams,
    errors: list[str | None] | None = None,
) -> pl.DataFrame:
    """Verdict columns (status, reason, extracted) for parallel lists of gold and response.

    A failed request (``finish_reason == "error"``) gets status ``request_error`` with its error as the
    reason; it is not sent to the verifier.
    """
    errors = errors or [None] * len(texts)
    items = [(g, (e or "no detail") if f == "error" else t, f) for g, t, f, e in zip(golds, texts, finish_reasons, errors)]
    verdicts = verify_many(
        items,
        last_number_fallback=verify.last_number_fallback,
        timeout_s=verify.timeout_s,
        workers=verify.workers,
        progress=len(texts) > 200,
    )
    return pl.DataFrame(
        {
            "status": [v.status for v in verdicts],
            "reason": [v.reason for v in verdicts],
            "extracted": [v.extracted for v in verdicts],
        },
        schema={"status": pl.String, "reason": pl.String, "extracted": pl.String},
    )


def sample_role(
    questions: pl.DataFrame,
    model: ChatModel,
    prompts: PromptSet,
    role: str,
    sampling: Sampling,
    n: int,
    cache: ResponseCache | None,
    batch_requests: int,
    desc: str,
    price: Price | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per (question, sample index) with the completion and its accounting.

    The metrics are the cache ledger (hits, misses, errors, tokens and dollars spent and saved) plus, for
    a remote model, what its client did (requests sent, retries by cause).
    """
    conversations = [prompts.render(role, q) for q in questions["question"]]
    completions, stats = cached_complete(
        model, conversations, sampling, n, cache, batch_requests=batch_requests, desc=desc, price=price
    )
    rows: list[dict[str, Any]] = []
    for qid, samples in zip(questions["question_id"], completions):
        for index, c in enumerate(samples):
            rows.append(
                {
                    "question_id": qid,
                    "sample_index": index,
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "model_id": c.model_id,
                    "prompt_version": prompts.version,
                    "reasoning_tokens": c.reasoning_tokens,
                    "latency_s": c.latency_s,
                    "served_model": c.served_model,
                    "error": c.error,
                }
            )
    frame = pl.DataFrame(
        rows,
        schema={
            "question_id": pl.String, "sample_index": pl.Int32, "text": pl.String, "finish_reason": pl.String,
            "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "model_id": pl.String,
            "prompt_version": pl.String, "reasoning_tokens": pl.Int64,
            "latency_s": pl.Float64, "served_model": pl.String, "error": pl.String,
        },
    )
    metrics = stats.as_metrics()
    client_stats = getattr(model, "stats", None)
    if client_stats is not None and hasattr(client_stats, "as_metrics"):
        metrics["client"] = client_stats.as_metrics()
    return frame, metrics


def grade_attempts(
    questions: pl.DataFrame,
    model: ChatModel,
    prompts: PromptSet,
    sampling: Sampling,
    attempts: int,
    verify: VerifyParams,
    cache: ResponseCache | None,
    batch_requests: int = 256,
    price: Price | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every student attempt with its verdict, and metrics (counts by status, tokens, cache, cost)."""
    frame, cache_metrics = sample_role(
        questions, model, prompts, "student", sampling, attempts, cache, batch_requests, "grade", price
    )
    golds = dict(zip(questions["question_id"], questions["gold"]))
    verdicts = judge([golds[q] for q in frame["question_id"]], frame["text"].to_list(),
                     frame["finish_reason"].to_list(), verify, frame["error"].to_list())
    table = conform(pl.concat([frame.rename({"text": "attempt"}), verdicts], how="horizontal"), ATTEMPTS, "attempts")
    metrics = {
        "questions": questions.height,
        "attempts": table.height,
        "by_status": status_counts(table["status"]),
        # prepare_pool rejects ungradable golds, so this stays 0 unless a pool bypassed it.
        "questions_with_unparseable_gold": table.filter(pl.col("status") == "unparseable_gold")["question_id"].n_unique(),
        "completion_tokens": int(table["completion_tokens"].sum()),
        "cache": cache_metrics,
    }
    return table, metrics


def grader_version(levels: LevelsParams, attempts: int, prm_grader: str | None = None) -> str:
    """A stable label of the level rule, recorded in every database row so rules are never mixed.

    It names everything that decides a level: the rule, k, the solved threshold and, for the PRM rule,
    the grader (kind and model id), the edges, the aggregation and which attempt scores the question.
    """
    rule: dict[str, Any] = {"rule": levels.rule, "solved": levels.solved_pass_rate, "k": attempts}
    if levels.rule == "pass_rate_bands":
        rule["bands"] = levels.min_pass_rate
    else:
        rule.update(grader=prm_grader, edges=levels.edges, aggregate=levels.aggregate, attempt=levels.score_attempt)
        if levels.edges == "fixed":
            rule["min_score"] = levels.min_score
    return f"{levels.rule}:" + json.dumps(rule, sort_keys=True, separators=(",", ":"))


def level_of(pass_rate: float, levels: LevelsParams) -> str:
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
    return {lv: float(series.quantile(q, interpolation="linear")) for lv, q in zip(failing, (0.75, 0.5, 0.25))}


def level_by_score(score: float, edges: dict[str, float]) -> str:
    """The failing level of a PRM score: the first whose edge it reaches, else ``extreme``."""
    for level in LEVELS[1:-1]:
        if score >= edges[level]:
            return level
    return "extreme"


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
    attempts at all is a contract error (grading must answer every question), not something to level.
    """
    from adacot.prm import question_scores

    per_question = attempts.group_by("question_id").agg(
        attempts=pl.len().cast(pl.Int32),
        correct=(pl.col("status") == "correct").sum().cast(pl.Int32),
        completion_tokens=pl.col("completion_tokens").sum(),
    )
    table = questions.join(per_question, on="question_id", how="left")
    missing = table.filter(pl.col("attempts").is_null())["question_id"].to_list()
    if missing:
        raise ValueError(f"{len(missing)} question(s) have no graded attempts, e.g. {missing[:3]}; rerun grading")
    k = int(table["attempts"].max() or 0)
    table = table.with_columns(pass_rate=pl.col("correct") / pl.col("attempts"))
    solved = pl.col("pass_rate") >= levels.solved_pass_rate
    grader = None
    if levels.rule == "prm":
        if prm_scores is None:
            raise ValueError("levels.rule=prm needs the PRM step scores of the score_failures stage")
        grader = ",".join(sorted(set(prm_scores["grader"].drop_nulls().to_list()))) or None
        scores = question_scores(prm_scores, levels.aggregate, levels.score_attempt)
        table = table.join(scores, on="question_id", how="left").with_columns(
            # A failing question whose attempts had nothing to score gets the least credit.
            prm_score=pl.when(solved).then(None).otherwise(pl.col("prm_score").fill_null(0.0))
        )
        cut = edges if edges is not None else score_edges(table.filter(~solved)["prm_score"].to_list(), levels)
        edges = cut
        table = table.with_columns(
            level=pl.when(solved).then(pl.lit("easy")).otherwise(
                pl.col("prm_score").map_elements(lambda s: level_by_score(s, cut), return_dtype=pl.String)
            )
        )
    else:
        edges = None
        table = table.with_columns(
            prm_score=pl.lit(None, dtype=pl.Float64),
            level=pl.col("pass_rate").map_elements(lambda p: level_of(p, levels), return_dtype=pl.String),
        )
    version = grader_version(levels, k, grader)
    table = conform(table.with_columns(grader_version=pl.lit(version)).sort("question_id"), DATABASE, "database")
    metrics = level_metrics(table)
    metrics.update(grader_version=version, score_edges=edges)
    return table, metrics


def level_metrics(table: pl.DataFrame) -> dict[str, Any]:
    """Level histogram, shares, pass rate and PRM score per level, by source: the database's metrics."""
    histogram = {level: int((table["level"] == level).sum()) for level in LEVELS}

    def mean_by_level(column: str) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for level in LEVELS:
            values = table.filter(pl.col("level") == level)[column].drop_nulls()
            out[level] = float(values.mean()) if values.len() else None  # type: ignore[arg-type]
        return out

    return {
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
