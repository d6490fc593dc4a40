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
                    "cached": c.cached,
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
            "prompt_version": pl.String, "cached": pl.Boolean, "reasoning_tokens": pl.Int64,
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


def grader_version(levels: LevelsParams, attempts: int) -> str:
    """A stable label of the level rule, recorded in every database row so rules are never mixed."""
    rule = {"rule": levels.rule, "solved": levels.solved_pass_rate, "bands": levels.min_pass_rate, "k": attempts}
    return f"{levels.rule}:" + json.dumps(rule, sort_keys=True, separators=(",", ":"))


def level_of(pass_rate: float, levels: LevelsParams) -> str:
    """The level of one question under the pass-rate-band rule."""
    if pass_rate >= levels.solved_pass_rate:
        return "easy"
    for level in LEVELS[1:-1]:
        if pass_rate >= levels.min_pass_rate[level]:
            return level
    return "extreme"


def assign_levels(
    questions: pl.DataFrame, attempts: pl.DataFrame, levels: LevelsParams
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per question: attempts, correct, pass rate, level, grader version; and metrics.

    A question with no attempts at all is a contract error (grading must answer every question), not
    something to level silently.
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
    k = int(table["attempts"].max() or 0)
    version = grader_version(levels, k)
    table = table.with_columns(pass_rate=pl.col("correct") / pl.col("attempts")).with_columns(
        level=pl.col("pass_rate").map_elements(lambda p: level_of(p, levels), return_dtype=pl.String),
        grader_version=pl.lit(version),
    )
    table = conform(table.sort("question_id"), DATABASE, "database")
    histogram = {level: int((table["level"] == level).sum()) for level in LEVELS}
    pass_rate_by_level = {
        level: (float(sub["pass_rate"].mean()) if sub.height else None)
        for level in LEVELS
        for sub in [table.filter(pl.col("level") == level)]
    }
    metrics = {
        "questions": table.height,
        "grader_version": version,
        "level_histogram": histogram,
        "level_share": {lv: (c / table.height if table.height else 0.0) for lv, c in histogram.items()},
        "pass_rate_by_level": pass_rate_by_level,
        "mean_pass_rate": float(table["pass_rate"].mean()) if table.height else 0.0,
        "by_source": {
            src: {lv: int(((table["source"] == src) & (table["level"] == lv)).sum()) for lv in LEVELS}
            for src in sorted(set(table["source"].to_list()))
        },
    }
    return table, metrics
