"""Bench: adacot's answer verifier against plain math-verify, side by side, on the named equivalence cases.

Both judge the same table (tests/verify_cases.py: the equivalence cases, the whole-response cases and the
class cases) against its expected labels. Plain math-verify is ``verify(parse(gold), parse(response))``
with its default extraction, inline on the main thread (its timeouts need one), once with the gold as
given and once with the gold in ``$...$`` (a stronger anchor: the golds here are bare strings); adacot is
``verify_many`` in its worker setup, a pair counting as equal when the verdict is ``correct``. Printed:
agreement with the expected label per category and overall, and false positives (a not-equal pair called
equal) for each.

Exit status 1 if adacot agrees less often than either plain math-verify run in any category or overall,
or has any false positive; 0 otherwise.

Usage: python bench/verify_agreement.py [--workers 2] [--show-misses]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from verify_cases import Case, all_cases  # the shared table lives with the tests

from adacot.verify import verify_many


def plain_math_verify(cases: list[Case], *, wrap_gold: bool = False) -> list[bool]:
    """Plain math-verify 0.9 with its default extraction on both sides, as peer projects call it.

    ``wrap_gold`` puts the gold in ``$...$`` first: the gold strings here are bare (as ``parse_gold`` gives
    them), which plain math-verify's extraction reads only in part ("5" of "x \\geq 5"); peer suites
    often write golds with delimiters, so this is the stronger anchor of the two.
    """
    from math_verify import parse, verify

    def gold_text(gold: str) -> str:
        return f"${gold}$" if wrap_gold else gold

    return [bool(c.gold is not None and verify(parse(gold_text(c.gold)), parse(c.response))) for c in cases]


def adacot(cases: list[Case], workers: int) -> list[bool]:
    verdicts = verify_many([(c.gold, c.response, "stop") for c in cases], workers=workers)
    return [v.status == "correct" for v in verdicts]


def _scores(cases: list[Case], said_equal: list[bool]) -> tuple[int, int]:
    """(agreements with the expected label, false positives)."""
    agree = sum(s == c.equal for c, s in zip(cases, said_equal, strict=True))
    false_pos = sum(s and not c.equal for c, s in zip(cases, said_equal, strict=True))
    return agree, false_pos


def _row(name: str, cases: list[Case], runs: dict[str, list[bool]]) -> tuple[str, bool]:
    n = len(cases)
    scores = {label: _scores(cases, said) for label, said in runs.items()}
    ours, ours_fp = scores["adacot"]
    ok = ours_fp == 0 and all(ours >= agree for agree, _ in scores.values())
    cells = "".join(f"{agree:>6} {100 * agree / n:6.1f}% {fp:>3}" for agree, fp in scores.values())
    return f"{name:<24}{n:>4}{cells}{'' if ok else '   <-- FAIL'}", ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--show-misses", action="store_true", help="list every case any side gets wrong")
    args = parser.parse_args()
    # math-verify logs a warning for every parse that times out or fails; the table is the output here.
    logging.basicConfig(level=logging.ERROR)

    cases = all_cases()
    runs = {
        "adacot": adacot(cases, args.workers),
        "plain": plain_math_verify(cases),
        "plain $gold$": plain_math_verify(cases, wrap_gold=True),
    }
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        by_category[case.category].append(i)

    print(f"{'':<28}" + "".join(f"{label:>18}" for label in runs))
    print(f"{'category':<24}{'n':>4}" + "   agree      %  FP" * len(runs))
    all_ok = True
    for name in sorted(by_category):
        idx = by_category[name]
        line, ok = _row(name, [cases[i] for i in idx], {k: [v[i] for i in idx] for k, v in runs.items()})
        print(line)
        all_ok = all_ok and ok
    line, ok = _row("OVERALL", cases, runs)
    print(line)
    all_ok = all_ok and ok

    if args.show_misses:
        for i, case in enumerate(cases):
            said = {label: run[i] for label, run in runs.items()}
            if any(s != case.equal for s in said.values()):
                got = ", ".join(f"{label} {s}" for label, s in said.items())
                print(f"  {case.category}/{case.id}: expected {case.equal}; {got}")
    print(
        "PASS: adacot >= plain math-verify (both anchors) in every category and overall, no false positives"
        if all_ok
        else "FAIL: adacot below plain math-verify somewhere, or a false positive (see <-- FAIL)"
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
