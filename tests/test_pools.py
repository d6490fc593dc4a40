"""Tests for adacot.pools: seeded generated questions with correct gold, parsing with rejects, decontamination."""

from __future__ import annotations

import re
from typing import Any

import polars as pl
import pytest
from conftest import ROOT

from adacot.errors import StageFailure
from adacot.pools import (
    TIERS,
    build_pool_and_benchmarks,
    decontaminate,
    generate_synthetic,
    normalize_text,
    parse_rows,
    reject_ungradable_golds,
)
from adacot.schemas import BENCHMARK, QUESTIONS, REJECTS, conform
from adacot.stageio import read_jsonl

TRAIN_PATH = ROOT / "data" / "pools" / "gsm8k_train.jsonl"
TEST_PATH = ROOT / "data" / "benchmarks" / "gsm8k_test.jsonl"


def test_generate_synthetic_deterministic() -> None:
    first = generate_synthetic(12, seed=3, split="pool")
    again = generate_synthetic(12, seed=3, split="pool")
    assert first.equals(again)
    assert not first.equals(generate_synthetic(12, seed=4, split="pool"))
    other_split = generate_synthetic(12, seed=3, split="heldout")
    assert set(first["question"]) != set(other_split["question"])
    assert all(qid.startswith("synthetic-heldout-") for qid in other_split["question_id"])


def test_generate_synthetic_shape_and_distinct() -> None:
    frame = generate_synthetic(20, seed=0, split="pool")
    assert frame.schema == pl.Schema(QUESTIONS)
    assert frame.height == 20 * len(TIERS)
    assert dict(frame.group_by("generator_tier").len().sort("generator_tier").iter_rows()) == {t: 20 for t in TIERS}
    assert frame["question_id"].n_unique() == frame.height
    assert frame["question"].n_unique() == frame.height
    assert set(frame["source"]) == {"synthetic"}
    assert frame["gold"].null_count() == 0


def test_generate_synthetic_zero_and_too_many() -> None:
    empty = generate_synthetic(0, seed=0, split="pool")
    assert empty.height == 0
    assert empty.schema == pl.Schema(QUESTIONS)
    # Tier 1 ("What is a + b?" with 1-digit a, b) has only 81 distinct questions.
    with pytest.raises(ValueError, match="tier 1 cannot produce 100 distinct questions"):
        generate_synthetic(100, seed=0, split="pool")


def _recompute(tier: int, question: str) -> int:
    """The answer of a generated question, worked out again from its text."""
    if tier in (1, 3):
        a, b = map(int, re.fullmatch(r"What is (\d+) \+ (\d+)\?", question).groups())  # type: ignore[union-attr]
        if tier == 1:
            assert 1 <= a <= 9 and 1 <= b <= 9
        else:
            assert 10 <= a <= 99 and 10 <= b <= 99 and a % 10 + b % 10 >= 10  # a carry, as promised
        return a + b
    if tier == 2:
        more = re.fullmatch(r"\w+ has (\d+) (\w+) and gets (\d+) more\. How many \2 does \w+ have now\?", question)
        if more:
            return int(more[1]) + int(more[3])
        away = re.fullmatch(r"\w+ has (\d+) (\w+) and gives away (\d+)\. How many \2 does \w+ have left\?", question)
        assert away, question
        return int(away[1]) - int(away[3])
    if tier == 4:
        m = re.fullmatch(
            r"\w+ has (\d+) boxes with (\d+) (\w+) in each box and finds (\d+) more \3\. "
            r"How many \3 does \w+ have in total\?",
            question,
        )
        assert m, question
        return int(m[1]) * int(m[2]) + int(m[4])
    m = re.fullmatch(
        r"A shop has (\d+) (\w+)\. It sells (\d+) of them, then \w+ shares the rest equally among "
        r"(\d+) friends\. How many \2 does each friend get\?",
        question,
    )
    assert m, question
    total, sold, friends = int(m[1]), int(m[3]), int(m[4])
    assert (total - sold) % friends == 0, "the rest must split evenly"
    return (total - sold) // friends


@pytest.mark.parametrize("split", ["pool", "heldout"])
def test_generate_synthetic_gold_is_correct(split: str) -> None:
    frame = generate_synthetic(40, seed=11, split=split)
    for tier, question, gold in frame.select("generator_tier", "question", "gold").iter_rows():
        answer = _recompute(tier, question)
        assert answer > 0
        assert gold == str(answer), question


def test_normalize_text() -> None:
    assert normalize_text("  What is 2+2?\n") == normalize_text("what is 2 + 2") == "what is 2 2"


