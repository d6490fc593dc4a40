"""The verifier on real benchmark data shipped in data/benchmarks: every gold parses and matches itself
in the forms other sources write it, and MATH500's own reference solutions verify against their answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adacot.verify import parse_gold, verify_many

BENCH = Path(__file__).resolve().parents[1] / "data" / "benchmarks"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (BENCH / f"{name}.jsonl").read_text().splitlines() if line.strip()]


def _gold(name: str, row: dict) -> str | None:
    if name == "gsm8k_test":
        return parse_gold(row["answer"], "gsm8k")
    return parse_gold(str(row["answer"]), name)


@pytest.mark.parametrize("name", ["gsm8k_test", "math500", "aime24", "aime25", "amc23"])
def test_every_gold_parses_and_matches_itself(name: str) -> None:
    rows = _rows(name)
    golds = [_gold(name, r) for r in rows]
    assert all(g is not None for g in golds)
    verdicts = verify_many([(g, f"The final answer is \\boxed{{{g}}}.", "stop") for g in golds], workers=2)
    failures = [
        (i, g, v.status, v.reason)
        for i, (g, v) in enumerate(zip(golds, verdicts, strict=True))
        if v.status != "correct"
    ]
    assert failures == [], f"{len(failures)} of {len(rows)} {name} golds do not verify against themselves"


def test_competition_answer_forms() -> None:
    """AIME keys are zero-padded strings, AMC keys floats: both must match a plain integer answer."""
    aime = [r for r in _rows("aime24") if str(r["answer"]).startswith("0")]
    amc = [r for r in _rows("amc23") if float(r["answer"]).is_integer()]
    assert aime and amc
    items = [(str(r["answer"]), f"\\boxed{{{int(r['answer'])}}}", "stop") for r in aime]
    items += [(str(r["answer"]), f"\\boxed{{{int(float(r['answer']))}}}", "stop") for r in amc]
    assert {v.status for v in verify_many(items, workers=2)} == {"correct"}


def test_math500_reference_solutions_verify() -> None:
    rows = _rows("math500")
    verdicts = verify_many([(parse_gold(r["answer"], "math"), r["solution"], "stop") for r in rows], workers=2)
    wrong = [(r["unique_id"], v.status, v.reason) for r, v in zip(rows, verdicts, strict=True) if v.status != "correct"]
    assert wrong == [], f"{len(wrong)} MATH500 reference solutions do not verify: {wrong[:5]}"


def test_gsm8k_reference_solutions_verify() -> None:
    """GSM8K solutions end in "#### N" but say "answer" in passing ("... to the answer from the previous step:
    4 + 2"); the closing #### line, not math-verify's loose "answer" pattern, is what they commit to."""
    rows = _rows("gsm8k_test")
    verdicts = verify_many([(parse_gold(r["answer"], "gsm8k"), r["answer"], "stop") for r in rows], workers=2)
    wrong = [(i, v.status, v.reason) for i, v in enumerate(verdicts) if v.status != "correct"]
    assert wrong == [], f"{len(wrong)} GSM8K reference solutions do not verify: {wrong[:5]}"


@pytest.mark.parametrize(("name", "source", "shift"), [("math500", "math", 7), ("gsm8k_test", "gsm8k", 3)])
def test_no_false_positive_against_another_question_gold(name: str, source: str, shift: int) -> None:
    """Each reference solution judged against another question's gold: never correct unless the golds match."""
    rows = _rows(name)
    golds = [parse_gold(r["answer"], source) for r in rows]
    texts = [r["solution"] if name == "math500" else r["answer"] for r in rows]
    other = [golds[(i + shift) % len(rows)] for i in range(len(rows))]
    verdicts = verify_many([(o, t, "stop") for o, t in zip(other, texts, strict=True)], workers=2)
    false_positive = [
        (i, golds[i], o, v.reason)
        for i, (o, v) in enumerate(zip(other, verdicts, strict=True))
        if v.status == "correct" and "".join(str(o).split()) != "".join(str(golds[i]).split())
    ]
    assert false_positive == []
