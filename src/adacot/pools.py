"""Question pools and benchmark sets: loading shipped data, generating graded arithmetic, decontaminating.

Pure functions: raw rows in, frames out. ``generate_synthetic`` makes seeded arithmetic and word problems
at five generator tiers (1-digit sums up to multi-step word problems) so that even the 135M bundled
student has questions at every difficulty level. ``build_pool`` parses gold answers, keeps malformed rows
as rejects with a reason, removes duplicates and any question that also appears in a benchmark. An
empty pool or benchmark set fails the stage (``StageFailure``): every later stage would work on nothing.
This module does not grade questions (``grading``) and does not read files (stage scripts do).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import Any

import polars as pl

from adacot.errors import StageFailure
from adacot.schemas import BENCHMARK, QUESTIONS, REJECTS, conform, empty
from adacot.verify import check_golds, parse_gold

TIERS = (1, 2, 3, 4, 5)
_NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena")
_ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "shells", "cards", "coins")


def _tier1(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    return f"What is {a} + {b}?", a + b


def _tier2(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", a + b
    a = a + b
    return f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?", a - b


def _tier3(rng: random.Random) -> tuple[str, int]:
    while True:
        a, b = rng.randint(11, 89), rng.randint(11, 89)
        if a % 10 + b % 10 >= 10:  # force a carry: the 135M student almost never gets these right
            return f"What is {a} + {b}?", a + b


def _tier4(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    boxes, per, extra = rng.randint(3, 9), rng.randint(4, 12), rng.randint(2, 19)
    return (
        f"{name} has {boxes} boxes with {per} {item} in each box and finds {extra} more {item}. "
        f"How many {item} does {name} have in total?",
        boxes * per + extra,
    )


def _tier5(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    boxes, per = rng.randint(12, 48), rng.randint(6, 24)
    sold = rng.randint(10, boxes * per // 2)
    friends = rng.randint(2, 6)
    left = boxes * per - sold
    left -= left % friends
    total = left + sold  # rounded so that the rest splits evenly among the friends
    return (
        f"A shop has {total} {item}. It sells {sold} of them, then {name} shares the rest equally among "
        f"{friends} friends. How many {item} does each friend get?",
        left // friends,
    )


_GENERATORS = {1: _tier1, 2: _tier2, 3: _tier3, 4: _tier4, 5: _tier5}


def generate_synthetic(per_tier: int, seed: int, split: str) -> pl.DataFrame:
    """``per_tier`` distinct generated questions at each tier, deterministic in (seed, split)."""
    rng = random.Random(f"{seed}-{split}")
    rows: list[dict[str, Any]] = []
    for tier in TIERS:
        seen: set[str] = set()
        tries = 0
        while len([r for r in rows if r["generator_tier"] == tier]) < per_tier:
            tries += 1
            if tries > per_tier * 200:
                raise ValueError(f"tier {tier} cannot produce {per_tier} distinct questions; lower the count")
            question, answer = _GENERATORS[tier](rng)
            if question in seen:
                continue
            seen.add(question)
            rows.append(
                {
                    "question_id": f"synthetic-{split}-t{tier}-{len(seen) - 1:05d}",
                    "source": "synthetic",
                    "question": question,
                    "gold": str(answer),
                    "generator_tier": tier,
                }
            )
    return conform(pl.DataFrame(rows, schema=QUESTIONS) if rows else empty(QUESTIONS), QUESTIONS, "synthetic")


def parse_rows(raw_rows: Iterable[dict[str, Any]], source: str, split: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Turn raw dataset rows into (questions, rejects): a row with no question or no parseable gold is a reject."""
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for index, row in enumerate(raw_rows):
        qid = f"{source}-{split}-{index:05d}"
        question = row.get("question") if isinstance(row, dict) else None
        gold_raw = row.get("answer") if isinstance(row, dict) else None
        base = {"question_id": qid, "source": source, "question": str(question or ""), "gold_raw": str(gold_raw or "")}
        if not isinstance(question, str) or not question.strip():
            bad.append({**base, "reason": "no question text"})
            continue
        if gold_raw is None or not str(gold_raw).strip():
            bad.append({**base, "reason": "no gold answer"})
            continue
        gold = parse_gold(str(gold_raw), source)
        if gold is None:
            bad.append({**base, "reason": f"gold answer does not parse as {source}"})
            continue
        good.append(
            {"question_id": qid, "source": source, "question": question.strip(), "gold": gold, "generator_tier": None}
        )
    questions = pl.DataFrame(good, schema=QUESTIONS) if good else empty(QUESTIONS)
    rejects = pl.DataFrame(bad, schema=REJECTS) if bad else empty(REJECTS)
    return questions, rejects


