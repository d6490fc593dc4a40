"""Judge a math response against a gold answer with math-verify, as a ``Verdict`` rather than a boolean.

This module is for the comparison step: parse gold and extracted answer into sympy with math-verify,
compare them, and say which of ``STATUSES`` the pair ends in. math-verify alone returns ``False`` alike
for a wrong answer, an unparseable one and a timed-out one; the wrapper here keeps those apart so that
no row is silently counted as wrong. ``verify_many`` runs the checks in worker processes, because
math-verify's timeouts use ``SIGALRM`` and only work in a process's main thread.

It is not for finding the answer in a response or the gold in a record (``extract.py``), nor for code
answers or anything else that needs a sandbox.
"""

from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from adacot.verify.extract import extract_answer, strip_reasoning
from adacot.verify.verdicts import Verdict

logger = logging.getLogger(__name__)

# math-verify and sympy are imported inside the functions that use them: importing them costs about half
# a second, and ``import adacot.verify`` should stay cheap for code that only extracts answers.

_REASON_MAX_CHARS = 120
_MAX_CHUNKSIZE = 32


class _Timeout(Exception):
    """math-verify gave up on a parse or comparison (its ``TimeoutException`` is a ``BaseException``)."""


def _short(text: str) -> str:
    """``text`` cut to a length that keeps a reason readable in a table cell."""
    return text if len(text) <= _REASON_MAX_CHARS else text[: _REASON_MAX_CHARS - 3] + "..."


