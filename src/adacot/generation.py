"""Teacher solutions: sample m chains of thought per sampled question, then keep verified ones as SFT data.

``generate_solutions`` asks the teacher (any ``ChatModel``) through the response cache and records every
attempt with usage and finish_reason; ``reference_solutions`` is the teacher ``teacher.backend:
reference`` (the "human solutions" baseline): each question's own worked solution from its source, one
per question, recorded like a teacher's answer with no tokens and no cost. ``select_solutions`` checks
them with the shared verifier, marks one kept solution per question (the first verified one, or with
``keep_unverified`` the first complete one that commits to an answer) and builds the prompt/completion
rows TRL trains on. Rejected
rows are kept with their reasons. ``require_kept`` fails the stage when no row is kept (an empty SFT set
would train nothing). This module does not train.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from adacot.config import VerifyParams
from adacot.errors import StageFailure
from adacot.llm import CacheStats, ChatModel, Price, ResponseCache, Sampling
from adacot.llm.spend import spend_block
from adacot.prompts import PromptSet
from adacot.responses import collect_responses
from adacot.schemas import SOLUTIONS, VERIFIED_SOLUTIONS, conform
from adacot.verify.frames import status_counts, verdict_columns

REFERENCE_MODEL_ID = "reference"  # the model id of reference solutions in the solutions table


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


def reference_answer(solution: str | None, domain: str) -> str | None:
    """A source's worked solution as the teacher's answer in ``domain``, or ``None`` when there is none.

    Math: the text as it is (MATH boxes its answer; GSM8K's and the generator's solutions were boxed when
    the pool was built). Code: the program in one python code block, the form the code verifier reads
    (a solution that already holds a code block is kept as it is).
    """
    if solution is None or not solution.strip():
        return None
    text = solution.replace("\r\n", "\n").strip()
    if domain == "code" and "```" not in text:
        return f"```python\n{text}\n```"
    return text


def reference_solutions(sample: pl.DataFrame, prompts: PromptSet, domain: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The reference teacher: one answer per sampled question, its own worked solution (``reference_answer``).

    Rows look like any teacher's (sample_index 0, finish_reason ``stop``, model id ``reference``, 0 tokens,
    no latency), so verify_solutions judges them like any teacher answer. A question without a solution is
    a row with finish_reason ``error`` and the reason (counted in metrics, rejected by verification, never
    dropped). No question with a solution, or an empty sample, is a ``StageFailure``.
    """
    if sample.height == 0:
        raise StageFailure(
            "generate_solutions: the sample is empty, nothing to ask the teacher; see sample_questions' metrics"
        )
    answers = [reference_answer(s, domain) for s in sample["solution"].to_list()]
    missing = pl.Series([a is None for a in answers], dtype=pl.Boolean)
    reasons = [
        f"no reference solution: source {source} gives none for this question (its `fields.solution` in "
        "pool.sources is unset, or the row's solution is empty)"
        if a is None
        else None
        for a, source in zip(answers, sample["source"].to_list(), strict=True)
    ]
    frame = sample.select("question_id", "question", "gold", "level").with_columns(
        sample_index=pl.lit(0, dtype=pl.Int32),
        finish_reason=pl.when(missing).then(pl.lit("error")).otherwise(pl.lit("stop")),
        prompt_tokens=pl.lit(0, dtype=pl.Int64),
        completion_tokens=pl.lit(0, dtype=pl.Int64),
        model_id=pl.lit(REFERENCE_MODEL_ID),
        prompt_version=pl.lit(prompts.version),
        reasoning_tokens=pl.lit(0, dtype=pl.Int64),
        latency_s=pl.lit(0.0),
        served_model=pl.lit(None, dtype=pl.String),
        error=pl.Series(reasons, dtype=pl.String),
        solution=pl.Series([a or "" for a in answers], dtype=pl.String),
    )
    table = conform(frame, SOLUTIONS, "solutions")
    missing_by_source = status_counts(sample.filter(missing)["source"])
    used = sample.height - int(missing.sum())
    if used == 0:
        by_source = ", ".join(f"{k} {v}" for k, v in missing_by_source.items())
        raise StageFailure(
            f"generate_solutions: teacher.backend=reference but none of the {sample.height} sampled questions has "
            f"a reference solution (by source: {by_source}); map the solution column of those sources "
            "(pool.sources[].fields.solution; GSM8K: `solution: answer`) or use teacher.backend local or openai"
        )
    metrics = {
        "questions": sample.height,
        "solutions": table.height,
        "by_finish_reason": status_counts(table["finish_reason"]),
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "reasoning_tokens": 0,
        "failed_requests": 0,  # no request is sent; a missing reference is counted under `reference`
        "cache": CacheStats().as_metrics(),  # nothing asked, nothing spent: the ledger is all zeros
        "reference": {"used": used, "missing": sample.height - used, "missing_by_source": missing_by_source},
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
        **_reference_block(table),
    }
    return table, rows, metrics


def _reference_block(table: pl.DataFrame) -> dict[str, Any]:
    """``{"reference": ...}``: how the reference solutions fared (the "human solutions" baseline), if any."""
    reference = table.filter(pl.col("model_id") == REFERENCE_MODEL_ID)
    if reference.height == 0:
        return {}
    used = reference.filter(pl.col("finish_reason") != "error")
    failed = used.filter(pl.col("status") != "correct")
    return {
        "reference": {
            "questions": reference.height,
            "used": used.height,
            "missing": reference.height - used.height,
            "verified": used.height - failed.height,
            "verified_fraction": (used.height - failed.height) / used.height if used.height else 0.0,
            "failed_verification_by_status": status_counts(failed["status"]),
        }
    }


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
