"""Tests for adacot.verify.extract: our fallback answer rules, reasoning stripping, gold parsing, the rewrites made
before math-verify's extraction, and text (choice letter and word) golds and answers. No sympy here."""

from __future__ import annotations

import pytest

from adacot.verify.extract import (
    EXTRACTION_METHODS,
    Extraction,
    TextGold,
    bare_line,
    extract_answer,
    final_hash_answer,
    find_text_answer,
    is_plain_number,
    last_boxed,
    normalise_answer,
    parse_gold,
    prepare_response,
    strip_reasoning,
    text_gold,
    text_matches,
)

# (id, response, expected answer, expected method)
EXTRACT_CASES: list[tuple[str, str, str | None, str]] = [
    ("boxed_int", "So she makes \\boxed{18} dollars.", "18", "boxed"),
    ("boxed_nested_frac", "Hence $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", "boxed"),
    ("boxed_deeply_nested", "\\boxed{\\frac{\\sqrt{3}}{2^{2}}}", "\\frac{\\sqrt{3}}{2^{2}}", "boxed"),
    ("boxed_escaped_braces", "The set is \\boxed{\\{1,2\\}}.", "\\{1,2\\}", "boxed"),
    ("boxed_last_wins", "First \\boxed{3}, then corrected: \\boxed{4}", "4", "boxed"),
    ("fbox", "\\fbox{9}", "9", "boxed"),
    ("boxed_space_form", "so \\boxed 7 is it", "7", "boxed"),
    ("boxed_beats_phrase", "The answer is 3. Actually \\boxed{5}", "5", "boxed"),
    ("boxed_unclosed_skipped", "\\boxed{2} and later \\boxed{5", "2", "boxed"),
    ("boxed_empty_skipped", "\\boxed{} The answer is 6", "6", "answer_phrase"),
    ("think_other_number", "<think>Maybe 7? \\boxed{7}</think>\nSo \\boxed{5}", "5", "boxed"),
    ("think_closing_only", "reasoning says \\boxed{7}</think>The answer is 5.", "5", "answer_phrase"),
    ("phrase_the_answer_is", "We add them. The answer is 42.", "42", "answer_phrase"),
    ("phrase_final_answer", "Final answer: 0.5", "0.5", "answer_phrase"),
    ("phrase_markdown_bold", "**Final Answer:** $18", "18", "answer_phrase"),
    ("phrase_dollar_math", "The answer is $\\frac{3}{4}$.", "\\frac{3}{4}", "answer_phrase"),
    ("phrase_inline_paren_math", "answer: \\(\\sqrt{2}\\)", "\\sqrt{2}", "answer_phrase"),
    ("phrase_units", "The answer is 18 dollars.", "18", "answer_phrase"),
    ("phrase_thousands", "The answer is 1,234.", "1234", "answer_phrase"),
    ("phrase_negative", "The answer is -5.", "-5", "answer_phrase"),
    ("phrase_unicode_minus", "The answer is \u22125", "-5", "answer_phrase"),
    ("phrase_percent", "The answer is 10%.", "10", "answer_phrase"),
    ("phrase_fraction_then_word", "answer: 3/4 cup", "3/4", "answer_phrase"),
    ("phrase_number_then_because", "the answer is 42, since 6*7=42", "42", "answer_phrase"),
    ("phrase_expression_kept", "The answer is 2^{10}.", "2^{10}", "answer_phrase"),
    ("phrase_list_kept", "The answer is 3, 5", "3, 5", "answer_phrase"),
    ("phrase_equation", "The answer is x = 3.", "x = 3", "answer_phrase"),
    ("phrase_next_line", "Final answer:\n\n27", "27", "answer_phrase"),
    ("phrase_last_wins", "answer: 1\nwait, no. answer: 2", "2", "answer_phrase"),
    ("gsm8k_hash", "3 + 4 = 7\n#### 7", "7", "gsm8k_hash"),
    ("gsm8k_hash_leading_zero", "#### 025", "025", "gsm8k_hash"),
    ("gsm8k_hash_thousands", "#### 1,234,567", "1234567", "gsm8k_hash"),
    ("bare_int", "42", "42", "bare"),
    ("bare_frac", "\\frac{1}{2}", "\\frac{1}{2}", "bare"),
    ("bare_equation", "x=3", "x=3", "bare"),
    ("bare_decimal", "  27.0 \n", "27.0", "bare"),
    ("bare_dollar_math", "$\\frac{1}{2}$", "\\frac{1}{2}", "bare"),
    ("bare_with_unit", "18 dollars", "18", "bare"),
    ("last_number", "First 3 apples, then 5 more, so 8 apples in all", "8", "last_number"),
    ("last_number_minus_is_operator", "ok so 5-3 is it", "3", "last_number"),
    ("last_number_negative", "the root is x = -3 and that is all", "-3", "last_number"),
    ("last_number_thousands_decimal", "it costs 1,234,567.5 in total, I think", "1234567.5", "last_number"),
    ("last_number_unclosed_box", "\\boxed{5", "5", "last_number"),
    ("prose_is_not_bare", "x = -3 or 4 ok", "4", "last_number"),
    ("no_answer_prose", "I am not sure how to solve this.", None, "none"),
    ("no_answer_empty", "", None, "none"),
    ("no_answer_unclosed_think", "<think>so far 12 and 7", None, "none"),
    ("no_answer_only_think", "<think>it is \\boxed{7}</think>   ", None, "none"),
]


