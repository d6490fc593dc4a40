"""Named answer-equivalence cases by category, shared by the verifier tests and bench/verify_agreement.py.

This module is for data only: tables of (category, id, gold, response or answer, equal) with no test
logic, so that the tests and the agreement bench judge exactly the same cases. It is not a test module
(pytest collects nothing here) and imports nothing from adacot but ``parse_gold``.

- ``EQUIVALENCE_CASES``: the answer alone; the response is ``boxed_response(answer)``.
- ``RESPONSE_CASES``: whole responses where the layout of several ``\\boxed`` is the point.
- ``CLASS_CASES``: whole, realistic responses (reasoning, then the answer in the various forms) in the
  classes where our verifier once missed answers plain math-verify found, or where math-verify itself
  misses: relations, matrices, lists against several boxes, final-answer sentences without a box, choice
  letters and words, space-grouped thousands, long reasoning whose last number is not the answer,
  equations, bare LaTeX without ``$``, letters in ``\\mathrm``/``\\textbf``. The gold is given raw with
  its source and goes through ``parse_gold`` as a stage would. All written for this project.
"""

from __future__ import annotations

from typing import NamedTuple

from adacot.verify import parse_gold


class Case(NamedTuple):
    """One judged pair: ``gold`` is already what ``parse_gold`` gives; ``equal`` is the expected label."""

    table: str
    category: str
    id: str
    gold: str | None
    response: str
    equal: bool


def boxed_response(answer: str) -> str:
    """The ordinary response an ``EQUIVALENCE_CASES`` answer is put in."""
    return f"Working through it, we get \\boxed{{{answer}}}."


