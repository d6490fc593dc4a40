"""Table-driven answer equivalence: one named case per row, equal and not equal, grouped by category.

Each case is (category, id, gold, answer, equal). The answer is put in ``\\boxed{}`` in an otherwise
ordinary response, so the cases test extraction and math-verify's comparison together, the way grading,
teacher verification and evaluation use them. ``RESPONSE_CASES`` hold whole responses where the layout
is the point (several ``\\boxed``, answers after the box).
"""

from __future__ import annotations

from collections import Counter

import pytest

from adacot.verify import verify_one
from adacot.verify.math import normalise_answer

CASES: list[tuple[str, str, str, str, bool]] = [
 # fractions
 ("fraction","frac_vs_slash",r"\frac{3}{4}","3/4",True),
 ("fraction","dfrac_vs_frac",r"\dfrac{3}{4}",r"\frac{3}{4}",True),
 ("fraction","tfrac_vs_frac",r"\tfrac{1}{2}",r"\frac12",True),
 ("fraction","frac_no_braces",r"\frac{1}{2}",r"\frac12",True),
 ("fraction","unreduced_frac",r"\frac{1}{2}",r"\frac{2}{4}",True),
 ("fraction","slash_vs_dfrac","5/8",r"\dfrac{5}{8}",True),
 ("fraction","negative_frac_sign_placement",r"-\frac{1}{2}",r"\frac{-1}{2}",True),
 ("fraction","frac_wrong",r"\frac{3}{4}",r"\frac{4}{3}",False),
 ("fraction","frac_vs_reciprocal_slash","2/3","3/2",False),
 ("fraction","frac_of_sqrt",r"\frac{\sqrt{3}}{2}",r"\frac{\sqrt3}{2}",True),
 # mixed numbers
 ("mixed_number","mixed_vs_improper",r"\frac{7}{2}",r"3\frac{1}{2}",True),
 ("mixed_number","mixed_vs_decimal","3.5",r"3\frac{1}{2}",True),
 ("mixed_number","mixed_wrong",r"\frac{7}{3}",r"3\frac{1}{2}",False),
 ("mixed_number","mixed_space",r"\frac{9}{4}",r"2 \frac{1}{4}",True),
 # decimals vs fractions
 ("decimal_fraction","half","0.5",r"\frac{1}{2}",True),
 ("decimal_fraction","quarter_slash","0.25","1/4",True),
 ("decimal_fraction","leading_dot",".75",r"\frac34",True),
 ("decimal_fraction","trailing_zeros","2.50",r"\frac{5}{2}",True),
 ("decimal_fraction","third_rounded_wrong",r"\frac{1}{3}","0.33",False),
 ("decimal_fraction","close_but_wrong","0.125",r"\frac{1}{7}",False),
 ("decimal_fraction","integer_as_decimal","27","27.0",True),
 ("decimal_fraction","integer_as_decimal_zeros","4","4.000",True),
 # percentages
 ("percent","percent_sign_dropped","10",r"10\%",True),
 ("percent","percent_gold_plain_answer",r"10\%","10",True),
 ("percent","percent_word","25","25 percent",True),
 ("percent","percent_plain_sign","40","40%",True),
 ("percent","percent_wrong","12",r"21\%",False),
 ("percent","percent_decimal",r"12.5\%","12.5",True),
 # units and \text
 ("units","text_unit_dollars","18",r"18 \text{ dollars}",True),
 ("units","text_unit_cm","5",r"5\text{ cm}",True),
 ("units","mbox_unit","12",r"12 \mbox{ inches}",True),
 ("units","dollar_sign","18",r"\$18",True),
 ("units","degrees","90",r"90^\circ",True),
 ("units","degrees_word","45",r"45^{\circ}",True),
 ("units","unit_squared","16",r"16 \text{ cm}^2",True),
 ("units","unit_wrong_number","18",r"19 \text{ dollars}",False),
 ("units","text_answer_word",r"\text{Monday}",r"\text{Monday}",True),
 # thousands separators
 ("thousands","comma_answer","1234","1,234",True),
 ("thousands","comma_gold","1,234","1234",True),
 ("thousands","comma_million","1000000","1,000,000",True),
 ("thousands","latex_comma_group","12345",r"12{,}345",True),
 ("thousands","thin_space","1000000",r"1\,000\,000",True),
 ("thousands","comma_wrong","1234","1,243",False),
 ("thousands","comma_with_decimals","1234.5","1,234.50",True),
 # negatives
 ("negative","negative_int","-5","-5",True),
 ("negative","sign_wrong","5","-5",False),
 ("negative","negative_paren","-3","(-3)",True),
 ("negative","negative_decimal","-0.5",r"-\frac{1}{2}",True),
 ("negative","negative_unicode_minus","-7","−7",True),
 ("negative","double_negative_wrong","-2","2",False),
 # scientific notation
 ("scientific","times_ten","3000",r"3 \times 10^3",True),
 ("scientific","cdot_ten","0.002",r"2 \cdot 10^{-3}",True),
 ("scientific","e_notation","1500","1.5e3",True),
 ("scientific","sci_wrong",r"3 \times 10^4","3000",False),
 ("scientific","big_power","1000000",r"10^6",True),
 # pi and sqrt
 ("pi_sqrt","pi_times","2\\pi",r"2 \pi",True),
 ("pi_sqrt","pi_frac",r"\frac{\pi}{2}",r"\frac{1}{2}\pi",True),
 ("pi_sqrt","pi_vs_decimal_wrong",r"\pi","3.14",False),
 ("pi_sqrt","sqrt_simplify",r"2\sqrt{2}",r"\sqrt{8}",True),
 ("pi_sqrt","sqrt_no_braces",r"\sqrt{2}",r"\sqrt2",True),
 ("pi_sqrt","rationalized",r"\frac{\sqrt{2}}{2}",r"\frac{1}{\sqrt{2}}",True),
 ("pi_sqrt","sqrt_wrong",r"\sqrt{3}",r"\sqrt{2}",False),
 ("pi_sqrt","cube_root",r"\sqrt[3]{8}","2",True),
 ("pi_sqrt","pi_r_squared",r"16\pi",r"\pi \cdot 16",True),
 # intervals
 ("interval","open_interval","(1,2)",r"\left(1, 2\right)",True),
 ("interval","closed_interval","[0,1]",r"[0, 1]",True),
 ("interval","half_open_wrong","[0,1)","[0,1]",False),
 ("interval","infinity",r"(-\infty, 3]",r"(-\infty,3]",True),
 ("interval","union",r"(-\infty,0)\cup(1,\infty)",r"(-\infty, 0) \cup (1, \infty)",True),
 ("interval","interval_endpoints_wrong","(1,3)","(1,2)",False),
 # sets and tuples
 ("set_tuple","set_order_irrelevant",r"\{1,2,3\}",r"\{3,2,1\}",True),
 ("set_tuple","tuple_order_matters","(1,2)","(2,1)",False),
 ("set_tuple","tuple_spacing","(3,4)",r"(3, 4)",True),
 ("set_tuple","tuple_with_frac",r"\left(\frac{1}{2}, 3\right)","(0.5, 3)",True),
 ("set_tuple","roots_list","2, 3","3, 2",True),
 ("set_tuple","set_missing_element",r"\{1,2,3\}",r"\{1,2\}",False),
 # equations
 ("equation","var_eq_value","3","x=3",True),
 ("equation","gold_eq_answer_value","x=3","3",True),
 ("equation","both_eq","y=5","y = 5",True),
 ("equation","eq_wrong_value","3","x=4",False),
 ("equation","line_equation",r"y=2x+1",r"y = 1 + 2x",True),
 ("equation","line_equation_wrong",r"y=2x+1",r"y = 2x - 1",False),
 # expressions
 ("expression","expanded_vs_factored","x^2+2x+1","(x+1)^2",True),
 ("expression","commuted","a+b","b+a",True),
 ("expression","power_value","1024","2^{10}",True),
 ("expression","wrong_expression","x^2+1","x^2-1",False),
 # latex spacing
 ("latex_spacing", "spacing_does_not_hide_wrong", r"\frac{3}{4}", r"\displaystyle \frac{4}{\,3}", False),
    ("latex_spacing","thin_space_inside",r"\frac{1}{2}",r"\frac{1}{\,2}",True),
 ("latex_spacing","quad",r"5",r"\quad 5",True),
 ("latex_spacing","left_right","(1,2)",r"\left( 1 , 2 \right)",True),
 ("latex_spacing","displaystyle",r"\frac{3}{4}",r"\displaystyle\frac{3}{4}",True),
 ("latex_spacing","negative_space",r"12",r"1\!2",True),
 ("latex_spacing","tilde_space","7",r"~7",True),
 # letters / choices
 ("choice","letter_paren",r"\text{(B)}","(B)",True),
 ("choice","letter_wrong",r"\text{(B)}","(C)",False),
]

