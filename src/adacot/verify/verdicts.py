"""The verdict vocabulary for answer checks, math and code: the statuses a check may end in and ``Verdict``.

This module is for naming outcomes, so that every checker in the project reports the same statuses and
a reason instead of a bare boolean (house rule: verdicts, not booleans). It is not where answers are
extracted (``extract.py``) or compared (``math.py``); it holds no logic beyond validating a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES: tuple[str, ...] = (
    "correct",
    "wrong",
    "no_answer",
    "truncated",
    "unparseable_gold",
    "unparseable_answer",
    "timeout",
    "request_error",  # the model was never heard from: the request failed for good (the reason says why)
    # code only (verify/code.py): the program ran out of memory, crashed, or could not be run at all
    "memory",
    "runtime_error",
    "sandbox_error",
)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one response against one gold answer.

    ``status`` is one of ``STATUSES``; ``reason`` says why in words (never empty, so that a row kept with
    its verdict can be understood without rerunning the check); ``extracted`` is the answer string taken
    from the response (for code: the program), or ``None`` when none was found. A code check also says
    which test failed (``failed_test``, 0-based), what it expected and what the program printed
    (``expected``, ``got``), whether that output was cut at the limit (``output_truncated``), and how
    many of the question's tests passed (``tests_passed`` of ``tests_total``; the fraction some level
    rules use). Math checks leave these ``None``.
    """

    status: str
    reason: str
    extracted: str | None = None
    failed_test: int | None = None
    expected: str | None = None
    got: str | None = None
    output_truncated: bool = False
    tests_passed: int | None = None
    tests_total: int | None = None

    def __post_init__(self) -> None:
        # Fail at construction, not downstream: a typo'd status would silently fall out of every
        # per-status count in the metrics.
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}; known statuses are {', '.join(STATUSES)}")
        if not self.reason.strip():
            raise ValueError(f"verdict with status {self.status!r} needs a non-empty reason")

    @property
    def is_correct(self) -> bool:
        """True only for ``status == "correct"``; every other status counts as not solved."""
        return self.status == "correct"
