"""Tests for adacot.verify.extract: answer extraction, reasoning stripping and gold parsing (no sympy)."""

from __future__ import annotations

import pytest

from adacot.verify.extract import (
    EXTRACTION_METHODS,
    Extraction,
    extract_answer,
    last_boxed,
    parse_gold,
    strip_reasoning,
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
