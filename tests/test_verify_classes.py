"""Answer checking by class of answer, on whole responses: the classes where the verifier once threw away
answers math-verify's own extraction finds (relations, matrices, several boxes against a list, final-answer
sentences, choice letters and words, space-grouped thousands, long reasoning, equations) and where plain
math-verify misses (bare LaTeX without ``$``, letters in ``\\mathrm``/``\\textbf``).

Each case (in ``verify_cases.CLASS_CASES``) goes through ``parse_gold`` and ``verify_one`` exactly as the
grading and verification stages call them, with ``finish_reason="stop"``; equal must come out ``correct``
and not equal ``wrong`` (never a false positive, and never hidden as ``no_answer``). The same table runs
through ``verify_many``'s worker pool once, and side by side with plain math-verify in
bench/verify_agreement.py.
"""

from __future__ import annotations

from collections import Counter

import pytest
from verify_cases import CLASS_CASES

from adacot.verify import parse_gold, verify_many, verify_one

CLASSES = {
    "relation",
    "gold_reading",
    "matrix",
    "boxed_list",
    "final_answer_sentence",
    "choice_letter",
    "mathrm_textbf",
    "text_word",
    "space_thousands",
    "long_reasoning",
    "equation_gold",
    "bare_latex",
}


def _gold(raw: str, source: str) -> str:
    return parse_gold(raw, source) or raw


@pytest.mark.parametrize(
    ("raw", "source", "response", "equal"),
    [c[2:] for c in CLASS_CASES],
    ids=[f"{c[0]}-{c[1]}" for c in CLASS_CASES],
)
def test_class_case(raw: str, source: str, response: str, equal: bool) -> None:
    verdict = verify_one(_gold(raw, source), response, finish_reason="stop")
    assert verdict.status == ("correct" if equal else "wrong"), verdict.reason
    assert verdict.extracted, "a judged answer must say what was extracted"


def test_worker_pool_gives_the_same_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    import adacot.verify.math as verify_math

    monkeypatch.setattr(verify_math, "_MIN_POOLED_ITEMS", 0)  # always through the pool, however long the table
    items = [(_gold(raw, source), response, "stop") for _, _, raw, source, response, _ in CLASS_CASES]
    assert verify_many(items, workers=2) == [verify_one(g, r, finish_reason=f) for g, r, f in items]


def test_table_covers_every_class_both_ways() -> None:
    ids = [(c[0], c[1]) for c in CLASS_CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CLASS_CASES) >= 60
    assert {c[0] for c in CLASS_CASES} == CLASSES
    equal = Counter(c[0] for c in CLASS_CASES if c[5])
    unequal = Counter(c[0] for c in CLASS_CASES if not c[5])
    missing = sorted(cat for cat in CLASSES if not (equal[cat] and unequal[cat]))
    assert not missing, f"classes without both an equal and a not-equal case: {missing}"


@pytest.mark.parametrize(
    ("gold", "response"),
    [
        ("C", "Checking the options, the answer is (C). Let me also verify option (D) with 2 more"),
        (r"\text{even}", "Since f(-x) = f(x), the answer is even and"),
        (r"x \geq 5", "Solving, $x \\geq 5$. Now check the boundary"),
    ],
    ids=["choice", "word", "relation"],
)
def test_unboxed_answer_cut_off_is_truncated(gold: str, response: str) -> None:
    # The truncation rule holds for text golds too: without a \boxed answer, a cut-off response is not judged.
    assert verify_one(gold, response, finish_reason="length").status == "truncated"


@pytest.mark.parametrize(
    ("gold", "response", "status"),
    [("C", "So \\boxed{C}. Double-checking opt", "correct"), ("C", "So \\boxed{D}. Double-checking opt", "wrong")],
    ids=["choice_right", "choice_wrong"],
)
def test_boxed_text_answer_before_cut_off_is_judged(gold: str, response: str, status: str) -> None:
    assert verify_one(gold, response, finish_reason="length").status == status
