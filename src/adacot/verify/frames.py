"""Verdicts of whole columns: check parallel lists of gold and response, and return a verdict frame.

Every stage that checks answers (grading the student's attempts, verifying the teacher's solutions,
evaluating a model) turns (gold, response, finish_reason, error) columns into (status, reason, extracted,
tests_passed, tests_total) columns the same way, through ``verdict_columns``; ``status_counts`` is how
metrics count them. The checking itself is ``math.py`` (math: gold = the answer) or ``code.py`` (code:
gold = the question's tests, run in the sandbox); this module only shapes verdicts into polars columns.
"""

from __future__ import annotations

import polars as pl

from adacot.config import VerifyParams
from adacot.verify.math import verify_many
from adacot.verify.verdicts import Verdict


def mean_tests_passed_share(table: pl.DataFrame) -> float:
    """Code: the mean over every row of the share of its tests that passed (a row whose program never ran,
    no program, cut off, a failed request, counts 0); 0.0 for an empty table."""
    if table.height == 0:
        return 0.0
    share = pl.when(pl.col("tests_total") > 0).then(pl.col("tests_passed") / pl.col("tests_total")).otherwise(0.0)
    return float(table.select(share.mean()).item())


def status_counts(statuses: pl.Series) -> dict[str, int]:
    """Counts by verdict status, sorted by name, for metrics."""
    return {str(k): int(v) for k, v in sorted(statuses.value_counts().iter_rows())}


def verdict_columns(
    golds: list[str | None],
    texts: list[str],
    finish_reasons: list[str],
    verify: VerifyParams,
    errors: list[str | None] | None = None,
    domain: str = "math",
    count_all_tests: bool = False,
) -> pl.DataFrame:
    """Verdict columns (status, reason, extracted, tests_passed, tests_total) for parallel lists of gold
    and response.

    A failed request (``finish_reason == "error"``) gets status ``request_error`` with its error as the
    reason; it is not sent to the verifier. ``domain="code"`` runs each response's program against its
    gold tests within ``verify.sandbox``; ``count_all_tests`` runs every test of a failing program too,
    so ``tests_passed`` is its real share (grading, for ``levels.rule: tests_passed``).
    """
    errors = errors or [None] * len(texts)
    if domain == "code":
        return _code_verdicts(golds, texts, finish_reasons, verify, errors, count_all_tests)
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
    return _frame(verdicts)


def _frame(verdicts: list[Verdict]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "status": [v.status for v in verdicts],
            "reason": [v.reason for v in verdicts],
            "extracted": [v.extracted for v in verdicts],
            "tests_passed": [v.tests_passed for v in verdicts],
            "tests_total": [v.tests_total for v in verdicts],
        },
        schema=VERDICT_COLUMNS,
    )


VERDICT_COLUMNS = {
    "status": pl.String,
    "reason": pl.String,
    "extracted": pl.String,
    "tests_passed": pl.Int32,
    "tests_total": pl.Int32,
}


def _code_verdicts(
    golds: list[str | None],
    texts: list[str],
    finish_reasons: list[str],
    verify: VerifyParams,
    errors: list[str | None],
    count_all: bool,
) -> pl.DataFrame:
    from adacot.verify.code import Limits, check_responses

    verdicts: list[Verdict | None] = [
        Verdict("request_error", e or "no detail") if f == "error" else None
        for f, e in zip(finish_reasons, errors, strict=True)
    ]
    todo = [i for i, v in enumerate(verdicts) if v is None]
    checked = check_responses(
        [golds[i] for i in todo],
        [texts[i] for i in todo],
        [finish_reasons[i] for i in todo],
        Limits.from_params(verify.sandbox),
        verify.sandbox.workers,
        count_all=count_all,
        progress=len(todo) > 200,
    )
    for i, verdict in zip(todo, checked, strict=True):
        verdicts[i] = verdict
    return _frame([v for v in verdicts if v is not None])