# (category, id, gold, whole response, equal)
RESPONSE_CASES: list[tuple[str, str, str, str, bool]] = [
    ("multiple_boxed", "last_box_wins", "5", "First guess \\boxed{3}. On reflection \\boxed{5}.", True),
    ("multiple_boxed", "earlier_box_not_used", "3", "First guess \\boxed{3}. On reflection \\boxed{5}.", False),
    ("multiple_boxed", "box_then_text", "12", "So the total is \\boxed{12}. I hope this helps, 7 of 9 agree.", True),
    ("multiple_boxed", "nested_braces", "\\frac{1}{2}", "\\boxed{\\frac{1}{2}} and earlier \\boxed{4}", False),
    ("multiple_boxed", "nested_braces_last", "\\frac{1}{2}", "earlier \\boxed{4}, finally \\boxed{\\frac{1}{2}}", True),
    ("multiple_boxed", "fbox", "9", "The result: \\fbox{9}", True),
    ("multiple_boxed", "think_box_ignored", "5", "<think>\\boxed{7}</think>The answer is \\boxed{5}.", True),
    ("multiple_boxed", "boxed_space_form", "6", "hence \\boxed 6", True),
]

CATEGORIES = {
    "fraction", "mixed_number", "decimal_fraction", "percent", "units", "thousands", "negative", "scientific",
    "pi_sqrt", "interval", "set_tuple", "equation", "multiple_boxed", "latex_spacing",
}


def _expected(equal: bool) -> str:
    return "correct" if equal else "wrong"


@pytest.mark.parametrize(
    ("gold", "answer", "equal"), [c[2:] for c in CASES], ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_equivalence(gold: str, answer: str, equal: bool) -> None:
    verdict = verify_one(gold, f"Working through it, we get \\boxed{{{answer}}}.")
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
    assert CATEGORIES <= {c[0] for c in all_cases}
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
    ids=["thin_space_groups", "brace_comma_group", "e_notation", "e_notation_negative", "unicode_minus", "tilde",
         "letter_e_untouched", "thin_space_not_a_group", "thin_space_in_frac"],
)
def test_normalise_answer(raw: str, expected: str) -> None:
    assert normalise_answer(raw) == expected