def _alarm_seconds(timeout_s: float) -> int:
    """math-verify's timeout as it needs it: ``signal.alarm`` takes whole seconds, so round up.

    A zero or negative timeout would switch math-verify's timeout off altogether, letting one
    pathological answer hang a whole run, so it is refused rather than passed on.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0 (got {timeout_s!r}); math-verify needs a timeout to stay safe")
    return max(1, math.ceil(timeout_s))


def _require_main_thread() -> None:
    # Fail fast with a clear message: math-verify would raise a ValueError deep inside, which the per-row
    # error handling below could otherwise mistake for an unparseable answer.
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "verify_one must run in the main thread of a process (math-verify times out with SIGALRM); "
            "use verify_many, which runs checks in worker processes"
        )


def _has_expression(parsed: Sequence[object]) -> bool:
    import sympy

    return any(isinstance(p, (sympy.Basic, sympy.MatrixBase)) for p in parsed)


# Spellings math-verify's LaTeX parser does not take, rewritten before parsing: a thin space (or "{,}")
# between digit groups is a thousands separator ("1\\,000\\,000"); "~" is a non-breaking space; e-notation
# ("1.5e3") becomes a power of ten; a Unicode minus is a minus.
_DIGIT_GROUP = re.compile(r"(?<=\d)(?:\\,|\{,\}|\\ )(?=\d{3}(?!\d))")
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?!\w)")


def normalise_answer(text: str) -> str:
    """``text`` with the spellings above rewritten; anything else is left for math-verify."""
    text = text.replace("\u2212", "-").replace("~", " ")
    previous = None
    while previous != text:  # groups overlap ("1\\,000\\,000"), so repeat until nothing changes
        previous, text = text, _DIGIT_GROUP.sub("", text)
    return _E_NOTATION.sub(r"\1\\times 10^{\2}", text).strip()


def _parse(text: str, alarm_s: int) -> list[object]:
    """math-verify's parse of ``text``, or ``[]`` if no form of it yields a sympy expression.

    Wrapping in ``\\boxed{}`` parses plain answers most reliably ("2^{10}", "\\sqrt2", "(1,2)" and
    "\\text{(A)}" all fail or misparse bare); ``$...$`` rescues percentages ("10\\%") that the boxed form
    leaves as a string; the raw text is the last resort. A result holding only strings is math-verify's
    fallback for "matched but could not parse", so it does not count as parsed.
    """
    from math_verify import parse
    from math_verify.errors import TimeoutException

    text = normalise_answer(text)
    for candidate in (f"\\boxed{{{text}}}", f"${text}$", text):
        try:
            parsed = parse(candidate, parsing_timeout=alarm_s, raise_on_error=True)
        except TimeoutException as exc:
            raise _Timeout(f"parsing {_short(text)!r} took over {alarm_s}s") from exc
        except Exception as exc:  # noqa: BLE001 - sympy/latex2sympy raise many types on malformed input
            # One wrapping failing is expected for odd input; the next wrapping may still parse.
            logger.debug("math-verify could not parse %r: %s: %s", candidate, type(exc).__name__, exc)
            continue
        if _has_expression(parsed):
            return list(parsed)
    return []


def _equivalent(gold: list[object], answer: list[object], alarm_s: int) -> tuple[bool, list[str]]:
    """Whether any parsed form of the answer matches any parsed form of the gold.

    Pairs are compared one by one (math-verify's own ``verify`` on lists stops at the first error when
    asked to raise): a timeout or error on one pair is recorded, and the other pairs still get their
    chance. Returns (matched, problems) where problems name the pairs that timed out or failed.
    """
    from math_verify import verify
    from math_verify.errors import TimeoutException

    problems: list[str] = []
    for g in gold:
        for a in answer:
            try:
                if verify(g, a, timeout_seconds=alarm_s, raise_on_error=True):
                    return True, problems
            except TimeoutException:
                problems.append("timeout")
            except Exception as exc:  # noqa: BLE001 - sympy raises many types on exotic comparisons
                # A comparison that sympy cannot do is a non-match for that pair, not a crash of the run.
                logger.debug("math-verify comparison failed: %s: %s", type(exc).__name__, exc)
                problems.append(type(exc).__name__)
    return False, problems


def verify_one(
    gold: str | None,
    response: str,
    *,
    finish_reason: str | None = None,
    last_number_fallback: bool = True,
    timeout_s: float = 5.0,
) -> Verdict:
    """Check one response against an already-parsed gold answer (the output of ``parse_gold``).

    Statuses, in the order they are decided: ``request_error`` (``finish_reason == "error"``: the request
    failed and ``response`` holds why); ``unparseable_gold`` (gold missing or math-verify finds no
    expression in it); ``truncated`` (``finish_reason == "length"`` and no ``\\boxed`` answer had been
    given yet, so whatever else was found may be a half-written thought); ``no_answer``;
    ``unparseable_answer``; ``timeout`` (a parse or comparison ran past ``timeout_s``, rounded up to whole
    seconds, for each step); ``correct``; ``wrong``.

    Must run in a process's main thread (math-verify's timeouts use ``SIGALRM``); use ``verify_many``
    elsewhere.
    """
    alarm_s = _alarm_seconds(timeout_s)
    _require_main_thread()
    if finish_reason == "error":
        return Verdict("request_error", f"no response to check: {_short(response) or 'request failed'}", None)
    extraction = extract_answer(response, last_number_fallback=last_number_fallback)
    extracted = extraction.answer

    if gold is None or not gold.strip():
        return Verdict("unparseable_gold", "no gold answer given", extracted)
    try:
        gold_parsed = _parse(gold, alarm_s)
    except _Timeout as exc:
        return Verdict("timeout", f"gold: {exc}", extracted)
    if not gold_parsed:
        return Verdict("unparseable_gold", f"math-verify found no expression in gold {_short(gold)!r}", extracted)

    if finish_reason == "length" and extraction.method != "boxed":
        found = f"; the {extraction.method} answer {_short(extracted)!r} is not trusted" if extracted else ""
        reason = f"hit the token limit (finish_reason=length) before a \\boxed answer{found}"
        return Verdict("truncated", reason, extracted)

    if extracted is None:
        if not strip_reasoning(response):
            reason = "nothing left after removing <think> reasoning" if response.strip() else "empty response"
        else:
            searched = "\\boxed, answer phrase, #### or bare answer"
            reason = f"no {searched}{', nor any number,' if last_number_fallback else ''} found in the response"
        return Verdict("no_answer", reason, None)

    try:
        answer_parsed = _parse(extracted, alarm_s)
    except _Timeout as exc:
        return Verdict("timeout", f"answer: {exc}", extracted)
    if not answer_parsed:
        return Verdict(
            "unparseable_answer",
            f"math-verify found no expression in the {extraction.method} answer {_short(extracted)!r}",
            extracted,
        )

    matched, problems = _equivalent(gold_parsed, answer_parsed, alarm_s)
    if matched:
        return Verdict("correct", f"matches gold {_short(gold)!r} ({extraction.method} answer)", extracted)
    if "timeout" in problems:
        reason = f"comparing {_short(extracted)!r} with gold {_short(gold)!r} took over {alarm_s}s"
        return Verdict("timeout", reason, extracted)
    return Verdict("wrong", f"expected {_short(gold)}, got {_short(extracted)}", extracted)


def _verify_item(
    item: tuple[str | None, str, str | None], *, last_number_fallback: bool, timeout_s: float
) -> Verdict:
    """``verify_one`` on a (gold, response, finish_reason) tuple; module-level so it pickles to workers."""
    gold, response, finish_reason = item
    return verify_one(
        gold, response, finish_reason=finish_reason, last_number_fallback=last_number_fallback, timeout_s=timeout_s
    )


def _with_progress(results: Iterable[Verdict], total: int, progress: bool) -> Iterator[Verdict]:
    if not progress:
        yield from results
        return
    from tqdm import tqdm

    yield from tqdm(results, total=total, desc="verify", unit="answer")


def verify_many(
    items: Sequence[tuple[str | None, str, str | None]],
    *,
    last_number_fallback: bool = True,
    timeout_s: float = 5.0,
    workers: int = 2,
    progress: bool = False,
) -> list[Verdict]:
    """``verify_one`` over (gold, response, finish_reason) tuples; verdicts come back in input order.

    With ``workers > 1`` the checks run in a pool of spawned processes: math-verify's ``SIGALRM``
    timeouts need each check on a main thread, and spawn (not fork) because callers may have torch or
    vLLM threads alive, which fork copies in a broken state. Work is sent in chunks so the per-task IPC
    cost stays small next to the ~12 ms a check takes. ``workers <= 1`` runs inline, which must then be
    on the main thread. ``progress`` shows a tqdm bar with rate.
    """
    _alarm_seconds(timeout_s)  # refuse a bad timeout before paying for worker start-up
    job = functools.partial(_verify_item, last_number_fallback=last_number_fallback, timeout_s=timeout_s)
    n = len(items)
    if n == 0:
        return []
    if workers <= 1:
        _require_main_thread()
        return list(_with_progress(map(job, items), n, progress))

    pool_size = min(workers, n)
    # Several chunks per worker balance load when some checks are slow; never more than 32 per chunk.
    chunksize = max(1, min(_MAX_CHUNKSIZE, math.ceil(n / (pool_size * 4))))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=pool_size, mp_context=context) as executor:
        return list(_with_progress(executor.map(job, items, chunksize=chunksize), n, progress))


def check_golds(
    golds: Sequence[str | None], *, timeout_s: float = 5.0, workers: int = 2, progress: bool = False
) -> list[Verdict | None]:
    """For each gold, ``None`` if math-verify parses it and it matches itself, else the ``Verdict`` why not.

    Meant to run once per question when a pool or benchmark is built, so a gold that cannot be graded is
    reported once (as a reject with this reason) instead of once per attempt in every later stage. The
    self-match puts the gold in ``\\boxed{}`` exactly as a response would, so it also catches golds that
    parse but to something the comparison cannot handle (a bad verdict then names the status).
    """
    verdicts = verify_many(
        [(g, "" if g is None else f"\\boxed{{{g}}}", "stop") for g in golds],
        timeout_s=timeout_s, workers=workers, progress=progress,
    )
    out: list[Verdict | None] = []
    for verdict in verdicts:
        if verdict.status == "correct":
            out.append(None)
        elif verdict.status in ("unparseable_gold", "timeout"):
            out.append(verdict)
        else:
            reason = f"gold does not verify against itself ({verdict.status}: {verdict.reason})"
            out.append(Verdict("unparseable_gold", reason, verdict.extracted))
    return out
