"""Judge a math response against a gold answer with math-verify, as a ``Verdict`` rather than a boolean.

This module is for the extraction and comparison steps. Every response goes through math-verify's own
extraction first (its ``LatexExtractionConfig`` and ``ExprExtractionConfig``: boxed answers at the top
priority, then its final-answer and "answer" phrases, then LaTeX and numbers anywhere, rightmost first),
with three corrections where the library demonstrably takes the wrong span: an answer phrase may not
reach past its own line into the working (nor, for the loosest pattern, lack an "is", "=" or ":"); after
one marker the nearest answer wins; a closing GSM8K ``#### X`` line beats a phrase from the working.
A bare LaTeX last line written without ``$`` is parsed whole instead of by the number the library would
pick out of it. Our own rules (``extract.extract_answer``: an answer phrase, ``####``, a bare answer, the
last number for plain numeric golds) run only where the library finds nothing. Golds are parsed
explicitly (in ``$...$``, else ``\\boxed{}``; a gold holding boxes as the library reads it), with the
readings ``gold_forms`` adds (a decimal comma, a number with a unit, a function's right-hand side,
assignments' values); a gold that is a choice letter or a word is compared as text, never as a number.
Where that reading is not ``correct``, two more checks may still accept the answer: the answer written
exactly as the gold (``same_text``), and, where our reading found nothing it could parse, math-verify's own
default judgement (``verify(parse(gold), parse(response))``), so that our corrections never lose an
answer the library accepts for want of parsing it. The outcome is one of ``STATUSES``: math-verify alone
returns ``False`` alike for a wrong answer, an unparseable one and a timed-out one; the wrapper keeps
those apart so that no row is silently counted as wrong. ``verify_many`` spreads the checks over
processes, because math-verify's timeouts use ``SIGALRM`` and only work in a process's main thread.

It is not for pulling the gold out of a dataset record (``extract.parse_gold``), for string rewrites and
text-answer rules (``extract.py``), nor for code answers or anything else that needs a sandbox.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import math
import multiprocessing
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from adacot.verify.extract import (
    TextGold,
    bare_line,
    extract_answer,
    final_hash_answer,
    find_text_answer,
    is_plain_number,
    normalise_answer,
    prepare_response,
    strip_reasoning,
    text_gold,
    text_matches,
)
from adacot.verify.verdicts import Verdict

__all__ = ["check_golds", "normalise_answer", "verify_many", "verify_one"]

logger = logging.getLogger(__name__)

# math-verify and sympy are imported inside the functions that use them: importing them costs about half
# a second, and ``import adacot.verify`` should stay cheap for code that only extracts answers.

_REASON_MAX_CHARS = 120
# Parsed golds kept per process: a pool or benchmark repeats each gold k times (one per attempt), and the
# parse is a good part of a check's cost.
_GOLD_CACHE_MAX = 4096
_MAX_CHUNKSIZE = 64
# Below this many checks the calling process does them all itself: starting a worker (a fresh interpreter
# importing sympy and math-verify, about 0.75 s of CPU) costs more than it saves on ~3 ms checks.
_MIN_POOLED_ITEMS = 100
_OURS = 400  # the priority of an answer found by our own rules: after all of math-verify's patterns


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


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _require_main_thread() -> None:
    # Fail fast with a clear message: math-verify would raise a ValueError deep inside, which the per-row
    # error handling below could otherwise mistake for an unparseable answer.
    if not _in_main_thread():
        raise RuntimeError(
            "verify_one must run in the main thread of a process (math-verify times out with SIGALRM); "
            "use verify_many, which runs checks in worker processes"
        )


# --- math-verify's extraction ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """An answer found in a response: its sympy forms (empty when it did not parse), the answer string
    (what ``Verdict.extracted`` reports) and how it was found: ``boxed``, ``answer_phrase`` (math-verify's
    "final answer is" / "answer:" patterns, or ours), ``latex`` / ``expression`` (math-verify's rightmost
    LaTeX span or number with no marker), ``bare`` (a whole bare line), ``gsm8k_hash``, ``last_number``."""

    parsed: tuple[Any, ...]
    text: str
    method: str
    # math-verify's pattern priority (0 boxed, 50-200 answer phrases, 300 unmarked); ours come after.
    priority: int = _OURS


@functools.cache
def _configs(numbers: bool, latex_only: bool) -> tuple[Any, ...]:
    """math-verify extraction configs. Boxed answers get priority 0, ahead of final-answer phrases (the
    library's default 50 would let "final answer is 3" beat a later ``\\boxed{4}``). ``numbers`` lets the
    library take a number with no marker (the rightmost in the text): ``last_number_fallback`` switches it.
    Instances are cached because math-verify caches its compiled regexes per config object."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    latex = LatexExtractionConfig(boxed_match_priority=0)
    return (latex,) if latex_only else (latex, ExprExtractionConfig(try_extract_without_anchor=numbers))


@functools.cache
def _pattern_groups(numbers: bool, latex_only: bool) -> tuple[tuple[int, tuple[tuple[Any, Any], ...]], ...]:
    """math-verify's regexes for ``_configs``, grouped by priority, lowest (tried first) first."""
    from math_verify.parser import get_extraction_regexes

    flat = sorted(
        (
            (priority, pattern, target)
            for patterns, target in get_extraction_regexes(_configs(numbers, latex_only))
            for pattern, priority in patterns
        ),
        key=lambda x: x[0],
    )
    return tuple(
        (priority, tuple((pattern, target) for _, pattern, target in group))
        for priority, group in itertools.groupby(flat, key=lambda x: x[0])
    )


def _is_expression(value: object) -> bool:
    import sympy

    return isinstance(value, (sympy.Basic, sympy.MatrixBase))


def _method(priority: int, target: object, matched: str) -> str:
    from math_verify import LatexExtractionConfig

    if priority == 0 and ("\\boxed" in matched or "\\fbox" in matched):
        return "boxed"
    if priority < 300:
        return "answer_phrase"
    return "latex" if isinstance(target, LatexExtractionConfig) else "expression"


_MARKER_FILLER = re.compile(r"[\s:*]|\bis\b", re.IGNORECASE)
_COPULA = re.compile(r"\b(?:is|are|was|were|be|equals?)\b|[=:]", re.IGNORECASE)
_ANSWER_COLON_PRIORITY = 100  # math-verify's "answer:" pattern; below it only boxed and "final answer is"
_LOOSE_ANSWER_PRIORITY = 200  # math-verify's "answer" anywhere, followed within 50 characters by the answer


def _answer_start(match: re.Match[str]) -> int:
    """Where the answer of a phrase match begins (its first named group; the marker has none)."""
    starts = [match.start(name) for name, value in match.groupdict().items() if value is not None]
    return min(starts) if starts else match.end()


def _loose_phrase(match: re.Match[str], priority: int) -> bool:
    """Whether an answer-phrase match is too loose to be an answer marker.

    Two ways math-verify's phrase patterns misfire: (1) they let up to 50 (or 100) characters, newlines
    included, sit between "answer" and the answer, so in "The answer is 15.\n\nCheck: $15 / 2 = 7.5$"
    they take the check instead of the 15 on the marker's own line (an answer on the next line right after
    the marker, "Final answer:\n\n$27$", is still taken); (2) the lowest of them takes "answer" anywhere,
    so "To answer this, note that 3 apples ..." made 3 the answer: it now needs "is", "be", "=" or ":"
    between the word and the answer.
    """
    marker = match.group(0).lower().find("answer")
    if marker == -1:
        return False
    gap = match.string[match.start() + marker + len("answer") : _answer_start(match)]
    if "\n" in gap and _MARKER_FILLER.sub("", gap):
        return True
    return priority == _LOOSE_ANSWER_PRIORITY and not _COPULA.search(gap)


def _library_find(text: str, *, numbers: bool, latex_only: bool, alarm_s: int) -> _Found | None:
    """math-verify's extraction of ``text`` in its ``first_match`` mode, keeping which pattern hit.

    This is the loop of ``math_verify.parser.extract_target_from_pred`` with ``extraction_mode=
    "first_match"``: the priority groups are tried in order and, in the first group with a match, one match
    is taken, the rightmost (for answer phrases: the last marker and the answer nearest it, and a phrase
    that ``_loose_phrase`` rejects is no match). If that match does not parse, the answer is unparseable:
    a later, lower priority number in the reasoning is not what the response committed to. Run here
    instead of through ``parse`` so the method (boxed or not) and priority are known, which the
    ``truncated`` rule, the ``####`` rule and the reasons need.
    """
    from math_verify import parser
    from math_verify.errors import TimeoutException
    from math_verify.utils import timeout

    def run() -> _Found | None:
        for priority, patterns in _pattern_groups(numbers, latex_only):
            matches = [
                (m, target)
                for pattern, target in patterns
                for m in pattern.finditer(text)
                if not (0 < priority < 300 and _loose_phrase(m, priority))
            ]
            if not matches:
                continue
            if 0 < priority < 300:
                # One marker, several answers after it (the library's LaTeX and number patterns both match
                # "The answer is $\frac{5}{2}$ hours, i.e. 150 minutes"): the last marker, and after it the
                # answer nearest to it. The library's own order (rightmost end) would take the 150.
                match, target = max(matches, key=lambda mt: (mt[0].start(), -_answer_start(mt[0])))
            else:
                match, target = max(matches, key=lambda mt: (mt[0].end(), -mt[0].start()))
            # Looked up on the module at call time (not imported by name) so tests can stand in for it.
            value, string = parser.extract_match(match, target)
            parsed = (value,) if value is not None and _is_expression(value) else ()
            text_found = str(string or match.group(0)).strip()
            return _Found(parsed, text_found, _method(priority, target, match.group(0)), priority)
        return None

    try:
        return timeout(timeout_seconds=alarm_s)(run)()
    except TimeoutException as exc:
        raise _Timeout(f"extracting from {_short(text)!r} took over {alarm_s}s") from exc


def _parse_whole(text: str, alarm_s: int) -> tuple[Any, ...]:
    """math-verify's parse of ``text`` taken as one answer, or ``()`` if no wrapping of it parses.

    ``$...$`` first, then ``\\boxed{}`` (they agree on every MATH500 gold); never the bare text, in which
    math-verify would only find a number inside ("5" of "x \\geq 5").
    """
    text = normalise_answer(text).replace("\n", " ")
    for candidate in (f"${text}$", f"\\boxed{{{text}}}"):
        found = _library_find(candidate, numbers=False, latex_only=True, alarm_s=alarm_s)
        if found is not None and found.parsed:
            return found.parsed
    return ()


# --- golds -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gold:
    """A parsed gold: a text gold (choice letter or word), or its sympy forms (empty: unparseable)."""

    text: TextGold | None
    parsed: tuple[Any, ...]
    numeric: bool


_gold_cache: dict[str, _Gold] = {}

# "1,22": a comma before one or two digits is no thousands separator; graders of these datasets (and
# math-verify) read it as a decimal comma. The list reading (1, 22) is kept as well.
_DECIMAL_COMMA = re.compile(r"^(-?\d+),(\d{1,2})$")
# "10 weeks", "10weeks", "10 cm^2", "18 \\text{dollars}": a number with a unit word of two letters or more.
_UNIT_SUFFIX = re.compile(
    r"^(?P<number>-?\d+(?:\.\d+)?)\s*(?:\\(?:text|mbox|mathrm)\s*\{\s*)?(?P<unit>[A-Za-z]{2,12})"
    r"(?:\^\{?\d\}?)?\s*\}?\.?$"
)
# "f(x) = 2x + 3" is also answered by "y = 2x + 3" or "2x + 3"; "x = 1, y = 2, z = 3" by "1, 2, 3".
_FUNCTION_GOLD = re.compile(r"^(?:[A-Za-z]\s*\(\s*[A-Za-z]\s*\)|y)\s*=\s*(?P<rhs>[^=]+)$")
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?P<value>[^=]+)$")
_NOT_UNITS = frozenset({"pi", "ln", "log", "sin", "cos", "tan", "sqrt", "inf", "infty", "exp", "deg"})


