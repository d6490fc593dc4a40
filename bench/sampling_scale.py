"""Bench: draw a 20,000-question stratified sample from a 1,000,000-question database.

Builds a DATABASE-shaped frame of N questions (levels drawn with the skew a real pool shows: many easy
and extreme, fewer in between), writes and reads it as parquet like the stages do, then times
``sampling.sample_questions`` (adaptive, P_C weights) and the random baseline. Peak memory is the
process's peak resident set (``ru_maxrss``), which covers polars' native buffers. Targets on this
2-core machine: sampling <= 10 s and peak <= 2 GB.

Usage: python bench/sampling_scale.py [--questions 1000000] [--sample 20000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from adacot.sampling import sample_questions
from adacot.schemas import DATABASE, read_table, write_table
from adacot.vocabulary import LEVELS

SHARES = {"easy": 0.3, "medium": 0.25, "hard": 0.2, "very_hard": 0.15, "extreme": 0.1}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def build(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    level_index = rng.choice(len(LEVELS), size=n, p=[0.35, 0.1, 0.1, 0.1, 0.35])
    ids = np.arange(n)
    pass_rate = np.where(level_index == 0, 1.0, rng.uniform(0, 0.8, size=n))
    frame = pl.DataFrame(
        {
            "question_id": pl.Series([f"q-{i:08d}" for i in ids]),
            "source": "synthetic",
            "question": pl.Series([f"What is {i} plus {i % 97}?" for i in ids]),
            "gold": pl.Series((ids + ids % 97).astype(str)),
            "generator_tier": pl.Series((ids % 5 + 1).astype(np.int32)),
            "solution": pl.Series([None] * n, dtype=pl.String),
            "attempts": pl.Series(np.full(n, 5, dtype=np.int32)),
            "correct": pl.Series(np.rint(pass_rate * 5).astype(np.int32)),
            "pass_rate": pass_rate,
            "prm_score": pl.Series(np.where(level_index == 0, np.nan, rng.uniform(0, 1, size=n))).fill_nan(None),
            "level": pl.Series(np.array(LEVELS)[level_index]),
            "grader_version": "bench",
            "completion_tokens": pl.Series(np.full(n, 320, dtype=np.int64)),
        }
    )
    return frame.select([pl.col(c).cast(t) for c, t in DATABASE.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    database = build(args.questions, args.seed)
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "questions.parquet"
        write_table(database, DATABASE, path)
        del database
        start = time.perf_counter()
        database = read_table(path, DATABASE)
        read_s = time.perf_counter() - start
    rss_before = peak_rss_gb()
    start = time.perf_counter()
    sample, metrics = sample_questions(database, SHARES, args.sample, args.seed, "nearest")
    adaptive_s = time.perf_counter() - start
    start = time.perf_counter()
    again, _ = sample_questions(database, SHARES, args.sample, args.seed, "nearest")
    repeat_s = time.perf_counter() - start
    start = time.perf_counter()
    random_sample, _ = sample_questions(database, SHARES, args.sample, args.seed, "nearest", strategy="random")
    random_s = time.perf_counter() - start
    peak = peak_rss_gb()
    assert sample.height == args.sample and sample.equals(again) and random_sample.height == args.sample
    print(
        f"database: {args.questions:,} questions (built in {built:.1f} s, parquet read {read_s:.2f} s); "
        f"sample {args.sample:,}"
    )
    print(
        f"  adaptive sample: {adaptive_s:.2f} s (repeat {repeat_s:.2f} s, identical rows); "
        f"random baseline: {random_s:.2f} s"
    )
    print(f"  effective quota: {metrics['effective_quota']}")
    print(f"  peak RSS: {peak:.2f} GB (after building and reading the database: {rss_before:.2f} GB)")
    print(
        f"targets: sampling <= 10 s -> {'met' if adaptive_s <= 10 else 'MISSED'}; "
        f"peak <= 2 GB -> {'met' if peak <= 2 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
