"""Verdicts of whole columns: check parallel lists of gold and response, and return a verdict frame.

Every stage that checks answers (grading the student's attempts, verifying the teacher's solutions,
evaluating a model) turns (gold, response, finish_reason, error) columns into (status, reason, extracted)
columns the same way, through ``verdict_columns``; ``status_counts`` is how metrics count them. The
checking itself is ``math.py``; this module only shapes its verdicts into polars columns.
"""

from __future__ import annotations

import polars as pl

from adacot.config import VerifyParams
from adacot.verify.math import verify_many


def status_counts(statuses: pl.Series) -> dict[str, int]:
    """Counts by verdict status, sorted by name, for metrics."""
    return {str(k): int(v) for k, v in sorted(statuses.value_counts().iter_rows())}


def verdict_columns(
    golds: list[str | None],
    texts: list[str],
    finish_reasons: list[str],
    verify: VerifyParams,
    errors: list[str | None] | None = None,
) -> pl.DataFrame:
    """Verdict columns (status, reason, extracted) for parallel lists of gold and response.

    A failed request (``finish_reason == "error"``) gets status ``request_error`` with its error as the
    reason; it is not sent to the verifier.
    """
    errors = errors or [None] * len(texts)
    items = [
        (g, (e or "no detail") if f == "error" else t, f)
        for g, t, f, e in zip(golds, texts, finish_reasons, errors, strict=True)
    ]
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