def gold_forms(gold: str) -> list[str]:
    """The readings of a gold that an answer may match: the gold itself, plus the decimal reading of a
    decimal comma ("1,22" is also 1.22), the number of a number with a unit ("10 weeks" is also 10), the
    right-hand side of a function ("f(x) = 2x + 3") and the values of assignments ("x = 1, y = 2")."""
    forms = [gold]
    stripped = gold.strip().strip("$").strip()
    decimal = _DECIMAL_COMMA.match(stripped)
    if decimal is not None:
        forms.append(f"{decimal.group(1)}.{decimal.group(2)}")
    unit = _UNIT_SUFFIX.match(stripped)
    if unit is not None and unit.group("unit").lower() not in _NOT_UNITS:
        forms.append(unit.group("number"))
    function = _FUNCTION_GOLD.match(stripped)
    if function is not None:
        forms.append(function.group("rhs"))
    parts = [part.strip() for part in stripped.split(",")]
    values = [_ASSIGNMENT.match(part) for part in parts]
    if len(parts) >= 2 and all(v is not None for v in values):
        forms.append(", ".join(v.group("value") for v in values if v is not None))
    return forms


def _parse_gold(gold: str, alarm_s: int) -> _Gold:
    """``gold`` parsed once per process (a timeout is not cached, so the next row tries again)."""
    cached = _gold_cache.get(gold)
    if cached is not None:
        return cached
    as_text = text_gold(gold)
    forms = [] if as_text is not None else gold_forms(gold)
    parsed: tuple[Any, ...] = ()
    if as_text is None and ("\\boxed" in gold or "\\fbox" in gold):
        # A gold that holds boxes is read as math-verify reads it (which boxes make up the answer is the
        # library's call: "\\boxed{1} papers and \\boxed{2} bins" is {1, 2}); wrapping it in $...$ would
        # join every box in it.
        found = _library_find(normalise_answer(gold), numbers=False, latex_only=True, alarm_s=alarm_s)
        parsed = found.parsed if found is not None else ()
    if not parsed:
        parsed = tuple(p for form in forms for p in _parse_whole(form, alarm_s))
    result = _Gold(as_text, parsed, as_text is None and any(is_plain_number(form) for form in forms))
    if len(_gold_cache) >= _GOLD_CACHE_MAX:
        _gold_cache.clear()
    _gold_cache[gold] = result
    return result