@pytest.mark.parametrize(
    ("text", "answer", "method"), [c[1:] for c in EXTRACT_CASES], ids=[c[0] for c in EXTRACT_CASES]
)
def test_extract_answer(text: str, answer: str | None, method: str) -> None:
    assert extract_answer(text) == Extraction(answer=answer, method=method)


# (id, response, expected with fallback on, expected with fallback off)
FALLBACK_CASES: list[tuple[str, str, Extraction, Extraction]] = [
    ("prose_number", "so we get 12 in the end", Extraction("12", "last_number"), Extraction(None, "none")),
    ("boxed_unaffected", "so \\boxed{12}", Extraction("12", "boxed"), Extraction("12", "boxed")),
    ("bare_unaffected", "12", Extraction("12", "bare"), Extraction("12", "bare")),
    ("no_number", "no idea", Extraction(None, "none"), Extraction(None, "none")),
]


@pytest.mark.parametrize(
    ("text", "with_fallback", "without_fallback"),
    [c[1:] for c in FALLBACK_CASES],
    ids=[c[0] for c in FALLBACK_CASES],
)
def test_last_number_fallback_switch(text: str, with_fallback: Extraction, without_fallback: Extraction) -> None:
    assert extract_answer(text, last_number_fallback=True) == with_fallback
    assert extract_answer(text, last_number_fallback=False) == without_fallback


STRIP_CASES: list[tuple[str, str, str]] = [
    ("no_think", "  just text \n", "just text"),
    ("closed_block", "<think>7</think> answer 5", "answer 5"),
    ("two_blocks", "<think>a</think>x<think>b</think>y", "xy"),
    ("upper_case_tags", "<THINK>a</THINK>b", "b"),
    ("multiline_block", "<think>line 1\nline 2\n</think>\nfinal", "final"),
    ("unclosed_leading", "<think>still thinking about 5", ""),
    ("unclosed_trailing", "answer 5 <think>hmm 6", "answer 5"),
    ("closing_without_opening", "reasoning in prompt template</think>final 5", "final 5"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in STRIP_CASES], ids=[c[0] for c in STRIP_CASES])
def test_strip_reasoning(text: str, expected: str) -> None:
    assert strip_reasoning(text) == expected