# (category, id, gold, answer, equal)
EQUIVALENCE_CASES: list[tuple[str, str, str, str, bool]] = [
    # fractions
    ("fraction", "frac_vs_slash", r"\frac{3}{4}", "3/4", True),
    ("fraction", "dfrac_vs_frac", r"\dfrac{3}{4}", r"\frac{3}{4}", True),
    ("fraction", "tfrac_vs_frac", r"\tfrac{1}{2}", r"\frac12", True),
    ("fraction", "frac_no_braces", r"\frac{1}{2}", r"\frac12", True),
    ("fraction", "unreduced_frac", r"\frac{1}{2}", r"\frac{2}{4}", True),
    ("fraction", "slash_vs_dfrac", "5/8", r"\dfrac{5}{8}", True),
    ("fraction", "negative_frac_sign_placement", r"-\frac{1}{2}", r"\frac{-1}{2}", True),
    ("fraction", "frac_wrong", r"\frac{3}{4}", r"\frac{4}{3}", False),
    ("fraction", "frac_vs_reciprocal_slash", "2/3", "3/2", False),
    ("fraction", "frac_of_sqrt", r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt3}{2}", True),
    # mixed numbers
    ("mixed_number", "mixed_vs_improper", r"\frac{7}{2}", r"3\frac{1}{2}", True),
    ("mixed_number", "mixed_vs_decimal", "3.5", r"3\frac{1}{2}", True),
    ("mixed_number", "mixed_wrong", r"\frac{7}{3}", r"3\frac{1}{2}", False),
    ("mixed_number", "mixed_space", r"\frac{9}{4}", r"2 \frac{1}{4}", True),
    # decimals vs fractions
    ("decimal_fraction", "half", "0.5", r"\frac{1}{2}", True),
    ("decimal_fraction", "quarter_slash", "0.25", "1/4", True),
    ("decimal_fraction", "leading_dot", ".75", r"\frac34", True),
    ("decimal_fraction", "trailing_zeros", "2.50", r"\frac{5}{2}", True),
    ("decimal_fraction", "third_rounded_wrong", r"\frac{1}{3}", "0.33", False),
    ("decimal_fraction", "close_but_wrong", "0.125", r"\frac{1}{7}", False),
    ("decimal_fraction", "integer_as_decimal", "27", "27.0", True),
    ("decimal_fraction", "integer_as_decimal_zeros", "4", "4.000", True),
    # percentages
    ("percent", "percent_sign_dropped", "10", r"10\%", True),
    ("percent", "percent_gold_plain_answer", r"10\%", "10", True),
    ("percent", "percent_word", "25", "25 percent", True),
    ("percent", "percent_plain_sign", "40", "40%", True),
    ("percent", "percent_wrong", "12", r"21\%", False),
    ("percent", "percent_decimal", r"12.5\%", "12.5", True),
    # units and \text
    ("units", "text_unit_dollars", "18", r"18 \text{ dollars}", True),
    ("units", "text_unit_cm", "5", r"5\text{ cm}", True),
    ("units", "mbox_unit", "12", r"12 \mbox{ inches}", True),
    ("units", "dollar_sign", "18", r"\$18", True),
    ("units", "degrees", "90", r"90^\circ", True),
    ("units", "degrees_word", "45", r"45^{\circ}", True),
    ("units", "unit_squared", "16", r"16 \text{ cm}^2", True),
    ("units", "unit_wrong_number", "18", r"19 \text{ dollars}", False),
    ("units", "text_answer_word", r"\text{Monday}", r"\text{Monday}", True),
    # thousands separators
    ("thousands", "comma_answer", "1234", "1,234", True),
    ("thousands", "comma_gold", "1,234", "1234", True),
    ("thousands", "comma_million", "1000000", "1,000,000", True),
    ("thousands", "latex_comma_group", "12345", r"12{,}345", True),
    ("thousands", "thin_space", "1000000", r"1\,000\,000", True),
    ("thousands", "comma_wrong", "1234", "1,243", False),
    ("thousands", "comma_with_decimals", "1234.5", "1,234.50", True),
    # negatives
    ("negative", "negative_int", "-5", "-5", True),
    ("negative", "sign_wrong", "5", "-5", False),
    ("negative", "negative_paren", "-3", "(-3)", True),
    ("negative", "negative_decimal", "-0.5", r"-\frac{1}{2}", True),
    ("negative", "negative_unicode_minus", "-7", "\u22127", True),
    ("negative", "double_negative_wrong", "-2", "2", False),
    # scientific notation
    ("scientific", "times_ten", "3000", r"3 \times 10^3", True),
    ("scientific", "cdot_ten", "0.002", r"2 \cdot 10^{-3}", True),
    ("scientific", "e_notation", "1500", "1.5e3", True),
    ("scientific", "sci_wrong", r"3 \times 10^4", "3000", False),
    ("scientific", "big_power", "1000000", r"10^6", True),
    # pi and sqrt
    ("pi_sqrt", "pi_times", "2\\pi", r"2 \pi", True),
    ("pi_sqrt", "pi_frac", r"\frac{\pi}{2}", r"\frac{1}{2}\pi", True),
    ("pi_sqrt", "pi_vs_decimal_wrong", r"\pi", "3.14", False),
    ("pi_sqrt", "sqrt_simplify", r"2\sqrt{2}", r"\sqrt{8}", True),
    ("pi_sqrt", "sqrt_no_braces", r"\sqrt{2}", r"\sqrt2", True),
    ("pi_sqrt", "rationalized", r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    ("pi_sqrt", "sqrt_wrong", r"\sqrt{3}", r"\sqrt{2}", False),
    ("pi_sqrt", "cube_root", r"\sqrt[3]{8}", "2", True),
    ("pi_sqrt", "pi_r_squared", r"16\pi", r"\pi \cdot 16", True),
    # intervals
    ("interval", "open_interval", "(1,2)", r"\left(1, 2\right)", True),
    ("interval", "closed_interval", "[0,1]", r"[0, 1]", True),
    ("interval", "half_open_wrong", "[0,1)", "[0,1]", False),
    ("interval", "infinity", r"(-\infty, 3]", r"(-\infty,3]", True),
    ("interval", "union", r"(-\infty,0)\cup(1,\infty)", r"(-\infty, 0) \cup (1, \infty)", True),
    ("interval", "interval_endpoints_wrong", "(1,3)", "(1,2)", False),
    # sets and tuples
    ("set_tuple", "set_order_irrelevant", r"\{1,2,3\}", r"\{3,2,1\}", True),
    ("set_tuple", "tuple_order_matters", "(1,2)", "(2,1)", False),
    ("set_tuple", "tuple_spacing", "(3,4)", r"(3, 4)", True),
    ("set_tuple", "tuple_with_frac", r"\left(\frac{1}{2}, 3\right)", "(0.5, 3)", True),
    ("set_tuple", "roots_list", "2, 3", "3, 2", True),
    ("set_tuple", "set_missing_element", r"\{1,2,3\}", r"\{1,2\}", False),
    # equations
    ("equation", "var_eq_value", "3", "x=3", True),
    ("equation", "gold_eq_answer_value", "x=3", "3", True),
    ("equation", "both_eq", "y=5", "y = 5", True),
    ("equation", "eq_wrong_value", "3", "x=4", False),
    ("equation", "line_equation", r"y=2x+1", r"y = 1 + 2x", True),
    ("equation", "line_equation_wrong", r"y=2x+1", r"y = 2x - 1", False),
    # expressions
    ("expression", "expanded_vs_factored", "x^2+2x+1", "(x+1)^2", True),
    ("expression", "commuted", "a+b", "b+a", True),
    ("expression", "power_value", "1024", "2^{10}", True),
    ("expression", "wrong_expression", "x^2+1", "x^2-1", False),
    # latex spacing
    ("latex_spacing", "spacing_does_not_hide_wrong", r"\frac{3}{4}", r"\displaystyle \frac{4}{\,3}", False),
    ("latex_spacing", "thin_space_inside", r"\frac{1}{2}", r"\frac{1}{\,2}", True),
    ("latex_spacing", "quad", r"5", r"\quad 5", True),
    ("latex_spacing", "left_right", "(1,2)", r"\left( 1 , 2 \right)", True),
    ("latex_spacing", "displaystyle", r"\frac{3}{4}", r"\displaystyle\frac{3}{4}", True),
    ("latex_spacing", "negative_space", r"12", r"1\!2", True),
    ("latex_spacing", "tilde_space", "7", r"~7", True),
    # letters / choices
    ("choice", "letter_paren", r"\text{(B)}", "(B)", True),
    ("choice", "letter_wrong", r"\text{(B)}", "(C)", False),
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

_LINE = "The line through $(0, 1)$ with slope $2$ rises 2 units for each unit to the right."
_PARITY_EVEN = "We compute $f(-x) = (-x)^4 - 3(-x)^2 = x^4 - 3x^2 = f(x)$ for every real $x$."
_PARITY_ODD = "We compute $g(-x) = (-x)^3 + 2(-x) = -(x^3 + 2x) = -g(x)$ for every real $x$."
_APPLES = (
    "Let $n$ be the number of apples. Each of the 6 baskets holds 7 apples, so $n = 6 \\cdot 7 = 42$.\n\n"
    "So the answer is \\boxed{42}.\n\nCheck: $42 / 6 = 7$ and $42 / 7 = 6$, so all 3 conditions hold."
)
_CHAIRS = (
    "The hall has 4 rows and each row has 6 chairs. Multiplying, $4 \\times 6 = 24$.\n"
    "The final answer is 24, which uses 4 rows of 6 chairs each."
)
_CLIPS = "Natalia sold $48 / 2 = 24$ clips in May.\nAltogether she sold $48 + 24 = 72$ clips in April and May.\n#### 72"
_TRAIN = (
    "The train covers 150 km at 60 km/h, so the trip takes $150 / 60$ hours.\n"
    "The answer is $\\frac{5}{2}$ hours, that is 150 minutes."
)
_DAYS = (
    "Since $100 = 14 \\cdot 7 + 2$, 100 days after a Wednesday is 2 days after a Wednesday: \\boxed{\\text{Friday}}."
)

_S = "synthetic"  # a user pool: parse_gold only strips the text

# (category, id, raw gold, source, whole response, equal); the gold goes through parse_gold(raw, source).
# One case per row or two, grouped by class, reads better here than the formatter's one value per line.
# fmt: off
CLASS_CASES: list[tuple[str, str, str, str, str, bool]] = [
    # relations: \geq / >= / \ge, \neq / !=, \lt, \gt, flipped sides
    ("relation", "geq_vs_ascii", r"x \geq 5", _S,
     "Subtract 3 from both sides: $2x \\geq 10$. Dividing by 2 gives the solution set $x >= 5$.", True),
    ("relation", "geq_vs_ge_boxed", r"x \geq 5", _S, "Therefore $\\boxed{x \\ge 5}$.", True),
    ("relation", "geq_flipped_sides", r"x \geq 5", _S, "So we need \\boxed{5 \\leq x}.", True),
    ("relation", "geq_vs_strict", r"x \geq 5", _S, "Hence \\boxed{x > 5}.", False),
    ("relation", "geq_wrong_bound", r"x \geq 5", _S, "The answer is $x \\geq 6$.", False),
    ("relation", "geq_vs_number", r"x \geq 5", _S, "The smallest value is \\boxed{5}.", False),
    ("relation", "neq_vs_ascii", r"x \neq 3", _S,
     "The denominator vanishes only at 3, so every real number except 3 works: $x != 3$.", True),
    ("relation", "neq_vs_eq", r"x \neq 3", _S, "The excluded value gives \\boxed{x = 3}.", False),
    ("relation", "lt_vs_ascii", r"x \lt 2", _S, "Both factors are positive exactly when $x < 2$.", True),
    ("relation", "gt_vs_ascii", r"y \gt -1", _S, "Adding 1 to both sides, \\boxed{y > -1}.", True),
    ("relation", "gt_sign_wrong", r"y \gt -1", _S, "Adding 1 to both sides, \\boxed{y > 1}.", False),
    ("relation", "lt_direction_wrong", r"x < 2", _S, "So the inequality holds for \\boxed{x > 2}.", False),
    # matrices: pmatrix / bmatrix / array / matrix spellings
    ("matrix", "pmatrix_vs_bmatrix", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", _S,
     "Multiplying row by column, the product is $\\boxed{\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}}$.", True),
    ("matrix", "pmatrix_vs_array", r"\begin{pmatrix} 3 \\ -1 \end{pmatrix}", _S,
     "So the vector is $\\boxed{\\left(\\begin{array}{c} 3 \\\\ -1 \\end{array}\\right)}$.", True),
    ("matrix", "pmatrix_vs_left_matrix", r"\begin{pmatrix} 2 & 0 \\ 0 & 2 \end{pmatrix}", _S,
     "Doubling the identity gives \\boxed{\\left[\\begin{matrix} 2 & 0 \\\\ 0 & 2 \\end{matrix}\\right]}.", True),
    ("matrix", "fractions_vs_decimals", r"\begin{pmatrix} \frac{1}{2} & 0 \\ 0 & 2 \end{pmatrix}", _S,
     "The inverse is $\\boxed{\\begin{pmatrix} 0.5 & 0 \\\\ 0 & 2 \\end{pmatrix}}$.", True),
    ("matrix", "entry_wrong", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", _S,
     "The product is $\\boxed{\\begin{bmatrix} 1 & 2 \\\\ 3 & 5 \\end{bmatrix}}$.", False),
    ("matrix", "transposed", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", _S,
     "The product is $\\boxed{\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}}$.", False),
    ("matrix", "column_vs_row", r"\begin{pmatrix} 3 \\ -1 \end{pmatrix}", _S,
     "So the vector is $\\boxed{\\begin{pmatrix} 3 & -1 \\end{pmatrix}}$.", False),
    # tuple / set / list golds against several boxed answers
    ("boxed_list", "pairs_two_boxes", "(1,2), (3,4)", _S,
     "Substituting back, both pairs work. The solutions are $\\boxed{(1,2)}$ and $\\boxed{(3,4)}$.", True),
    ("boxed_list", "pairs_reordered", "(1,2), (3,4)", _S,
     "The solutions are \\boxed{(3,4)} and \\boxed{(1,2)}.", True),
    ("boxed_list", "pairs_one_missing", "(1,2), (3,4)", _S, "The only solution is \\boxed{(1,2)}.", False),
    ("boxed_list", "pairs_one_swapped", "(1,2), (3,4)", _S,
     "The solutions are \\boxed{(1,2)}, \\boxed{(4,3)}.", False),
    ("boxed_list", "set_roots_or", r"\{-1, 2\}", _S,
     "Factoring, $(x+1)(x-2) = 0$, so $x = \\boxed{-1}$ or $x = \\boxed{2}$.", True),
    ("boxed_list", "set_root_missing", r"\{-1, 2\}", _S,
     "Factoring, $(x+1)(x-2) = 0$; the positive root is $x = \\boxed{2}$.", False),
    ("boxed_list", "list_three_boxes", "1, 2, 3", _S,
     "The values are \\boxed{1}, \\boxed{2}, and \\boxed{3}.", True),
    ("boxed_list", "list_three_wrong", "1, 2, 3", _S, "The values are \\boxed{1}, \\boxed{2}, \\boxed{4}.", False),
    ("boxed_list", "guess_then_list", "2, 5", _S,
     "I first thought \\boxed{3}. Actually the roots are \\boxed{2} and \\boxed{5}.", True),
    ("boxed_list", "correction_not_a_list", "5", _S, "First \\boxed{3}. Wait, no: \\boxed{5}.", True),
    ("boxed_list", "correction_first_guess_wrong", "3", _S, "First \\boxed{3}. Wait, no: \\boxed{5}.", False),
    # final-answer sentences without a box
    ("final_answer_sentence", "i_hope_integer", "42", _S,
     "We multiply 6 by 7.\n\nFinal Answer: The final answer is 42. I hope it is correct.", True),
    ("final_answer_sentence", "i_hope_latex", r"\frac{3}{4}", _S,
     "Three of the four parts are shaded.\n\nFinal Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.",
     True),
    ("final_answer_sentence", "i_hope_wrong", "41", _S,
     "We multiply 6 by 7.\n\nFinal Answer: The final answer is 42. I hope it is correct.", False),
    ("final_answer_sentence", "words_between", "12", _S,
     "After checking both cases, the final answer to the problem is 12, since 3 boxes hold 4 each.", True),
    ("final_answer_sentence", "words_between_trailing_number", "4", _S,
     "After checking both cases, the final answer to the problem is 12, since 3 boxes hold 4 each.", False),
    ("final_answer_sentence", "units_after", "18", _S,
     "She earns 9 dollars an hour for 2 hours.\nFinal Answer: The final answer is 18 dollars. I hope it is correct.",
     True),
    ("final_answer_sentence", "sqrt_right", r"2\sqrt{3}", _S,
     "The diagonal is $\\sqrt{12}$.\nFinal Answer: The final answer is $2\\sqrt{3}$. I hope it is correct.", True),
    ("final_answer_sentence", "sqrt_wrong", r"3\sqrt{2}", _S,
     "The diagonal is $\\sqrt{12}$.\nFinal Answer: The final answer is $2\\sqrt{3}$. I hope it is correct.", False),
    # multiple-choice letters: $C$, \text{C}, (C), \boxed{C}, lower case; never a number
    ("choice_letter", "dollar_vs_text", r"\text{C}", _S,
     "Only option C satisfies both conditions, so the answer is $C$.", True),
    ("choice_letter", "text_vs_plain", "C", _S, "Checking each option in turn, the answer is $\\text{C}$.", True),
    ("choice_letter", "parenthesised", "C", _S, "Comparing the options, the answer is (C).", True),
    ("choice_letter", "boxed_vs_paren_gold", "(C)", _S, "Only the third option fits. \\boxed{C}", True),
    ("choice_letter", "boxed_text_paren", "B", _S, "Hence the answer is $\\boxed{\\text{(B)}}$.", True),
    ("choice_letter", "lower_case", "B", _S, "Options (a) and (c) fail the test.\n\n**Answer:** (b)", True),
    ("choice_letter", "bold_last_line", "D", _S, "Options A to C all fail the parity test.\n\n**D**", True),
    ("choice_letter", "wrong_letter", "C", _S, "Checking each option in turn, the answer is $\\text{D}$.", False),
    ("choice_letter", "letter_vs_number", "C", _S, "The area is \\boxed{3}.", False),
    ("choice_letter", "number_vs_letter", "3", _S, "Comparing the options, \\boxed{C}.", False),
    ("choice_letter", "letter_in_expression", r"\text{(C)}", _S, "So the value is \\boxed{\\text{(C)} + 1}.", False),
    ("choice_letter", "article_not_a_choice", "A", _S, "The answer is A triangle with sides 3, 4 and 5.", False),
    ("choice_letter", "last_line_sentence_not_a_choice", "A", _S, "We count the fruit.\nA total of 12 apples.", False),
    ("choice_letter", "point_name_not_answer", "C", _S,
     "Point $C$ lies on the circle, so its distance from the center is 5. The answer is (A).", False),
    # letters in \mathrm / \textbf
    ("mathrm_textbf", "mathrm_gold", r"\mathrm{(B)}", _S, "The correct option is B.", True),
    ("mathrm_textbf", "textbf_answer", "B", _S, "Answer: $\\textbf{(B)}$", True),
    ("mathrm_textbf", "mathrm_boxed", "A", _S, "So we pick \\boxed{\\mathrm{A}}.", True),
    ("mathrm_textbf", "textbf_gold_mathrm_answer", r"\textbf{(E)}", _S, "The answer is $\\mathrm{(E)}$.", True),
    ("mathrm_textbf", "textbf_wrong", "B", _S, "Answer: $\\textbf{(E)}$", False),
    ("mathrm_textbf", "mathrm_wrong", "A", _S, "So we pick \\boxed{\\mathrm{E}}.", False),
    # words: parity, days, "neither"; case and \text{} do not matter, numbers never match
    ("text_word", "parity_boxed", r"\text{even}", _S, f"{_PARITY_EVEN}\nSo $f$ is \\boxed{{\\text{{even}}}}.",
     True),
    ("text_word", "parity_phrase", r"\text{odd}", _S, f"{_PARITY_ODD}\nThe answer is odd.", True),
    ("text_word", "parity_case", "even", _S, f"{_PARITY_EVEN}\n\\boxed{{\\text{{Even}}}}", True),
    ("text_word", "neither_phrase", "neither", _S,
     "Since $h(-1) = 3$ while $h(1) = 1$, the answer is neither, because 3 is neither 1 nor -1.", True),
    ("text_word", "day_right", r"\text{Friday}", _S, _DAYS, True),
    ("text_word", "parity_wrong", r"\text{even}", _S, f"{_PARITY_ODD}\n\\boxed{{\\text{{odd}}}}", False),
    ("text_word", "neither_vs_even", r"\text{neither}", _S, f"{_PARITY_EVEN}\n\\boxed{{\\text{{even}}}}", False),
    ("text_word", "word_vs_number", r"\text{even}", _S, "The degree is \\boxed{2}.", False),
    ("text_word", "day_wrong", r"\text{Sunday}", _S, _DAYS, False),
    # space-grouped thousands ("1 000 000"): math-verify reads it as 1*0*0 inside LaTeX
    ("space_thousands", "phrase", "1000000", _S,
     "A square of side 1 000 has area $1000^2$.\nThe answer is 1 000 000.", True),
    ("space_thousands", "boxed", "1000000", _S, "A square of side 1000 has area \\boxed{1 000 000}.", True),
    ("space_thousands", "boxed_is_not_zero", "0", _S,
     "A square of side 1000 has area \\boxed{1 000 000}.", False),
    ("space_thousands", "spaced_gold", "12 345", _S, "Adding the two parts gives \\boxed{12345}.", True),
    ("space_thousands", "thin_space_boxed", "2500000", _S, "The total is $\\boxed{2\\,500\\,000}$.", True),
    ("space_thousands", "decimals", "1234.5", _S, "The mean is \\boxed{1 234.5}.", True),
    ("space_thousands", "off_by_one", "1000000", _S, "The answer is 1 000 001.", False),
    # long reasoning whose last number is not the answer
    ("long_reasoning", "boxed_then_check", "42", _S, _APPLES, True),
    ("long_reasoning", "boxed_then_check_last_number", "3", _S, _APPLES, False),
    ("long_reasoning", "final_answer_then_words", "24", _S, _CHAIRS, True),
    ("long_reasoning", "final_answer_then_words_last_number", "6", _S, _CHAIRS, False),
    ("long_reasoning", "answer_latex_then_conversions", r"\frac{5}{2}", _S, _TRAIN, True),
    ("long_reasoning", "answer_latex_then_conversions_last", "150", _S, _TRAIN, False),
    ("long_reasoning", "answer_word_in_passing", "10", _S,
     "To answer this, note that 5 apples cost 2 dollars each, so the total is 10.", True),
    ("long_reasoning", "answer_word_in_passing_not_the_answer", "5", _S,
     "To answer this, note that 5 apples cost 2 dollars each, so the total is 10.", False),
    ("long_reasoning", "gsm8k_hash", "Natalia sold 24 clips in May.\n#### 72", "gsm8k", _CLIPS, True),
    ("long_reasoning", "gsm8k_hash_intermediate", "#### 24", "gsm8k", _CLIPS, False),
    ("long_reasoning", "math_solution_gold", r"So the number is $\boxed{15}$.", "math",
     "Half of the number is 5 more than 2.5, i.e. 7.5, so the number is 15.\n"
     "The answer is 15.\n\nTo double-check: $15 / 2 = 7.5$ and $7.5 - 5 = 2.5$.", True),
    ("long_reasoning", "math_solution_gold_last", r"So the number is $\boxed{2.5}$.", "math",
     "Half of the number is 5 more than 2.5, i.e. 7.5, so the number is 15.\n"
     "The answer is 15.\n\nTo double-check: $15 / 2 = 7.5$ and $7.5 - 5 = 2.5$.", False),
    # equations: the same line in other spellings
    ("equation_gold", "spacing", "y = 2x+1", _S, f"{_LINE} So the line is $\\boxed{{y=2x+1}}$.", True),
    ("equation_gold", "reordered", "y = 2x+1", _S, f"{_LINE}\n\\boxed{{y = 1 + 2x}}", True),
    ("equation_gold", "phrase_no_box", "y = -3x + 4", _S, "The answer is $y = -3x + 4$.", True),
    ("equation_gold", "circle", "x^2 + y^2 = 25", _S, "The circle is $\\boxed{y^2 + x^2 = 25}$.", True),
    ("equation_gold", "sign_wrong", "y = 2x+1", _S, f"{_LINE}\n\\boxed{{y = 2x - 1}}", False),
    ("equation_gold", "variables_swapped", "y = 2x+1", _S, f"{_LINE}\n\\boxed{{x = 2y + 1}}", False),
    ("equation_gold", "circle_radius_wrong", "x^2 + y^2 = 25", _S, "The circle is $\\boxed{x^2 + y^2 = 5}$.",
     False),
    # bare LaTeX written without $ delimiters, in the response or the gold
    ("bare_latex", "frac_sqrt_whole_response", r"\frac{\sqrt{3}}{2}", _S, r"\frac{\sqrt{3}}{2}", True),
    ("bare_latex", "relation_last_line", r"x \geq 5", _S, "Dividing both sides by 2 gives\nx \\geq 5", True),
    ("bare_latex", "relation_last_line_not_its_number", "5", _S,
     "Dividing both sides by 2 gives\nx \\geq 5", False),
    ("bare_latex", "sqrt_multiple", r"2\sqrt{3}", _S, r"2\sqrt{3}", True),
    ("bare_latex", "sqrt_multiple_not_its_coefficient", "2", _S, r"2\sqrt{3}", False),
    ("bare_latex", "pi_multiple", r"3\pi", _S, "The area of the sector is\n3\\pi", True),
    ("bare_latex", "pi_multiple_not_its_coefficient", "3", _S, "The area of the sector is\n3\\pi", False),
    ("bare_latex", "phrase_sqrt", r"\sqrt{2}", _S, "The answer is \\sqrt{2}", True),
    ("bare_latex", "phrase_sqrt_wrong", r"\sqrt{3}", _S, "The answer is \\sqrt{2}", False),
    ("bare_latex", "tuple_whole_response", "(1, 2)", _S, "(1, 2)", True),
    ("bare_latex", "tuple_not_its_last_number", "2", _S, "(1, 2)", False),
    ("bare_latex", "matrix_last_line", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", _S,
     "Stacking the two coordinates:\n\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", True),
    ("bare_latex", "gold_dfrac", r"\dfrac{14}{3}", "math500", "Adding the parts, \\boxed{\\frac{14}{3}}.", True),
    ("bare_latex", "gold_dfrac_wrong", r"\dfrac{14}{3}", "math500", "Adding the parts, \\boxed{\\frac{13}{3}}.", False),
    ("bare_latex", "gold_sqrt_expression", r"3\sqrt{2} - 1", "math500", "So $\\boxed{-1 + \\sqrt{18}}$.", True),
    # gold readings the library or graders accept: a decimal comma, a unit on the gold, a function or
    # assignments written out, a one-line list response, the answer written exactly as the gold, and
    # math-verify's own judgement where ours finds nothing it can parse
    ("gold_reading", "decimal_comma_gold", "3,75", _S, "Sharing the cost gives each person \\boxed{3.75} euros.", True),
    ("gold_reading", "decimal_comma_gold_wrong", "3,75", _S, "Each person pays \\boxed{3.57}.", False),
    ("gold_reading", "decimal_comma_gold_as_list", "3,75", _S, "The two values are \\boxed{3, 75}.", True),
    ("gold_reading", "thousands_comma_is_no_decimal", "3,750", _S, "In all it costs \\boxed{3.75}.", False),
    ("gold_reading", "unit_on_gold", "12 weeks", _S, "Dividing 84 days by 7 gives \\boxed{12}.", True),
    ("gold_reading", "unit_on_gold_wrong", "12 weeks", _S, "Dividing 84 days by 7 gives \\boxed{13}.", False),
    ("gold_reading", "unit_squared_on_gold", "36 cm^2", _S, "The area is $6 \\times 6 = \\boxed{36}$.", True),
    ("gold_reading", "pi_is_no_unit", r"2\pi", _S, "The circumference is \\boxed{2}.", False),
    ("gold_reading", "function_gold_vs_y", "f(x) = 3x - 4", _S, "The line through both points is\ny = 3x - 4", True),
    ("gold_reading", "function_gold_vs_rhs", "f(x) = 3x - 4", _S, "So the function is \\boxed{3x - 4}.", True),
    ("gold_reading", "function_gold_wrong", "f(x) = 3x - 4", _S, "The line is\ny = 3x + 4", False),
    ("gold_reading", "assignments_vs_values", "a = 2, b = 5", _S, "2, 5", True),
    ("gold_reading", "assignments_vs_values_swapped", "a = 2, b = 5", _S, "5, 7", False),
    ("gold_reading", "one_line_list_response", "1, 4, 9", _S, "1, 4, 9", True),
    ("gold_reading", "one_line_list_not_its_last", "9", _S, "1, 4, 9", False),
    ("gold_reading", "list_after_working_is_no_answer_list", "(1, 2)", _S,
     "We try every pair.\n1, 2", False),
    ("gold_reading", "clock_time_same_text", "10:45", _S, "The train arrives at $\\boxed{10:45}$.", True),
    ("gold_reading", "clock_time_other", "10:45", _S, "The train arrives at $\\boxed{10:54}$.", False),
    ("gold_reading", "sentence_same_text", r"\text{the diagonals bisect each other}", _S,
     "Hence $\\boxed{\\text{the diagonals bisect each other}}$.", True),
    ("gold_reading", "percent_word_library", r"35\%", _S, "So the discount is $\\boxed{35 percent}$.", True),
    ("gold_reading", "percent_word_library_wrong", r"35\%", _S, "So the discount is $\\boxed{53 percent}$.", False),
    ("gold_reading", "boxes_in_gold_with_words", r"\boxed{3} apples and \boxed{4} pears", _S,
     "Solving both equations, $\\boxed{3, 4}$.", True),
]
# fmt: on


def all_cases() -> list[Case]:
    """Every case of the three tables, with the gold as a stage would pass it to ``verify_one``."""
    rows = [Case("equivalence", c, i, g, boxed_response(a), e) for c, i, g, a, e in EQUIVALENCE_CASES]
    rows += [Case("responses", c, i, g, r, e) for c, i, g, r, e in RESPONSE_CASES]
    rows += [Case("classes", c, i, parse_gold(raw, src), r, e) for c, i, raw, src, r, e in CLASS_CASES]
    return rows