# (id, raw row, expected reason or None for a kept row)
PARSE_CASES: list[tuple[str, Any, str | None]] = [
    ("good", {"question": "  How many? ", "answer": "2+3=5\n#### 5"}, None),
    ("thousands", {"question": "How much?", "answer": "#### 1,234"}, None),
    ("missing_question", {"answer": "#### 5"}, "no question text"),
    ("blank_question", {"question": "   ", "answer": "#### 5"}, "no question text"),
    ("non_string_question", {"question": 7, "answer": "#### 5"}, "no question text"),
    ("missing_answer", {"question": "How many?"}, "no gold answer"),
    ("blank_answer", {"question": "How many?", "answer": "  "}, "no gold answer"),
    ("no_hashes", {"question": "How many?", "answer": "It is 5."}, "gold answer does not parse as gsm8k"),
    ("empty_after_hashes", {"question": "How many?", "answer": "####  "}, "gold answer does not parse as gsm8k"),
    ("malformed_line", {"_malformed": "{not json"}, "no question text"),
    ("not_a_dict", ["question", "answer"], "no question text"),
]


def test_parse_rows_keeps_every_row() -> None:
    raw = [row for _, row, _ in PARSE_CASES]
    questions, rejects = parse_rows(raw, "gsm8k", "train")
    assert questions.schema == pl.Schema(QUESTIONS)
    assert rejects.schema == pl.Schema(REJECTS)
    # Nothing is dropped silently: every input row is a question or a reject, and ids cover every index.
    assert questions.height + rejects.height == len(raw)
    ids = sorted(questions["question_id"].to_list() + rejects["question_id"].to_list())
    assert ids == [f"gsm8k-train-{i:05d}" for i in range(len(raw))]
    reasons = dict(zip(rejects["question_id"], rejects["reason"], strict=True))
    kept = dict(zip(questions["question_id"], questions["gold"], strict=True))
    for index, (case, _, expected) in enumerate(PARSE_CASES):
        qid = f"gsm8k-train-{index:05d}"
        if expected is None:
            assert qid in kept, case
        else:
            assert reasons.get(qid) == expected, case
    assert kept["gsm8k-train-00000"] == "5"
    assert kept["gsm8k-train-00001"] == "1234"
    assert questions.filter(pl.col("question_id") == "gsm8k-train-00000")["question"].item() == "How many?"


def test_parse_rows_keeps_raw_text_of_rejects() -> None:
    _, rejects = parse_rows([{"question": "Q?", "answer": "no marker"}], "gsm8k", "test")
    assert rejects.row(0, named=True) == {
        "question_id": "gsm8k-test-00000",
        "source": "gsm8k",
        "question": "Q?",
        "gold_raw": "no marker",
        "reason": "gold answer does not parse as gsm8k",
    }


def _questions(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            [
                {"question_id": q, "source": "gsm8k", "question": t, "gold": "1", "generator_tier": None}
                for q, t in rows
            ],
            schema=QUESTIONS,
        ),
        QUESTIONS,
        "questions",
    )


def test_decontaminate_removes_overlap_and_duplicates() -> None:
    pool = _questions(
        [
            ("p0", "How many apples are left?"),
            ("p1", "how many APPLES are left"),  # duplicate of p0 after normalization
            ("p2", "What is 2 + 3?"),  # in the benchmark, modulo spacing and punctuation
            ("p3", "A unique question."),
            ("p4", "A unique question"),  # duplicate of p3
        ]
    )
    bench = _questions([("b0", "What is 2+3"), ("b1", "Something else entirely?")])
    kept, rejects = decontaminate(pool, bench)
    assert kept["question_id"].to_list() == ["p0", "p3"]
    assert rejects.schema == pl.Schema(REJECTS)
    assert dict(zip(rejects["question_id"], rejects["reason"], strict=True)) == {
        "p1": "duplicate of p0",
        "p2": "also in benchmark as b0",
        "p4": "duplicate of p3",
    }
    assert kept.height + rejects.height == pool.height
    assert rejects.filter(pl.col("question_id") == "p2")["gold_raw"].item() == "1"


def test_decontaminate_nothing_to_remove() -> None:
    pool = _questions([("p0", "One?"), ("p1", "Two?")])
    kept, rejects = decontaminate(pool, _questions([("b0", "Three?")]))
    assert kept.equals(pool)
    assert rejects.height == 0