GOLD_CASES: list[tuple[str, str, str, str | None]] = [
    ("gsm8k", "She makes 9 * 2 = $<<9*2=18>>18.\n#### 18", "gsm8k", "18"),
    ("gsm8k_commas", "total\n#### 1,234", "gsm8k", "1234"),
    ("gsm8k_last_hash", "#### 1\nmore\n#### 2", "gsm8k", "2"),
    ("gsm8k_no_hash", "the answer is 18", "gsm8k", None),
    ("gsm8k_empty_after_hash", "work\n####   ", "gsm8k", None),
    ("math_solution_boxed", "So it is $\\boxed{\\frac{1}{2}}$.", "math", "\\frac{1}{2}"),
    ("math_answer_field", "\\left( 3, \\frac{\\pi}{2} \\right)", "math", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("math_empty", "   ", "math", None),
    ("synthetic", "  x^2 + 1 ", "synthetic", "x^2 + 1"),
    ("math500_answer_field", "\\frac{14}{3}", "math500", "\\frac{14}{3}"),
    ("aime_zero_padded", "025", "aime24", "25"),
    ("aime_plain", "204", "aime25", "204"),
    ("aime_zero", "000", "aime", "0"),
    ("aime_not_integer", "2.5", "aime24", None),
    ("aime_too_long", "1000", "aime24", None),
    ("amc_float_integral", "27.0", "amc23", "27"),
    ("amc_float_zeros", "-3.00", "amc", "-3"),
    ("amc_float_fraction", "0.5", "amc23", "0.5"),
    ("amc_plain_int", " 12 ", "amc23", "12"),
    ("user_pool_source", " 7 ", "my_pool", "7"),
    ("synthetic_empty", "", "synthetic", None),
]


@pytest.mark.parametrize(("raw", "source", "expected"), [c[1:] for c in GOLD_CASES], ids=[c[0] for c in GOLD_CASES])
def test_parse_gold(raw: str, source: str, expected: str | None) -> None:
    assert parse_gold(raw, source) == expected


def test_last_boxed_none_without_box() -> None:
    assert last_boxed("no box here {1}") is None


@pytest.mark.parametrize(
    ("answer", "method"),
    [(None, "boxed"), ("5", "none"), ("5", "regex")],
    ids=["boxed_without_answer", "none_with_answer", "unknown_method"],
)
def test_extraction_rejects_inconsistent_records(answer: str | None, method: str) -> None:
    with pytest.raises(ValueError):
        Extraction(answer=answer, method=method)


def test_every_method_is_reachable_in_the_table() -> None:
    # Guards the table above against silently losing coverage of a rule.
    assert {c[3] for c in EXTRACT_CASES} == set(EXTRACTION_METHODS)


# --- what math.py runs before and around math-verify's extraction -------------------------------------------

PREPARE_CASES: list[tuple[str, str, str]] = [
    ("think_dropped", "<think>maybe \\boxed{7}</think>So \\boxed{5}", "So \\boxed{5}"),
    ("box_token_form", "hence \\boxed 6.", "hence \\boxed{6}."),
    ("box_space_before_brace", "hence \\boxed {6}", "hence \\boxed{6}"),
    ("correction_unboxed", "First \\boxed{3}. Wait, no: \\boxed{5}.", "First 3. Wait, no: \\boxed{5}."),
    ("list_kept", "x = \\boxed{-1} or x = \\boxed{2}.", "x = \\boxed{-1} or x = \\boxed{2}."),
    ("comma_list_kept", "\\boxed{1}, \\boxed{2}, and \\boxed{3}", "\\boxed{1}, \\boxed{2}, and \\boxed{3}"),
    ("nested_box_unboxed", "\\boxed{\\boxed{2}} then \\boxed{3}", "2 then \\boxed{3}"),
    ("space_groups_joined", "The area is \\boxed{1 000 000}.", "The area is \\boxed{1000000}."),
    ("percent_dropped", "\\boxed{40\\%} or 25 percent", "\\boxed{40} or 25"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in PREPARE_CASES], ids=[c[0] for c in PREPARE_CASES])
def test_prepare_response(text: str, expected: str) -> None:
    assert prepare_response(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1 000 000", "1000000"),
        ("1 234.5", "1234.5"),
        ("2023 100", "2023 100"),  # the first group has four digits: two numbers, not one
        ("1 2 3", "1 2 3"),
        ("1 000 0", "1 000 0"),
        ("1 000, and 5", "1000, and 5"),
        ("12.5\\%", "12.5"),
        ("25\\text{ percent}", "25"),
    ],
    ids=[
        "space_groups",
        "space_groups_decimal",
        "four_digit_head",
        "single_digits",
        "short_tail",
        "comma_after",
        "latex_percent",
        "text_percent",
    ],
)
def test_normalise_answer_groups_and_percent(raw: str, expected: str) -> None:
    assert normalise_answer(raw) == expected


BARE_LINE_CASES: list[tuple[str, str, str | None]] = [
    ("relation", "Dividing by 2 gives\nx \\geq 5", "x \\geq 5"),
    ("equation_period", "So the line is\ny = 2x + 1.", "y = 2x + 1"),
    ("matrix", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("tuple", "(1, 2)", "(1, 2)"),
    ("unit_in_text", "5 \\text{ cm}", "5 \\text{ cm}"),
    ("plain_number_left_to_library", "42", None),
    ("prose", "So x is at least 5", None),
    ("dollar_math_left_to_library", "So $x \\geq 5$", None),
    ("boxed_left_to_library", "\\boxed{x \\geq 5}", None),
    ("two_answers_with_or", "x = 3 or x = -2", None),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in BARE_LINE_CASES], ids=[c[0] for c in BARE_LINE_CASES])
def test_bare_line(body: str, expected: str | None) -> None:
    assert bare_line(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [("3 + 4 = 7\n#### 7", "7"), ("#### 1,234\n", "1234"), ("#### 7\nI hope this helps", None), ("no hash", None)],
    ids=["closing_line", "thousands", "not_the_last_line", "none"],
)
def test_final_hash_answer(body: str, expected: str | None) -> None:
    assert final_hash_answer(body) == expected