# --- answers -----------------------------------------------------------------------------------------------


def _find_math_answer(body: str, *, numbers: bool, last_number: bool, alarm_s: int) -> _Found | None:
    """The answer ``body`` commits to, for a mathematical gold.

    math-verify's extraction first. Where it found nothing, or only a LaTeX span or number with no marker,
    a bare LaTeX last line ("x \\geq 5", "y = 2x + 1") is parsed whole instead: the library would have
    taken the number at its end. Our own rules (``extract_answer``) run only where the library finds
    nothing; ``last_number`` allows its last-number rule (plain numeric golds only).
    """
    found = _library_find(body, numbers=numbers, latex_only=False, alarm_s=alarm_s)
    hashed = final_hash_answer(body)
    if hashed is not None and (found is None or found.priority >= _ANSWER_COLON_PRIORITY):
        # A closing "#### X" line is GSM8K's explicit final answer: it beats a number math-verify took
        # after "answer" somewhere in the working ("... to the answer from the previous step: 4 + 2").
        return _Found(_parse_whole(hashed, alarm_s), hashed, "gsm8k_hash")
    if found is None or found.method in ("latex", "expression"):
        line = bare_line(body)
        if line is not None:
            parsed = _parse_whole(line, alarm_s)
            if parsed:
                return _Found(parsed, line, "bare")
    if found is not None:
        return found
    fallback = extract_answer(body, last_number_fallback=last_number)
    if fallback.answer is None:
        return None
    return _Found(_parse_whole(fallback.answer, alarm_s), fallback.answer, fallback.method)