def test_build_pool_and_benchmarks_on_real_lines() -> None:
    train = read_jsonl(TRAIN_PATH)[:12]
    test = read_jsonl(TEST_PATH)[:6]
    # One contaminated training row (a benchmark question), one malformed line, one without ####.
    train = [
        *train,
        {"question": test[2]["question"], "answer": test[2]["answer"]},
        {"_malformed": "{broken"},
        {"question": "What is six times seven?", "answer": "42"},
        {"question": "What is the mystery number?", "answer": "work\n#### ???"},
    ]
    pool, bench, rejects, metrics = build_pool_and_benchmarks(
        train, test, gsm8k_limit=None, gsm8k_test_limit=None, synthetic_per_tier=3, heldout_per_tier=2, seed=0
    )
    conform(pool, QUESTIONS, "pool")
    conform(bench, BENCHMARK, "benchmarks")
    conform(rejects, REJECTS, "rejects")

    assert metrics["rows_in"] == {"gsm8k_train": 16, "gsm8k_test": 6}
    assert metrics["benchmark_questions"] == {"gsm8k_test": 6, "synthetic_heldout": 2 * len(TIERS)}
    assert metrics["pool_questions"] == pool.height
    assert sum(metrics["pool_by_source"].values()) == pool.height
    assert metrics["rejects"] == rejects.height == sum(metrics["rejects_by_reason"].values())
    assert metrics["rejects_by_reason"]["no question text"] == 1
    assert metrics["rejects_by_reason"]["also in benchmark"] >= 1
    assert metrics["rejects_by_reason"]["gold not gradable"] == 1
    ungradable = rejects.filter(pl.col("question_id") == "gsm8k-train-00015")
    assert ungradable["reason"].item().startswith("gold not gradable: unparseable_gold: math-verify found no")
    assert ungradable["gold_raw"].item() == "???"

    contaminated = rejects.filter(pl.col("question_id") == "gsm8k-train-00012")
    assert contaminated["reason"].item() == "also in benchmark as gsm8k-test-00002"
    assert (
        rejects.filter(pl.col("question_id") == "gsm8k-train-00014")["reason"]
        .item()
        .startswith("gold answer does not parse")
    )

    # Conservation: every training row and generated question ends up in the pool or the rejects.
    not_test = rejects.filter(~pl.col("question_id").str.starts_with("gsm8k-test-"))
    assert len(train) + 3 * len(TIERS) == pool.height + not_test.height
    assert set(pool["question_id"]).isdisjoint(set(rejects["question_id"]))
    # The pool never shares a question with a benchmark, nor holds duplicates.
    pool_keys = [normalize_text(q) for q in pool["question"]]
    assert len(set(pool_keys)) == len(pool_keys)
    assert set(pool_keys).isdisjoint({normalize_text(q) for q in bench["question"]})
    # The real GSM8K gold parses to the number after ####.
    natalia = pool.filter(pl.col("question").str.starts_with("Natalia"))
    assert natalia["gold"].item() == "72"


def test_build_pool_limits_are_seeded() -> None:
    train = read_jsonl(TRAIN_PATH)[:30]
    test = read_jsonl(TEST_PATH)[:10]
    kwargs = dict(gsm8k_limit=5, gsm8k_test_limit=4, synthetic_per_tier=0, heldout_per_tier=0)
    pool_a, bench_a, _, metrics = build_pool_and_benchmarks(train, test, seed=1, **kwargs)
    pool_b, bench_b, _, _ = build_pool_and_benchmarks(train, test, seed=1, **kwargs)
    assert pool_a.equals(pool_b) and bench_a.equals(bench_b)
    assert pool_a.height == 5
    assert metrics["benchmark_questions"] == {"gsm8k_test": 4}
    pool_c, _, _, _ = build_pool_and_benchmarks(train, test, seed=2, **kwargs)
    assert set(pool_a["question_id"]) != set(pool_c["question_id"])


def test_reject_ungradable_golds_once_per_question() -> None:
    frame = conform(
        pl.DataFrame(
            {
                "question_id": ["q1", "q2", "q3", "q4"],
                "source": ["user"] * 4,
                "question": ["a", "b", "c", "d"],
                "gold": ["\\frac{1}{2}", "@@", "025", "\\text{(B)}"],
                "generator_tier": [None] * 4,
            },
            schema=QUESTIONS,
        ),
        QUESTIONS,
        "q",
    )
    kept, rejects = reject_ungradable_golds(frame, timeout_s=5, workers=1)
    assert kept["question_id"].to_list() == ["q1", "q3", "q4"]
    assert rejects["question_id"].to_list() == ["q2"]
    assert "unparseable_gold" in rejects["reason"].item() and "'@@'" in rejects["reason"].item()
    empty_kept, empty_rejects = reject_ungradable_golds(frame.head(0), timeout_s=5, workers=1)
    assert empty_kept.height == 0 and empty_rejects.height == 0


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"gsm8k_limit": 0, "synthetic_per_tier": 0}, "the pool is empty"),
        ({"gsm8k_test_limit": 0, "heldout_per_tier": 0}, "the benchmark set is empty"),
    ],
    ids=["pool", "benchmarks"],
)
def test_an_empty_pool_or_benchmark_set_fails(limits: dict[str, int], message: str) -> None:
    kwargs = {"gsm8k_limit": 3, "gsm8k_test_limit": 3, "synthetic_per_tier": 1, "heldout_per_tier": 1, **limits}
    with pytest.raises(StageFailure, match=message):
        build_pool_and_benchmarks(
            read_jsonl(TRAIN_PATH)[:10], read_jsonl(TEST_PATH)[:10], seed=0, verify_workers=1, **kwargs
        )
