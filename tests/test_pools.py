"""Tests for adacot.pools: seeded generated questions with correct gold, parsing with rejects, decontamination."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import ROOT

from adacot.config import SourceParams
from adacot.errors import StageFailure
from adacot.pools import (
    TIERS,
    LoadedSource,
    build_pool_and_benchmarks,
    decontaminate,
    generate_synthetic,
    normalize_text,
    reject_ungradable_golds,
)
from adacot.schemas import BENCHMARK, QUESTIONS, REJECTS, conform, empty
from adacot.sources import load_source, rows_to_questions
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


def test_generate_synthetic_chosen_tiers() -> None:
    frame = generate_synthetic(4, seed=0, split="pool", name="hard_only", tiers=(4, 5))
    assert sorted(set(frame["generator_tier"])) == [4, 5] and frame.height == 8
    assert all(qid.startswith("hard_only-pool-t") for qid in frame["question_id"]) and set(frame["source"]) == {
        "hard_only"
    }
    # All five tiers is the default, so the default pool is what it was before tiers could be chosen.
    assert generate_synthetic(4, seed=0, split="pool").equals(generate_synthetic(4, 0, "pool", tiers=TIERS))
    with pytest.raises(ValueError, match="unknown: \\[7\\]"):
        generate_synthetic(1, seed=0, split="pool", tiers=(1, 7))


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
    ("missing_question", {"answer": "#### 5"}, "no question text in column 'question'"),
    ("blank_question", {"question": "   ", "answer": "#### 5"}, "no question text in column 'question'"),
    ("non_string_question", {"question": 7, "answer": "#### 5"}, "no question text in column 'question'"),
    ("missing_answer", {"question": "How many?"}, "no gold answer in column 'answer'"),
    ("blank_answer", {"question": "How many?", "answer": "  "}, "no gold answer in column 'answer'"),
    ("no_hashes", {"question": "How many?", "answer": "It is 5."}, "gold does not parse as gsm8k"),
    ("empty_after_hashes", {"question": "How many?", "answer": "####  "}, "gold does not parse as gsm8k"),
    ("list_answer", {"question": "How many?", "answer": ["#### 5"]}, "gold does not parse as gsm8k"),
]

GSM8K = SourceParams(name="gsm8k", path="x.jsonl", split="train", gold="gsm8k")


def test_rows_to_questions_keeps_every_row() -> None:
    raw = [row for _, row, _ in PARSE_CASES]
    questions, rejects = rows_to_questions(raw, GSM8K, 0, "pool")
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


def test_rows_to_questions_keeps_raw_text_of_rejects() -> None:
    _, rejects = rows_to_questions([{"question": "Q?", "answer": "no marker"}], GSM8K, 0, "pool")
    assert rejects.row(0, named=True) == {
        "question_id": "gsm8k-train-00000",
        "source": "gsm8k",
        "question": "Q?",
        "gold_raw": "no marker",
        "reason": "gold does not parse as gsm8k",
    }


def _questions(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            [{"question_id": q, "source": "gsm8k", "question": t, "gold": "1"} for q, t in rows],
            schema=QUESTIONS,
        ),
        QUESTIONS,
        "questions",
    )


def _bench(rows: list[tuple[str, str]], name: str = "bench") -> pl.DataFrame:
    return _questions(rows).with_columns(benchmark=pl.lit(name))


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
    bench = _bench([("b0", "What is 2+3"), ("b1", "Something else entirely?")])
    kept, rejects, counts = decontaminate(pool, bench, 8)
    assert kept["question_id"].to_list() == ["p0", "p3"]
    assert rejects.schema == pl.Schema(REJECTS)
    assert dict(zip(rejects["question_id"], rejects["reason"], strict=True)) == {
        "p1": "duplicate of p0",
        "p2": "contaminated: same text as bench question b0",
        "p4": "duplicate of p3",
    }
    assert counts == {"gsm8k": {"bench": 1}}
    assert kept.height + rejects.height == pool.height
    assert rejects.filter(pl.col("question_id") == "p2")["gold_raw"].item() == "1"


LEAK = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."


@pytest.mark.parametrize(
    ("pool_text", "leaks"),
    [
        # a paraphrase-free leak: the benchmark question with a new first sentence and another question
        ("Read carefully. " + LEAK[:-1] + ". How many did she sell in all?", True),
        # the same words with different spelling, case and punctuation: normalised before matching
        ("NATALIA sold clips, to 48 of her friends in april; and then she sold half as many!", True),
        # a near miss: every run of 8 words is broken by one changed word (7-word runs are shared)
        ("Natalia sold clips to 48 of her cousins in April, and then she sold", False),
        ("Natalia sold clips to 48 of her cousins in April, and then she sold twice as many clips.", False),
        # too short for an 8-gram, not equal: kept
        ("Natalia sold clips.", False),
    ],
    ids=["prefix_suffix", "normalised", "broken_runs", "one_word_changed", "short"],
)
def test_decontaminate_ngram(pool_text: str, leaks: bool) -> None:
    bench = _bench([("b0", LEAK)], "gsm8k_test")
    kept, rejects, counts = decontaminate(_questions([("p0", pool_text)]), bench, 8)
    assert (rejects.height == 1) is leaks
    if leaks:
        reason = rejects["reason"].item()
        assert reason.startswith("contaminated: shares ") and "8-grams with gsm8k_test question b0, e.g. '" in reason
        gram = reason.split("'")[1].split()
        assert len(gram) == 8 and " ".join(gram) in normalize_text(LEAK)
        assert counts == {"gsm8k": {"gsm8k_test": 1}}
    else:
        assert kept.height == 1 and counts == {}


def test_decontaminate_ngram_length_is_a_param() -> None:
    pool = _questions([("p0", "then she sold half as many cards to her sister")])
    bench = _bench([("b0", LEAK)])
    assert decontaminate(pool, bench, 8, min_overlap=0)[1].height == 0  # shares 6 words in a row, not 8
    assert decontaminate(pool, bench, 6, min_overlap=0)[1].height == 1


def test_a_shared_boilerplate_phrase_is_not_a_leak_unless_any_overlap_is_asked_for() -> None:
    tail = " Express your answer as a common fraction in lowest terms."
    bench = _bench([("b0", "What is the probability that both are red?" + tail)])
    pool = _questions([("p0", "Two coins are tossed. What is the chance of two heads?" + tail)])
    kept, rejects, _ = decontaminate(pool, bench, 8)
    assert kept.height == 1  # 3 shared 8-grams of the benchmark question's 11: below the default share 0.5
    kept, rejects, _ = decontaminate(pool, bench, 8, min_overlap=0)
    assert kept.height == 0 and "shares 3 of 11 8-grams" in rejects["reason"].item()
    # The question copied inside other words shares every run: a leak at the default share.
    copy = _questions([("p1", "Read this first. What is the probability that both are red?" + tail + " Show work.")])
    _, rejects, _ = decontaminate(copy, bench, 8)
    assert "shares 11 of 11 8-grams with bench question b0" in rejects["reason"].item()


def test_decontaminate_generated_sources_match_exact_text_only() -> None:
    # Generated questions share template word runs by design; only an exact copy is a leak there.
    template = "A shop has 90 apples. It sells 20 of them, then Ava shares the rest equally among 2 friends."
    pool = _questions([("p0", template.replace("90", "80")), ("p1", template)]).with_columns(source=pl.lit("gen"))
    bench = _bench([("b0", template)], "heldout")
    kept, rejects, _ = decontaminate(pool, bench, 8, exact_only={"gen", "heldout"})
    assert kept["question_id"].to_list() == ["p0"]
    assert rejects["question_id"].to_list() == ["p1"]
    kept, _, _ = decontaminate(pool, bench, 8)
    assert kept.height == 0


def test_decontaminate_nothing_to_remove() -> None:
    pool = _questions([("p0", "One?"), ("p1", "Two?")])
    kept, rejects, counts = decontaminate(pool, _bench([("b0", "Three?")]), 8)
    assert kept.equals(pool)
    assert rejects.height == 0 and counts == {}


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_build_pool_and_benchmarks_on_real_lines(tmp_path: Path) -> None:
    train = read_jsonl(TRAIN_PATH)[:12]
    test = read_jsonl(TEST_PATH)[:6]
    # One contaminated training row (a benchmark question), one malformed line, one without ####.
    train_path = _write_jsonl(
        tmp_path / "train.jsonl",
        [
            *train,
            {"question": test[2]["question"], "answer": test[2]["answer"]},
            "{broken",
            {"question": "What is six times seven?", "answer": "42"},
            {"question": "What is the mystery number?", "answer": "work\n#### ???"},
        ],
    )
    test_path = _write_jsonl(tmp_path / "test.jsonl", test)
    pool_specs = [
        SourceParams(name="gsm8k", path=str(train_path), split="train", gold="gsm8k"),
        SourceParams(name="synthetic", kind="synthetic", split="pool", per_tier=3),
    ]
    bench_specs = [
        SourceParams(name="gsm8k_test", path=str(test_path), split="test", gold="gsm8k"),
        SourceParams(name="synthetic_heldout", kind="synthetic", split="heldout", per_tier=2),
    ]
    pool, bench, rejects, metrics = build_pool_and_benchmarks(
        [load_source(s, 0, "pool") for s in pool_specs], [load_source(s, 0, "test") for s in bench_specs], ngram=8
    )
    conform(pool, QUESTIONS, "pool")
    conform(bench, BENCHMARK, "benchmarks")
    conform(rejects, REJECTS, "rejects")

    assert metrics["rows_in"] == {"gsm8k": 16, "synthetic": 15, "gsm8k_test": 6, "synthetic_heldout": 10}
    assert metrics["benchmark_questions"] == {"gsm8k_test": 6, "synthetic_heldout": 2 * len(TIERS)}
    assert metrics["pool_questions"] == pool.height
    assert sum(metrics["pool_by_source"].values()) == pool.height
    assert metrics["rejects"] == rejects.height == sum(metrics["rejects_by_reason"].values())
    assert metrics["rejects_by_reason"]["not JSON"] == 1
    assert metrics["rejects_by_reason"]["contaminated"] >= 1
    assert metrics["rejects_by_reason"]["gold not gradable"] == 1
    assert metrics["contamination"]["gsm8k"]["gsm8k_test"] >= 1
    assert metrics["contamination"]["synthetic"] == {"gsm8k_test": 0, "synthetic_heldout": 0}
    ungradable = rejects.filter(pl.col("question_id") == "gsm8k-train-00014")
    assert ungradable["reason"].item().startswith("gold not gradable: unparseable_gold: math-verify found no")
    assert ungradable["gold_raw"].item() == "???"

    contaminated = rejects.filter(pl.col("question_id") == "gsm8k-train-00012")
    assert contaminated["reason"].item() == "contaminated: same text as gsm8k_test question gsm8k_test-test-00002"
    assert rejects.filter(pl.col("question_id") == "gsm8k-train-00013")["reason"].item() == (
        "gold does not parse as gsm8k"
    )
    assert rejects.filter(pl.col("question_id") == "gsm8k-line-00014")["reason"].item().startswith("not JSON: line 14")

    # Conservation: every training row and generated question ends up in the pool or the rejects.
    not_test = rejects.filter(pl.col("source") != "gsm8k_test")
    assert len(train) + 4 + 3 * len(TIERS) == pool.height + not_test.height
    assert set(pool["question_id"]).isdisjoint(set(rejects["question_id"]))
    # The pool never shares a question with a benchmark, nor holds duplicates.
    pool_keys = [normalize_text(q) for q in pool["question"]]
    assert len(set(pool_keys)) == len(pool_keys)
    assert set(pool_keys).isdisjoint({normalize_text(q) for q in bench["question"]})
    # The real GSM8K gold parses to the number after ####.
    natalia = pool.filter(pl.col("question").str.starts_with("Natalia"))
    assert natalia["gold"].item() == "72"


def _gsm8k_sources(limit: int | None, test_limit: int | None) -> tuple[list[SourceParams], list[SourceParams]]:
    return (
        [SourceParams(name="gsm8k", path=str(TRAIN_PATH), split="train", gold="gsm8k", limit=limit)],
        [SourceParams(name="gsm8k_test", path=str(TEST_PATH), split="test", gold="gsm8k", limit=test_limit)],
    )


def _build(pool_specs: list[SourceParams], bench_specs: list[SourceParams], seed: int) -> tuple[Any, ...]:
    return build_pool_and_benchmarks(
        [load_source(s, seed, "pool") for s in pool_specs],
        [load_source(s, seed, "test") for s in bench_specs],
        ngram=8,
        verify_workers=1,
    )


def test_build_pool_limits_are_seeded() -> None:
    pool_specs, bench_specs = _gsm8k_sources(5, 4)
    pool_a, bench_a, _, metrics = _build(pool_specs, bench_specs, 1)
    pool_b, bench_b, _, _ = _build(pool_specs, bench_specs, 1)
    assert pool_a.equals(pool_b) and bench_a.equals(bench_b)
    assert pool_a.height == 5
    assert metrics["benchmark_questions"] == {"gsm8k_test": 4}
    pool_c, _, _, _ = _build(pool_specs, bench_specs, 2)
    assert set(pool_a["question_id"]) != set(pool_c["question_id"])
    # A source's own seed wins over the top-level one.
    own = [pool_specs[0].model_copy(update={"seed": 1})]
    assert _build(own, bench_specs, 2)[0].equals(pool_a)


def test_reject_ungradable_golds_once_per_question() -> None:
    frame = conform(
        pl.DataFrame(
            {
                "question_id": ["q1", "q2", "q3", "q4"],
                "source": ["user"] * 4,
                "question": ["a", "b", "c", "d"],
                "gold": ["\\frac{1}{2}", "@@", "025", "\\text{(B)}"],
                "generator_tier": [None] * 4,
                "solution": [None] * 4,
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


def test_an_empty_pool_fails() -> None:
    pool_specs, bench_specs = _gsm8k_sources(0, 3)
    with pytest.raises(StageFailure, match="the pool is empty"):
        _build(pool_specs, bench_specs, 0)


def test_a_benchmark_without_gradable_questions_fails() -> None:
    pool_specs, bench_specs = _gsm8k_sources(3, 3)
    empty_bench = LoadedSource("broken", empty(QUESTIONS), empty(REJECTS), 5, False)
    with pytest.raises(StageFailure, match="benchmark\\(s\\) broken have no gradable question"):
        build_pool_and_benchmarks(
            [load_source(s, 0, "pool") for s in pool_specs],
            [load_source(bench_specs[0], 0, "test"), empty_bench],
            ngram=8,
            verify_workers=1,
        )