def _equivalent(gold: Sequence[Any], answer: Sequence[Any], alarm_s: int) -> tuple[bool, list[str]]:
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
            except Exception as exc:
                # sympy raises many types on exotic comparisons; a comparison that sympy cannot do is a
                # non-match for that pair, not a crash of the run.
                logger.debug("math-verify comparison failed: %s: %s", type(exc).__name__, exc)
                problems.append(type(exc).__name__)
    return False, problems


def _no_answer_reason(response: str, *, text: bool, numbers: bool, last_number: bool) -> str:
    if not strip_reasoning(response):
        return "nothing left after removing <think> reasoning" if response.strip() else "empty response"
    if text:
        return "no \\boxed answer, answer phrase or short last line found in the response"
    library = f"\\boxed answer, answer phrase, LaTeX{' or number' if numbers else ''}"
    ours = f"answer phrase, #### or bare answer{', nor a last number' if last_number else ''}"
    return f"math-verify found no {library}, and our rules no {ours}, in the response"


_DELIMITERS = re.compile(r"\$|\\\(|\\\)|\\\[|\\\]|\\left|\\right|\\[,;:! ]|\s+")


def same_text(answer: str, gold: str) -> bool:
    """Whether ``answer`` is written exactly as ``gold``, up to spacing, math delimiters, ``\\left``/
    ``\\right`` and a trailing period: then it is right whatever either parses to (a clock time "12:00",
    a sentence in ``\\text{}``), and no wrong answer can pass."""
    a = _DELIMITERS.sub("", answer).rstrip(".")
    g = _DELIMITERS.sub("", gold).rstrip(".")
    unboxed = re.fullmatch(r"\\boxed\{(.*)\}", g)
    if unboxed is not None:
        g = unboxed.group(1)
    # A gold with no letter or digit ("???", a GSM8K record whose #### holds no number) is a broken record,
    # not an answer that only identical text can match.
    return bool(re.search(r"[^\W_]", g)) and a == g


