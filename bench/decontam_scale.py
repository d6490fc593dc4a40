"""Bench: n-gram decontamination of a 100,000-question pool against 1,500 benchmark questions (target <= 10 s).

The pool is real question text from the shipped files (GSM8K train, the MATH-train subset) with its numbers
redrawn to make 100,000 distinct questions, plus the real questions themselves; the benchmark set is 1,500
real benchmark questions (MATH500, AIME24/25, AMC23 and GSM8K test). Side by side in one run:
``pools.decontaminate`` (an index of the benchmarks' n-grams, one set probe per pool question) and a naive
pairwise check (every pool question's n-gram set intersected with every benchmark question's) on a slice,
extrapolated to the whole pool. Printed: seconds, questions per second, the ratio naive / indexed, and the
ratio of the indexed time to the 10 s budget; the leaks found among the real questions are listed by
source and benchmark.

Exit status 1 if the indexed decontamination takes more than 10 s.

Usage: python bench/decontam_scale.py [--pool 100000] [--ngram 8]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import polars as pl

from adacot.pools import decontaminate, normalize_text
from adacot.schemas import BENCHMARK, QUESTIONS, conform

DATA = Path(__file__).resolve().parents[1] / "data"
BUDGET_S = 10.0


def _rows(path: Path, field: str) -> list[str]:
    return [json.loads(line)[field] for line in path.read_text().splitlines() if line.strip()]


def build_inputs(pool_size: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pool, benchmarks): real questions, the pool topped up with number-redrawn variants to ``pool_size``."""
    rng = random.Random(seed)
    real = {
        "gsm8k": _rows(DATA / "pools/gsm8k_train.jsonl", "question"),
        "math": _rows(DATA / "pools/math_train_subset.jsonl", "problem"),
    }
    pool_rows = [(f"{src}-{i}", src, q) for src, qs in real.items() for i, q in enumerate(qs)]
    templates = [q for qs in real.values() for q in qs]
    while len(pool_rows) < pool_size:
        text = re.sub(r"\d+", lambda _: str(rng.randint(2, 999)), rng.choice(templates))
        pool_rows.append((f"variant-{len(pool_rows)}", "variant", text))
    bench_rows = [("math500", q) for q in _rows(DATA / "benchmarks/math500.jsonl", "problem")] + [
        ("aime24", q) for q in _rows(DATA / "benchmarks/aime24.jsonl", "problem")
    ]
    bench_rows += [("aime25", q) for q in _rows(DATA / "benchmarks/aime25.jsonl", "problem")]
    bench_rows += [("amc23", q) for q in _rows(DATA / "benchmarks/amc23.jsonl", "question")]
    gsm8k_test = _rows(DATA / "benchmarks/gsm8k_test.jsonl", "question")
    bench_rows += [("gsm8k_test", q) for q in gsm8k_test[: 1500 - len(bench_rows)]]
    pool = conform(
        pl.DataFrame(
            {
                "question_id": [r[0] for r in pool_rows],
                "source": [r[1] for r in pool_rows],
                "question": [r[2] for r in pool_rows],
                "gold": ["1"] * len(pool_rows),
            }
        ).with_columns(generator_tier=pl.lit(None), solution=pl.lit(None)),
        QUESTIONS,
        "pool",
    )
    bench = conform(
        pl.DataFrame(
            {
                "benchmark": [b for b, _ in bench_rows],
                "question_id": [f"{b}-{i}" for i, (b, _) in enumerate(bench_rows)],
                "source": [b for b, _ in bench_rows],
                "question": [q for _, q in bench_rows],
                "gold": ["1"] * len(bench_rows),
            }
        ).with_columns(generator_tier=pl.lit(None), solution=pl.lit(None)),
        BENCHMARK,
        "benchmarks",
    )
    return pool, bench


def naive_seconds_per_question(pool: pl.DataFrame, bench: pl.DataFrame, ngram: int, sample: int = 200) -> float:
    """Seconds per pool question of the pairwise check (n-gram sets intersected with each benchmark's)."""

    def grams(text: str) -> set[tuple[str, ...]]:
        words = normalize_text(text).split()
        return set(zip(*(words[i:] for i in range(ngram)), strict=False))

    bench_grams = [grams(q) for q in bench["question"]]
    start = time.perf_counter()
    for question in pool["question"][:sample]:
        mine = grams(question)
        for theirs in bench_grams:
            if mine & theirs:
                break
    return (time.perf_counter() - start) / sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--ngram", type=int, default=8)
    parser.add_argument("--min-overlap", type=float, default=0.5)
    args = parser.parse_args()
    pool, bench = build_inputs(args.pool)
    print(f"pool {pool.height:,} questions, benchmarks {bench.height:,} questions, n = {args.ngram}")
    start = time.perf_counter()
    kept, rejects, counts = decontaminate(pool, bench, args.ngram, args.min_overlap)
    indexed_s = time.perf_counter() - start
    start = time.perf_counter()
    _, _, any_counts = decontaminate(pool, bench, args.ngram, 0.0)
    any_s = time.perf_counter() - start
    naive_s = naive_seconds_per_question(pool, bench, args.ngram) * pool.height
    print(f"indexed (pools.decontaminate): {indexed_s:6.2f} s  {pool.height / indexed_s:,.0f} questions/s")
    print(f"indexed, any shared n-gram:    {any_s:6.2f} s")
    print(f"naive pairwise (extrapolated): {naive_s:6.2f} s  {pool.height / naive_s:,.0f} questions/s")
    print(
        f"ratio naive / indexed: {naive_s / indexed_s:.1f}x; "
        f"indexed / budget {BUDGET_S:.0f} s: {indexed_s / BUDGET_S:.2f}"
    )
    leaks = rejects.filter(pl.col("reason").str.starts_with("contaminated"))
    print(
        f"dropped {rejects.height:,} ({leaks.height:,} leaks, {rejects.height - leaks.height:,} duplicates); "
        f"kept {kept.height:,}"
    )
    for source in sorted(counts):
        if source != "variant":
            print(f"  leaks from {source} (min overlap {args.min_overlap}): {counts[source]}")
            print(f"  leaks from {source} (any shared {args.ngram}-gram): {any_counts.get(source, {})}")
    for row in leaks.filter(pl.col("source") != "variant").head(3).iter_rows(named=True):
        print(f"  e.g. {row['question_id']}: {row['reason'][:140]}")
    return 0 if indexed_s <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
