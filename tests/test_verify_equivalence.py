"""Table-driven answer equivalence: one named case per row, equal and not equal, grouped by category.

Each case is (category, id, gold, answer, equal). The answer is put in ``\\boxed{}`` in an otherwise
ordinary response, so the cases test extraction and math-verify's comparison together, the way grading,
teacher verification and evaluation use them. ``RESPONSE_CASES`` hold whole responses where the layout
is the point (several ``\\boxed``, answers after the box). The tables live in ``verify_cases.py``, shared
with bench/verify_agreement.py, which runs them against plain math-verify side by side.
"""

from __future__ import annotations

from collections import Counter

import pytest
from verify_cases import EQUIVALENCE_CASES as CASES
from verify_cases import RESPONSE_CASES, boxed_response

from adacot.verify import verify_one
from adacot.verify.math import normalise_answer

CATEGORIES = {
    "fraction",
    "mixed_number",
    "decimal_fraction",
    "percent",
    "units",
    "thousands",
    "negative",
    "scientific",
    "pi_sqrt",
    "interval",
    "set_tuple",
    "equation",
    "multiple_boxed",
    "latex_spacing",
}


def _expected(equal: bool) -> str:
    return "correct" if equal else "wrong"


@pytest.mark.parametrize(("gold", "answer", "equal"), [c[2:] for c in CASES], ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_equivalence(gold: str, answer: str, equal: bool) -> None:
    verdict = verify_one(gold, boxed_response(answer))
    assert verdict.status == _expected(equal), verdict.reason
    assert verdict.extracted is not None


@pytest.mark.parametrize(
    ("gold", "response", "equal"), [c[2:] for c in RESPONSE_CASES], ids=[f"{c[0]}-{c[1]}" for c in RESPONSE_CASES]
)
def test_equivalence_in_whole_responses(gold: str, response: str, equal: bool) -> None:
    verdict = verify_one(gold, response)
    assert verdict.status == _expected(equal), verdict.reason


def test_table_covers_every_category_both_ways() -> None:
    all_cases = CASES + RESPONSE_CASES
    ids = [(c[0], c[1]) for c in all_cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(all_cases) >= 80
    assert {c[0] for c in all_cases} >= CATEGORIES
    equal = Counter(c[0] for c in all_cases if c[4])
    unequal = Counter(c[0] for c in all_cases if not c[4])
    missing = sorted(cat for cat in CATEGORIES if not (equal[cat] and unequal[cat]))
    assert not missing, f"categories without both an equal and an unequal case: {missing}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1\\,000\\,000", "1000000"),
        ("12{,}345", "12345"),
        ("1.5e3", "1.5\\times 10^{3}"),
        ("2E-3", "2\\times 10^{-3}"),
        ("\u22127", "-7"),
        ("~7", "7"),
        ("x e3", "x e3"),
        ("1\\,25", "1\\,25"),
        ("\\frac{1}{\\,2}", "\\frac{1}{\\,2}"),
    ],
    ids=[
        "thin_space_groups",
        "brace_comma_group",
        "e_notation",
        "e_notation_negative",
        "unicode_minus",
        "tilde",
        "letter_e_untouched",
        "thin_space_not_a_group",
        "thin_space_in_frac",
    ],
)
def test_normalise_answer(raw: str, expected: str) -> None:
    assert normalise_answer(raw) == expected