def _library_verdict(gold: str, response: str, alarm_s: int, numbers: bool) -> str | None:
    """math-verify's default judgement, ``verify(parse(gold), parse(response))``, as peers call it: the
    gold in ``$...$`` unless it already carries delimiters or a box, the response after its ``<think>``
    reasoning. ``numbers`` (``last_number_fallback``) lets a number with no marker be the answer, as in
    the library's defaults; without it only anchored answers count. Returns the library's answer string
    when it calls the pair equal, else ``None`` (a parse or comparison that fails or times out is no
    match)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    from math_verify.errors import TimeoutException

    configs = (
        [LatexExtractionConfig(), ExprExtractionConfig()]
        if numbers
        else [
            LatexExtractionConfig(try_extract_without_anchor=False),
            ExprExtractionConfig(try_extract_without_anchor=False),
        ]
    )

    body = strip_reasoning(response)
    if not body or not re.search(r"[^\W_]", gold):  # no letter or digit: a broken record ("@@", "???")
        return None
    gold_text = gold if any(mark in gold for mark in ("$", "\\(", "\\[", "\\boxed")) else f"${gold}$"
    try:
        parsed_gold = parse(gold_text, parsing_timeout=alarm_s)
        parsed_answer = parse(body, extraction_config=configs, parsing_timeout=alarm_s)
        if not parsed_gold or not parsed_answer:
            return None
        if verify(parsed_gold, parsed_answer, timeout_seconds=alarm_s):
            return str(parsed_answer[-1])
    except TimeoutException:
        return None
    except Exception as exc:
        # sympy and the LaTeX parser raise many types on odd input; for this second opinion that is a no.
        logger.debug("math-verify's default judgement failed: %s: %s", type(exc).__name__, exc)
    return None


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
    seconds, for each step); ``correct``; ``wrong``. ``extracted`` is the answer string found (math-verify's
    normalised string where the library found it).

    A gold that is a choice letter A-E or a word (``extract.text_gold``) is compared as text: the boxed
    answer, answer phrase or short last line must give the same letter or word. ``last_number_fallback``
    lets an unmarked number stand in for the answer (math-verify's rightmost number; our last-number rule
    for plain numeric golds only). Must run in a process's main thread (math-verify's timeouts use
    ``SIGALRM``); use ``verify_many`` elsewhere.

    Where our reading ends in anything but ``correct``, two checks that cannot call a wrong answer right
    still may: the answer written exactly as the gold (``same_text``), and, where our reading found no
    answer it could parse (``no_answer``, ``unparseable_answer``, ``unparseable_gold``), math-verify's own
    default judgement ``verify(parse(gold), parse(response))``: the library comes first, and our rules
    only add what it lacks (they must never lose an answer it accepts for want of parsing it).
    """
    alarm_s = _alarm_seconds(timeout_s)
    _require_main_thread()
    if finish_reason == "error":
        return Verdict("request_error", f"no response to check: {_short(response) or 'request failed'}", None)
    verdict = _verify_ours(
        gold, response, finish_reason=finish_reason, last_number_fallback=last_number_fallback, timeout_s=timeout_s
    )
    if verdict.status in ("correct", "truncated", "timeout") or gold is None or not gold.strip():
        return verdict
    if verdict.extracted is not None and same_text(verdict.extracted, gold):
        return Verdict("correct", f"written exactly as gold {_short(gold)!r}", verdict.extracted)
    if verdict.status in ("no_answer", "unparseable_answer", "unparseable_gold"):
        library = _library_verdict(gold, response, alarm_s, numbers=last_number_fallback)
        if library is not None:
            return Verdict("correct", f"math-verify's default extraction matches gold {_short(gold)!r}", library)
    return verdict


