"""Teacher solutions: sample m chains of thought per sampled question, then keep verified ones as SFT data.

``generate_solutions`` asks the teacher (any ``ChatModel``) through the response cache and records every
attempt with usage and finish_reason; ``select_solutions`` checks them with the shared verifier,
marks one kept solution per question (the first verified one, or with ``keep_unverified`` the first
complete one that commits to an answer) and builds the prompt/completion rows TRL trains on. Rejected
rows are kept with their reasons. ``require_kept`` fails the stage when no row is kept (an empty SFT set
would train nothing). This module does not train.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from adacot.config import VerifyParams
from adacot.errors import StageFailure
from adacot.llm import ChatModel, Price, ResponseCache, Sampling
from adacot.llm.spend import spend_block
from adacot.prompts import PromptSet
from adacot.responses import collect_responses
from adacot.schemas import SOLUTIONS, VERIFIED_SOLUTIONS, conform
from adacot.verify.frames import status_counts, verdict_columns


def generate_solutions(
    sample: pl.DataFrame,
    teacher: ChatModel,
    prompts: PromptSet,
    sampling: Sampling,
    attempts: int,
    cache: ResponseCache | None,
    batch_requests: int = 256,
    price: Price | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every teacher attempt for every sampled question, and metrics (tokens, finish reasons, cache, cost).

    An empty sample is a ``StageFailure`` (there would be nothing to train on).
    """
    if sample.height == 0:
        raise StageFailure(
            "generate_solutions: the sample is empty, nothing to ask the teacher; see sample_questions' metrics"
        )
    frame, cache_metrics = collect_responses(
        sample, teacher, prompts, "teacher", sampling, attempts, cache, batch_requests, "teacher", price
    )
    frame = frame.rename({"text": "solution"}).join(
        sample.select("question_id", "question", "gold", "level"), on="question_id", how="left"
    )
    table = conform(frame, SOLUTIONS, "solutions")
    metrics = {
        "questions": sample.height,
        "solutions": table.height,
        "by_finish_reason": status_counts(table["finish_reason"]),
        "prompt_tokens": int(table["prompt_tokens"].sum()),
        "completion_tokens": int(table["completion_tokens"].sum()),
        "reasoning_tokens": int(table["reasoning_tokens"].sum()),
        "failed_requests": int((table["finish_reason"] == "error").sum()),
        "cache": cache_metrics,
        **spend_block(teacher),  # a served teacher: projected vs actual spend
    }
    return table, metrics


def select_solutions(
    solutions: pl.DataFrame, prompts: PromptSet, verify: VerifyParams, keep_unverified: bool, domain: str = "math"
) -> tuple[pl.DataFrame, list[dict[str, Any]], dict[str, Any]]:
    """(all solutions with verdict and `kept`, SFT rows, metrics). A code solution is verified only when
    its program passes every test of its question in the sandbox."""
    solutions = conform(solutions, SOLUTIONS, "solutions").sort("question_id", "sample_index")
    verdicts = verdict_columns(
        solutions["gold"].to_list(),
        solutions["solution"].to_list(),
        solutions["finish_reason"].to_list(),
        verify,
        solutions["error"].to_list(),
        domain=domain,
    )
    checked = pl.concat([solutions, verdicts], how="horizontal")
    # Rank candidates per question: verified first; then (only if allowed) complete unverified ones.
    eligible = pl.col("status") == "correct"
    if keep_unverified:
        eligible = eligible | (
            (pl.col("finish_reason") == "stop") & ~pl.col("status").is_in(["no_answer", "truncated", "request_error"])
        )
    checked = checked.with_columns(
        _rank=pl.when(pl.col("status") == "correct").then(0).when(eligible).then(1).otherwise(None)
    )
    best = (
        checked.filter(pl.col("_rank").is_not_null())
        .sort("question_id", "_rank", "sample_index")
        .group_by("question_id", maintain_order=True)
        .first()
        .select("question_id", "sample_index")
        .with_columns(kept=pl.lit(True))
    )
    checked = checked.join(best, on=["question_id", "sample_index"], how="left").with_columns(
        kept=pl.col("kept").fill_null(False)
    )
    table = conform(checked, VERIFIED_SOLUTIONS, "verified solutions")
    kept = table.filter(pl.col("kept"))
    rows = [
        {
            "question_id": r["question_id"],
            "level": r["level"],
            "verified": r["status"] == "correct",
            "prompt": list(prompts.render("student", r["question"])),
            "completion": [{"role": "assistant", "content": r["solution"].strip()}],
        }
        for r in kept.iter_rows(named=True)
    ]
    questions = table["question_id"].n_unique()
    metrics = {
        "solutions": table.height,
        "questions": questions,
        "by_status": status_counts(table["status"]),
        "verified_fraction": (table["status"] == "correct").sum() / table.height if table.height else 0.0,
        "questions_with_verified_solution": int(kept.filter(pl.col("status") == "correct").height),
        "kept": kept.height,
        "kept_unverified": int(kept.filter(pl.col("status") != "correct").height),
        "kept_by_level": {str(k): int(v) for k, v in sorted(kept["level"].value_counts().iter_rows())},
        "questions_without_kept_solution": questions - kept.height,
        "rejected": table.height - kept.height,
    }
    return table, rows, metrics


def require_kept(metrics: dict[str, Any], keep_unverified: bool, verdicts: str) -> None:
    """Raise ``StageFailure`` when ``select_solutions`` kept no row, saying why (counts by status).

    ``verdicts`` names where the stage wrote every solution's verdict and reason, so the user can look.
    """
    if metrics["kept"]:
        return
    by_status = ", ".join(f"{status} {count}" for status, count in metrics["by_status"].items()) or "none"
    advice = "fix the teacher (generate_solutions' metrics)"
    if not keep_unverified:
        advice += " or set teacher.keep_unverified: true"
    raise StageFailure(
        f"verify_solutions kept 0 of {metrics['solutions']} teacher solutions for SFT (by status: {by_status}); "
        f"every verdict and its reason is in {verdicts}; {advice}"
    )