@pytest.mark.parametrize(
    ("gold", "expected"),
    [
        ("8", True),
        ("-3.5", True),
        ("1,234", True),
        ("\u22127", True),
        ("1/2", False),
        ("x=3", False),
        ("2^{10}", False),
    ],
    ids=["integer", "decimal", "thousands", "unicode_minus", "fraction", "equation", "power"],
)
def test_is_plain_number(gold: str, expected: bool) -> None:
    assert is_plain_number(gold) is expected


TEXT_GOLD_CASES: list[tuple[str, str, TextGold | None]] = [
    ("letter", "C", TextGold("choice", "C")),
    ("letter_paren", "(C)", TextGold("choice", "C")),
    ("letter_text_paren", "\\text{(B)}", TextGold("choice", "B")),
    ("letter_mathrm", "\\mathrm{(E)}", TextGold("choice", "E")),
    ("letter_textbf_dollars", "$\\textbf{(A)}$", TextGold("choice", "A")),
    ("lower_letter_paren", "(d)", TextGold("choice", "D")),
    ("word_text", "\\text{even}", TextGold("word", "even")),
    ("word_bare", "Neither", TextGold("word", "neither")),
    ("two_words", "\\text{no solution}", TextGold("word", "no solution")),
    ("short_word_in_text", "\\text{No}", TextGold("word", "no")),
    ("letter_beyond_e", "F", None),
    ("lower_letter_bare", "e", None),
    ("two_letters_bare", "ab", None),
    ("function_name", "sin", None),
    ("number", "12", None),
    ("expression", "x^2+1", None),
    ("latex_command", "\\pi", None),
]


@pytest.mark.parametrize(("gold", "expected"), [c[1:] for c in TEXT_GOLD_CASES], ids=[c[0] for c in TEXT_GOLD_CASES])
def test_text_gold(gold: str, expected: TextGold | None) -> None:
    assert text_gold(gold) == expected


# (id, response body, gold, expected answer, expected method, matches)
TEXT_ANSWER_CASES: list[tuple[str, str, TextGold, str | None, str, bool]] = [
    ("boxed", "so \\boxed{\\text{(C)}}", TextGold("choice", "C"), "\\text{(C)}", "boxed", True),
    ("phrase_dollar", "the answer is $C$.", TextGold("choice", "C"), "$C$.", "answer_phrase", True),
    ("phrase_with_value", "**Answer:** C) 12", TextGold("choice", "C"), "C) 12", "answer_phrase", True),
    ("option_phrase", "The correct option is (b).", TextGold("choice", "B"), "(b).", "answer_phrase", True),
    ("last_line", "Options A to C fail.\n\n**D**", TextGold("choice", "D"), "**D**", "bare", True),
    ("article", "The answer is A triangle.", TextGold("choice", "A"), "A triangle.", "answer_phrase", False),
    ("expression_not_choice", "\\boxed{\\text{(C)} + 1}", TextGold("choice", "C"), "\\text{(C)} + 1", "boxed", False),
    ("equation_not_choice", "The answer is E = mc^2.", TextGold("choice", "E"), "E = mc^2.", "answer_phrase", False),
    ("last_line_sentence", "Count.\nA total of 12.", TextGold("choice", "A"), "A total of 12.", "bare", False),
    ("word_boxed", "\\boxed{\\textbf{Even}}", TextGold("word", "even"), "\\textbf{Even}", "boxed", True),
    (
        "word_because",
        "The answer is odd, because g(-x) = -g(x).",
        TextGold("word", "odd"),
        "odd, because g(-x) = -g(x).",
        "answer_phrase",
        True,
    ),
    ("word_negated", "The answer is not even.", TextGold("word", "even"), "not even.", "answer_phrase", False),
    ("word_last_line_sentence", "Check.\nIt is even.", TextGold("word", "even"), "It is even.", "bare", False),
    ("nothing", "x" * 50, TextGold("word", "even"), None, "none", False),
]


@pytest.mark.parametrize(
    ("body", "gold", "answer", "method", "matches"),
    [c[1:] for c in TEXT_ANSWER_CASES],
    ids=[c[0] for c in TEXT_ANSWER_CASES],
)
def test_text_answers(body: str, gold: TextGold, answer: str | None, method: str, matches: bool) -> None:
    found = find_text_answer(body)
    assert found == Extraction(answer=answer, method=method)
    assert text_matches(found, gold) is matches