def _verify_ours(
    gold: str | None,
    response: str,
    *,
    finish_reason: str | None = None,
    last_number_fallback: bool = True,
    timeout_s: float = 5.0,
) -> Verdict:
    """``verify_one`` by our reading alone: math-verify's extraction with our corrections, explicit golds."""
    alarm_s = _alarm_seconds(timeout_s)
    body = prepare_response(response)

    parsed_gold: _Gold | None = None
    gold_problem: str | None = "no gold answer given"
    if gold is not None and gold.strip():
        try:
            parsed_gold = _parse_gold(gold, alarm_s)
        except _Timeout as exc:
            return Verdict("timeout", f"gold: {exc}", extract_answer(body).answer)
        if parsed_gold.text is not None:
            return _verify_text(parsed_gold.text, response, body, finish_reason)
        gold_problem = None if parsed_gold.parsed else f"math-verify found no expression in gold {_short(gold)!r}"

    numeric = parsed_gold is not None and parsed_gold.numeric
    try:
        found = _find_math_answer(
            body, numbers=last_number_fallback, last_number=last_number_fallback and numeric, alarm_s=alarm_s
        )
    except _Timeout as exc:
        if gold_problem is not None:
            return Verdict("unparseable_gold", gold_problem, extract_answer(body).answer)
        return Verdict("timeout", f"answer: {exc}", extract_answer(body).answer)
    extracted = found.text if found is not None else None
    if gold_problem is not None or parsed_gold is None:
        return Verdict("unparseable_gold", gold_problem or "no gold answer given", extracted)

    # Cut off: only a complete boxed answer that parses was committed to before the cut ("\\boxed{} format:
    # ..." with the box still empty is not one).
    if finish_reason == "length" and (found is None or found.method != "boxed" or not found.parsed):
        seen = f"; the {found.method} answer {_short(found.text)!r} is not trusted" if found is not None else ""
        reason = f"hit the token limit (finish_reason=length) before a \\boxed answer{seen}"
        return Verdict("truncated", reason, extracted)

    if found is None:
        reason = _no_answer_reason(
            response, text=False, numbers=last_number_fallback, last_number=last_number_fallback and numeric
        )
        return Verdict("no_answer", reason, None)
    if not found.parsed:
        return Verdict(
            "unparseable_answer",
            f"math-verify found no expression in the {found.method} answer {_short(found.text)!r}",
            extracted,
        )

    matched, problems = _equivalent(parsed_gold.parsed, found.parsed, alarm_s)
    if matched:
        return Verdict("correct", f"matches gold {_short(str(gold))!r} ({found.method} answer)", extracted)
    if "timeout" in problems:
        reason = f"comparing {_short(found.text)!r} with gold {_short(str(gold))!r} took over {alarm_s}s"
        return Verdict("timeout", reason, extracted)
    return Verdict("wrong", f"expected {_short(str(gold))}, got {_short(found.text)}", extracted)


def _verify_text(gold: TextGold, response: str, body: str, finish_reason: str | None) -> Verdict:
    """``verify_one`` for a choice-letter or word gold: compared as text, never through sympy."""
    found = find_text_answer(body)
    if finish_reason == "length" and found.method != "boxed":
        seen = f"; the {found.method} answer {_short(found.answer)!r} is not trusted" if found.answer else ""
        return Verdict(
            "truncated", f"hit the token limit (finish_reason=length) before a \\boxed answer{seen}", found.answer
        )
    if found.answer is None:
        return Verdict("no_answer", _no_answer_reason(response, text=True, numbers=False, last_number=False), None)
    what = "choice" if gold.kind == "choice" else "word"
    if text_matches(found, gold):
        return Verdict("correct", f"gives {what} {gold.text!r} ({found.method} answer)", found.answer)
    return Verdict("wrong", f"expected {what} {gold.text}, got {_short(found.answer)}", found.answer)


# --- many checks -------------------------------------------------------------------------------------------

_Item = tuple[str | None, str, str | None]


_current_call: list[str] = [""]
_call_numbers = itertools.count()


