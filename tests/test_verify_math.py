"""Tests for adacot.verify.math: verdicts from math-verify, worker pools, truncation and timeouts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from adacot.verify import STATUSES, Verdict, verify_many, verify_one

# (id, gold, response, finish_reason, expected status)
VERDICT_CASES: list[tuple[str, str | None, str, str | None, str]] = [
    # correct: equivalent forms must match
    ("boxed_int", "18", "She makes \\boxed{18} dollars a day.", "stop", "correct"),
    ("thousands_vs_plain", "1234", "The answer is 1,234.", None, "correct"),
    ("plain_vs_thousands_gold", "1,234", "\\boxed{1234}", None, "correct"),
    ("decimal_vs_frac", "\\frac{1}{2}", "Final answer: 0.5", None, "correct"),
    ("frac_vs_decimal_gold", "0.5", "\\boxed{\\frac{1}{2}}", None, "correct"),
    ("slash_vs_frac", "\\frac{3}{4}", "The answer is 3/4.", None, "correct"),
    ("leading_zero", "25", "#### 025", None, "correct"),
    ("trailing_zero_decimal", "27", "27.0", None, "correct"),
    ("money_decimals", "18", "The answer is $18.00.", None, "correct"),
    ("assignment_vs_value", "3", "x=3", None, "correct"),
    ("value_vs_assignment_gold", "x=3", "\\boxed{3}", None, "correct"),
    ("negative", "-5", "The answer is -5.", None, "correct"),
    ("units_dropped", "18", "The answer is 18 dollars.", None, "correct"),
    ("percent_dropped", "10", "The answer is 10\\%.", None, "correct"),
    ("sqrt_simplified", "2\\sqrt{2}", "\\boxed{\\sqrt{8}}", None, "correct"),
    ("polynomial_factored", "x^2+2x+1", "\\boxed{(x+1)^2}", None, "correct"),
    ("power_expression", "1024", "\\boxed{2^{10}}", None, "correct"),
    ("dfrac", "\\frac{3}{4}", "\\boxed{\\dfrac{3}{4}}", None, "correct"),
    ("tuple_pi", "\\left( 3, \\frac{\\pi}{2} \\right)", "\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}", None, "correct"),
    ("set_escaped_braces", "\\{1,2\\}", "\\boxed{\\{1,2\\}}", None, "correct"),
    ("multiple_choice_letter", "\\text{(B)}", "The answer is (B).", None, "correct"),
    ("think_has_other_number", "5", "<think>Maybe it is 7. \\boxed{7}</think>\nSo \\boxed{5}", None, "correct"),
    ("last_number_fallback_correct", "8", "3 apples and 5 more gives 8 apples", None, "correct"),
    ("boxed_before_length_cutoff", "5", "Thus \\boxed{5}. Let me double check the arith", "length", "correct"),
    # wrong
    ("wrong_int", "18", "\\boxed{17}", None, "wrong"),
    ("wrong_close_decimal", "12", "The answer is 12.5.", None, "wrong"),
    ("wrong_third_approx", "\\frac{1}{3}", "\\boxed{0.333}", None, "wrong"),
    ("wrong_think_number_not_used", "7", "<think>Maybe it is 7.</think>\nSo \\boxed{5}", None, "wrong"),
    ("wrong_ordered_pair", "(1,2)", "\\boxed{(2,1)}", None, "wrong"),
    ("wrong_sign", "5", "The answer is -5.", None, "wrong"),
    ("wrong_expression", "x^2+1", "\\boxed{x^2-1}", None, "wrong"),
    ("wrong_boxed_beats_fallback", "8", "3 apples and 5 more gives 8, so \\boxed{9}", None, "wrong"),
    # truncated: cut at the token limit before committing to a boxed answer
    ("truncated_midsentence", "5", "We have 3 and then 5 and so", "length", "truncated"),
    ("truncated_in_think", "5", "<think>first 2, then 5, so \\boxed{5", "length", "truncated"),
    ("truncated_phrase_not_trusted", "5", "The answer is 5. Checking: 2+3=", "length", "truncated"),
    ("truncated_empty", "5", "", "length", "truncated"),
    # no answer
    ("no_answer_prose", "5", "I cannot solve this.", None, "no_answer"),
    ("no_answer_empty", "5", "", "stop", "no_answer"),
    ("no_answer_unclosed_think", "5", "<think>I think it is 5", "stop", "no_answer"),
    # unparseable gold / answer
    ("gold_none", None, "\\boxed{5}", None, "unparseable_gold"),
    ("gold_blank", "   ", "\\boxed{5}", None, "unparseable_gold"),
    ("gold_garbage", "???", "\\boxed{5}", None, "unparseable_gold"),
    ("gold_checked_before_truncation", None, "we have", "length", "unparseable_gold"),
    ("answer_garbage", "5", "The answer is ???", None, "unparseable_answer"),
    ("answer_garbage_boxed", "5", "\\boxed{@@}", None, "unparseable_answer"),
]


@pytest.mark.parametrize(
    ("gold", "response", "finish_reason", "status"),
    [c[1:] for c in VERDICT_CASES],
    ids=[c[0] for c in VERDICT_CASES],
)
def test_verify_one(gold: str | None, response: str, finish_reason: str | None, status: str) -> None:
    verdict = verify_one(gold, response, finish_reason=finish_reason)
    assert verdict.status == status, verdict.reason
    assert verdict.reason.strip()


def test_wrong_reason_names_gold_and_answer() -> None:
    verdict = verify_one("18", "\\boxed{17}")
    assert verdict == Verdict("wrong", "expected 18, got 17", "17")


def test_truncated_keeps_what_was_found_and_says_why() -> None:
    verdict = verify_one("5", "We have 3 and then 5 and so", finish_reason="length")
    assert verdict.status == "truncated"
    assert verdict.extracted == "5"
    assert "finish_reason=length" in verdict.reason


def test_verdict_records_extracted_answer_even_for_bad_gold() -> None:
    assert verify_one(None, "\\boxed{\\frac{1}{2}}").extracted == "\\frac{1}{2}"


@pytest.mark.parametrize(
    ("fallback", "status"),
    [(True, "correct"), (False, "no_answer")],
    ids=["fallback_on", "fallback_off"],
)
def test_last_number_fallback_switch(fallback: bool, status: str) -> None:
    verdict = verify_one("8", "3 apples and 5 more gives 8 apples", last_number_fallback=fallback)
    assert verdict.status == status


@pytest.mark.parametrize(
    ("gold", "status"),
    [("8", "correct"), ("9", "wrong"), ("x+1", "no_answer"), ("\\frac{1}{2}", "no_answer")],
    ids=["numeric_gold_right", "numeric_gold_wrong", "expression_gold", "fraction_gold"],
)
def test_our_last_number_rule_only_for_plain_numeric_golds(gold: str, status: str) -> None:
    # math-verify finds no number in "(8)" (it wants a space, "=" or a line start before one), so only our
    # last-number rule can, and it stands in for the answer only when the gold is a plain number.
    assert verify_one(gold, "so we are left with the count (8)").status == status


def test_each_gold_is_parsed_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import adacot.verify.math as verify_math

    calls: list[str] = []
    real = verify_math._parse_whole

    def counting(text: str, alarm_s: int) -> tuple[object, ...]:
        calls.append(text)
        return real(text, alarm_s)

    monkeypatch.setattr(verify_math, "_parse_whole", counting)
    gold = "\\frac{7}{13}"  # a gold no other test uses, so the per-process cache starts without it
    verdicts = [verify_one(gold, f"\\boxed{{{answer}}}") for answer in ("7/13", "\\frac{14}{26}", "0.5")]
    assert [v.status for v in verdicts] == ["correct", "correct", "wrong"]
    assert calls.count(gold) == 1


@pytest.mark.parametrize(
    ("status", "reason"),
    [("bogus", "why"), ("correct", ""), ("wrong", "   ")],
    ids=["unknown_status", "empty_reason", "blank_reason"],
)
def test_verdict_validation(status: str, reason: str) -> None:
    with pytest.raises(ValueError):
        Verdict(status, reason, None)


def test_verdict_is_correct_only_for_correct() -> None:
    assert [Verdict(s, "r", None).is_correct for s in STATUSES] == [s == "correct" for s in STATUSES]


@pytest.mark.parametrize("timeout_s", [0.0, -1.0], ids=["zero", "negative"])
def test_non_positive_timeout_is_refused(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        verify_one("1", "1", timeout_s=timeout_s)
    with pytest.raises(ValueError, match="timeout_s"):
        verify_many([("1", "1", None)], timeout_s=timeout_s)


def test_verify_one_refuses_non_main_thread() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            verify_one("1", "1")
        except RuntimeError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])


def _slow(seconds: float) -> Callable[..., bool]:
    def stand_in(*args: object, **kwargs: object) -> bool:
        time.sleep(seconds)  # SIGALRM interrupts this sleep and math-verify's handler raises
        return True

    return stand_in


def test_comparison_timeout_is_its_own_status(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deterministic timeout: make math-verify's sympy comparison hang; its 1 s alarm must fire and the
    # wrapper must report "timeout", not a silent "wrong". In-process only (workers=1).
    import math_verify.grader

    monkeypatch.setattr(math_verify.grader, "sympy_expr_eq", _slow(5))
    start = time.monotonic()
    verdicts = verify_many([("5", "\\boxed{6}", None)], timeout_s=0.5, workers=1)
    assert time.monotonic() - start < 4
    assert verdicts[0].status == "timeout"
    assert "took over 1s" in verdicts[0].reason


def test_answer_parse_timeout_is_its_own_status(monkeypatch: pytest.MonkeyPatch) -> None:
    # The verifier runs math-verify's extraction loop itself (to know whether the answer was boxed), so the
    # stand-in hangs the library's per-match parse (extract_match) rather than extract_target_from_pred.
    import math_verify.parser

    real = math_verify.parser.extract_match

    def slow_on_answer(match: re.Match[str], *args: object, **kwargs: object) -> object:
        if "999" in match.group(0):
            time.sleep(5)
        return real(match, *args, **kwargs)

    monkeypatch.setattr(math_verify.parser, "extract_match", slow_on_answer)
    verdict = verify_one("5", "\\boxed{999}", timeout_s=1)
    assert verdict.status == "timeout"
    assert verdict.reason.startswith("answer:")
    assert verdict.extracted == "999"


def test_verify_many_in_workers_preserves_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import adacot.verify.math as verify_math

    monkeypatch.setattr(verify_math, "_MIN_POOLED_ITEMS", 0)  # 40 checks would otherwise stay in this process
    items: list[tuple[str | None, str, str | None]] = []
    expected: list[str] = []
    for i in range(40):
        if i % 4 == 0:
            items.append((str(i), f"The answer is {i}.", None))
            expected.append("correct")
        elif i % 4 == 1:
            items.append((str(i), f"\\boxed{{{i + 1}}}", None))
            expected.append("wrong")
        elif i % 4 == 2:
            items.append((str(i), "I give up.", None))
            expected.append("no_answer")
        else:
            items.append((None, f"\\boxed{{{i}}}", None))
            expected.append("unparseable_gold")
    verdicts = verify_many(items, workers=2)
    assert [v.status for v in verdicts] == expected
    assert [v.extracted for v in verdicts] == [verify_one(g, r, finish_reason=f).extracted for g, r, f in items]


def test_verify_many_from_a_thread_uses_workers_only() -> None:
    # Off the main thread the caller cannot check its own share (SIGALRM), so every check goes to workers.
    items = [(c[1], c[2], c[3]) for c in VERDICT_CASES[:12]]
    got: list[list[Verdict]] = []
    worker = threading.Thread(target=lambda: got.append(verify_many(items, workers=2)))
    worker.start()
    worker.join()
    assert got == [[verify_one(g, r, finish_reason=f) for g, r, f in items]]


def test_verify_many_few_items_start_no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker's start-up (an interpreter importing sympy and math-verify) costs more than a few checks.
    import adacot.verify.math as verify_math

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a worker pool was started for a handful of checks")

    monkeypatch.setattr(verify_math, "ProcessPoolExecutor", refuse)
    items = [(c[1], c[2], c[3]) for c in VERDICT_CASES[:5]]
    assert verify_many(items, workers=2) == [verify_one(g, r, finish_reason=f) for g, r, f in items]


def test_verify_many_inline_matches_verify_one() -> None:
    items = [(c[1], c[2], c[3]) for c in VERDICT_CASES[:10]]
    assert verify_many(items, workers=1, progress=True) == [verify_one(g, r, finish_reason=f) for g, r, f in items]


def test_verify_many_empty() -> None:
    assert verify_many([], workers=2) == []


def test_import_starts_nothing() -> None:
    # Importing the package must not start processes or load math-verify/sympy (house rule 9).
    code = (
        "import multiprocessing, sys; import adacot.verify; "
        "assert not multiprocessing.active_children(); "
        "assert 'math_verify' not in sys.modules and 'sympy' not in sys.modules, 'heavy import at import time'"
    )
    # Hand the child this process's sys.path so it finds the package however pytest was pointed at it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_cut_off_response_with_an_empty_box_is_truncated() -> None:
    # A response cut at the token limit that only announced its box ("\\boxed{} format:") is truncated,
    # not an unparseable boxed answer: nothing was committed to before the cut.
    response = "Gus has 13 apples left.\n\nLet's find the answer in \\boxed{} format:\n\n\\begin{align*}\n13 &= 13 *"
    verdict = verify_one("9", response, finish_reason="length")
    assert verdict.status == "truncated"
    assert verify_one("9", "So \\boxed{9}, and then more text that got cu", finish_reason="length").status == "correct"