def normalize_text(text: str) -> str:
    """Lower-case, punctuation-free, single-spaced text: the key for dedup and decontamination."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def seeded_subset(frame: pl.DataFrame, limit: int | None, seed: int) -> pl.DataFrame:
    """At most ``limit`` rows drawn without replacement with ``seed`` (all rows when ``limit`` is None)."""
    if limit is None or limit >= frame.height:
        return frame
    return frame.sample(n=limit, seed=seed, shuffle=False).sort("question_id")


def decontaminate(pool: pl.DataFrame, benchmarks: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Drop pool questions duplicated within the pool or present in a benchmark; return (kept, rejects)."""
    bench_keys = {
        normalize_text(q): qid for q, qid in zip(benchmarks["question"], benchmarks["question_id"], strict=True)
    }
    first_seen: dict[str, str] = {}
    keep: list[bool] = []
    reasons: list[str] = []
    for qid, question in zip(pool["question_id"], pool["question"], strict=True):
        key = normalize_text(question)
        if key in bench_keys:
            keep.append(False)
            reasons.append(f"also in benchmark as {bench_keys[key]}")
        elif key in first_seen:
            keep.append(False)
            reasons.append(f"duplicate of {first_seen[key]}")
        else:
            first_seen[key] = qid
            keep.append(True)
            reasons.append("")
    flags = pl.Series("keep", keep, dtype=pl.Boolean)
    dropped = pool.filter(~flags).with_columns(
        pl.Series("reason", [r for r, k in zip(reasons, keep, strict=True) if not k], dtype=pl.String)
    )
    rejects = dropped.select("question_id", "source", "question", pl.col("gold").alias("gold_raw"), "reason")
    return pool.filter(flags), conform(rejects, REJECTS, "rejects")


def reject_ungradable_golds(
    frame: pl.DataFrame, *, timeout_s: float, workers: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` (pool or benchmark rows) into (gradable, rejects) by ``check_golds``.

    A gold math-verify cannot parse would make every attempt at its question ``unparseable_gold``: the
    question could never be graded, so it is rejected here, once, with the verifier's reason.
    """
    if frame.height == 0:
        return frame, empty(REJECTS)
    problems = check_golds(frame["gold"].to_list(), timeout_s=timeout_s, workers=workers)
    flags = pl.Series([p is None for p in problems], dtype=pl.Boolean)
    reasons = [f"gold not gradable: {p.status}: {p.reason}" for p in problems if p is not None]
    dropped = frame.filter(~flags)
    rejects = dropped.select(
        "question_id",
        "source",
        "question",
        pl.col("gold").alias("gold_raw"),
        pl.Series("reason", reasons, dtype=pl.String),
    )
    return frame.filter(flags), conform(rejects, REJECTS, "rejects")


def build_pool_and_benchmarks(
    gsm8k_train: list[dict[str, Any]],
    gsm8k_test: list[dict[str, Any]],
    *,
    gsm8k_limit: int | None,
    gsm8k_test_limit: int | None,
    synthetic_per_tier: int,
    heldout_per_tier: int,
    seed: int,
    verify_timeout_s: float = 5.0,
    verify_workers: int = 2,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """(pool questions, benchmark questions, rejects, metrics) from raw GSM8K rows and the generator.

    Every kept gold has been parsed by the verifier once here (``reject_ungradable_golds``).
    """
    train, train_rejects = parse_rows(gsm8k_train, "gsm8k", "train")
    test, test_rejects = parse_rows(gsm8k_test, "gsm8k", "test")
    bench = pl.concat(
        [
            seeded_subset(test, gsm8k_test_limit, seed).with_columns(benchmark=pl.lit("gsm8k_test")),
            generate_synthetic(heldout_per_tier, seed, "heldout").with_columns(benchmark=pl.lit("synthetic_heldout")),
        ],
        how="diagonal_relaxed",
    )
    bench, bench_gold_rejects = reject_ungradable_golds(
        conform(bench, BENCHMARK, "benchmarks"), timeout_s=verify_timeout_s, workers=verify_workers
    )
    candidates = pl.concat(
        [seeded_subset(train, gsm8k_limit, seed), generate_synthetic(synthetic_per_tier, seed, "pool")]
    )
    pool, contamination = decontaminate(candidates, bench)
    pool, pool_gold_rejects = reject_ungradable_golds(pool, timeout_s=verify_timeout_s, workers=verify_workers)
    rejects = pl.concat([train_rejects, test_rejects, bench_gold_rejects, contamination, pool_gold_rejects])
    reject_reasons = _reason_counts(rejects)
    metrics = {
        "rows_in": {"gsm8k_train": len(gsm8k_train), "gsm8k_test": len(gsm8k_test)},
        "pool_questions": pool.height,
        "pool_by_source": dict(pool.group_by("source").len().sort("source").iter_rows()),
        "benchmark_questions": dict(bench.group_by("benchmark").len().sort("benchmark").iter_rows()),
        "rejects": rejects.height,
        "rejects_by_reason": reject_reasons,
    }
    for name, table, knobs in (
        ("pool", pool, "pool.gsm8k_limit or pool.synthetic_per_tier"),
        ("benchmark set", bench, "pool.gsm8k_test_limit or pool.heldout_per_tier"),
    ):
        if table.height == 0:
            reasons = ", ".join(f"{k} {v}" for k, v in reject_reasons.items()) or "none"
            raise StageFailure(f"prepare_pool: the {name} is empty (rejects by reason: {reasons}); raise {knobs}")
    return pool, bench, rejects, metrics


def _reason_counts(rejects: pl.DataFrame) -> dict[str, int]:
    # Reasons like "duplicate of X" are summarized by their kind so metrics keys stay stable.
    kinds = rejects["reason"].str.replace(r"(: .*| (of|as) .*)$", "").to_list()
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))