def _verify_chunk(
    chunk: Sequence[_Item], last_number_fallback: bool, timeout_s: float, call: str = ""
) -> list[Verdict]:
    """``verify_one`` over a chunk of (gold, response, finish_reason); module-level so it pickles to workers.

    Golds repeat within a chunk (k attempts per question sit side by side); ``_parse_gold``'s cache makes
    each distinct gold cost one parse per process and ``verify_many`` call (``call`` names the call: a
    worker kept from an earlier call starts its cache afresh, as the caller does).
    """
    if call != _current_call[0]:
        _current_call[0] = call
        _gold_cache.clear()
    return [
        verify_one(g, r, finish_reason=f, last_number_fallback=last_number_fallback, timeout_s=timeout_s)
        for g, r, f in chunk
    ]


def _leave_quickly() -> None:
    """A worker's last exit handler: flush stdio and end the process without interpreter teardown.

    Tearing down an interpreter that has loaded sympy takes about half a second (module and cache clean-up),
    which ``verify_many`` would wait for on every call; the worker holds no other state worth finishing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _warm_worker() -> None:
    """Worker initializer: import math-verify and sympy and compile the extraction regexes before the first
    chunk arrives, so start-up is paid once per worker and in parallel with the caller's own share; and leave
    through ``_leave_quickly`` when the pool shuts down."""
    if multiprocessing.parent_process() is not None:  # only ever in a spawned worker, never in a caller
        atexit.register(_leave_quickly)
    for numbers in (True, False):
        _pattern_groups(numbers, latex_only=False)
    _pattern_groups(False, latex_only=True)
    verify_one("1", "\\boxed{1}", timeout_s=5)


_executors: dict[int, ProcessPoolExecutor] = {}
_executors_lock = threading.Lock()


def _executor(size: int) -> ProcessPoolExecutor:
    """The process's pool of ``size`` spawned workers, started on first use and kept until the process ends.

    Starting a worker (a fresh interpreter importing sympy and math-verify) costs about a second of CPU;
    a process that checks answers more than once (an evaluation per benchmark, the CLI over several files,
    a test session) pays it once instead of on every call.
    """
    with _executors_lock:
        executor = _executors.get(size)
        if executor is None:
            context = multiprocessing.get_context("spawn")
            executor = ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_warm_worker)
            _executors[size] = executor
            if len(_executors) == 1:
                atexit.register(_shutdown_executors)
        return executor


def _drop_executor(size: int) -> None:
    with _executors_lock:
        executor = _executors.pop(size, None)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)


def _shutdown_executors() -> None:
    with _executors_lock:
        executors = list(_executors.values())
        _executors.clear()
    for executor in executors:
        executor.shutdown(wait=True, cancel_futures=True)


def _chunks(items: Sequence[_Item], processes: int) -> Iterator[tuple[int, Sequence[_Item]]]:
    """(start, chunk) pairs covering ``items`` in order. Chunks shrink as the work runs out (a quarter of
    each process's share of what is left, at most ``_MAX_CHUNKSIZE``), so that large early chunks keep the
    IPC cost small and small late ones keep the processes finishing together."""
    start = 0
    while start < len(items):
        size = max(1, min(_MAX_CHUNKSIZE, math.ceil((len(items) - start) / (processes * 4))))
        yield start, items[start : start + size]
        start += size


def _pooled(
    items: Sequence[_Item],
    job: Callable[[Sequence[_Item]], list[Verdict]],
    workers: int,
    caller_works: bool,
    tick: Callable[[int], None],
) -> list[Verdict]:
    """Run ``job`` over chunks of ``items`` in ``workers`` processes, order kept.

    With ``caller_works`` the calling process is one of them (``workers - 1`` are spawned): it would
    otherwise sit idle waiting, and the share it checks meanwhile hides the workers' start-up. A feeder
    thread keeps each spawned worker two chunks ahead whatever the caller is doing, so a slow check in
    the caller's chunk (sympy can take seconds on one pair) never leaves a worker waiting for work.
    """
    pool_size = workers - 1 if caller_works else workers
    results: list[Verdict | None] = [None] * len(items)
    todo = _chunks(items, workers)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def take() -> tuple[int, Sequence[_Item]] | None:
        with lock:
            return None if failures else next(todo, None)

    def store(start: int, verdicts: list[Verdict]) -> None:
        with lock:
            results[start : start + len(verdicts)] = verdicts
            tick(len(verdicts))

    def feed(executor: ProcessPoolExecutor) -> None:
        pending: dict[Future[list[Verdict]], int] = {}
        try:
            while True:
                while len(pending) < pool_size * 2 and (chunk := take()) is not None:
                    pending[executor.submit(job, chunk[1])] = chunk[0]
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    store(pending.pop(future), future.result())
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            with lock:
                failures.append(exc)

    executor = _executor(pool_size)
    try:
        if caller_works:
            feeder = threading.Thread(target=feed, args=(executor,), name="verify-feeder", daemon=True)
            feeder.start()
            try:
                while (chunk := take()) is not None:
                    store(chunk[0], job(chunk[1]))
            except BaseException as exc:  # stop the feeder too (Ctrl-C must not wait for the whole run)
                with lock:
                    failures.append(exc)
                raise
            finally:
                feeder.join()
        else:
            feed(executor)
    except BrokenProcessPool:
        _drop_executor(pool_size)  # a worker died (killed, out of memory): the next call starts afresh
        raise
    if failures:
        if isinstance(failures[0], BrokenProcessPool):
            _drop_executor(pool_size)
        raise failures[0]
    done_verdicts = [v for v in results if v is not None]
    if len(done_verdicts) != len(items):
        raise RuntimeError(f"verify_many lost {len(items) - len(done_verdicts)} of {len(items)} verdicts")
    return done_verdicts


def verify_many(
    items: Sequence[tuple[str | None, str, str | None]],
    *,
    last_number_fallback: bool = True,
    timeout_s: float = 5.0,
    workers: int = 2,
    progress: bool = False,
) -> list[Verdict]:
    """``verify_one`` over (gold, response, finish_reason) tuples; verdicts come back in input order.

    ``workers`` is how many processes check at once. With ``workers > 1``, ``workers - 1`` of them are
    spawned and the calling process is the last one (when called from a main thread; otherwise all are
    spawned): math-verify's ``SIGALRM`` timeouts need each check on a main thread, and spawn (not fork)
    because callers may have torch or vLLM threads alive, which fork copies in a broken state. Spawned
    workers import math-verify in an initializer while the caller already checks its share, and work is
    sent in chunks large enough that the per-task IPC cost stays small next to the checks. The spawned
    workers are kept for the next call in the same process (``_executor``). ``workers <= 1``
    runs inline, which must then be on the main thread, as do fewer than ``_MIN_POOLED_ITEMS`` checks
    called from a main thread. ``progress`` shows a tqdm bar with rate.
    """
    _alarm_seconds(timeout_s)  # refuse a bad timeout before paying for worker start-up
    # Golds are parsed once per call and process; a cache left by an earlier call would make this call's
    # cost depend on what ran before it (and flatter the caller's share of a pooled run).
    _gold_cache.clear()
    call = f"{os.getpid()}:{next(_call_numbers)}"
    job = functools.partial(_verify_chunk, last_number_fallback=last_number_fallback, timeout_s=timeout_s, call=call)
    n = len(items)
    if n == 0:
        return []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="verify", unit="answer")

    def tick(k: int) -> None:
        if bar is not None:
            bar.update(k)

    try:
        caller_works = _in_main_thread()
        if workers <= 1 or (caller_works and n < _MIN_POOLED_ITEMS):
            _require_main_thread()
            out: list[Verdict] = []
            for _, chunk in _chunks(items, 1):
                out.extend(job(chunk))
                tick(len(chunk))
            return out
        return _pooled(items, job, min(workers, n), caller_works, tick)
    finally:
        if bar is not None:
            bar.close()


def check_golds(
    golds: Sequence[str | None], *, timeout_s: float = 5.0, workers: int = 2, progress: bool = False
) -> list[Verdict | None]:
    """For each gold, ``None`` if it parses and matches itself, else the ``Verdict`` why not.

    Meant to run once per question when a pool or benchmark is built, so a gold that cannot be graded is
    reported once (as a reject with this reason) instead of once per attempt in every later stage. The
    self-match puts the gold in ``\\boxed{}`` exactly as a response would, so it also catches golds that
    parse but to something the comparison cannot handle (a bad verdict then names the status).
    """
    verdicts = verify_many(
        [(g, "" if g is None else f"\\boxed{{{g}}}", "stop") for g in golds],
        timeout_s=timeout_s,
        workers=workers,
        progress=progress,
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
