"""DVC stage prepare_pool: shipped GSM8K + generated questions -> pool, benchmarks, rejects."""

from pathlib import Path

from adacot.pools import build_pool_and_benchmarks
from adacot.schemas import BENCHMARK, QUESTIONS, REJECTS, write_table
from adacot.stageio import read_jsonl, run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "gsm8k_train": "GSM8K train JSONL (pool source)",
            "gsm8k_test": "GSM8K test JSONL (benchmark source)",
            "questions": "out: pool parquet",
            "benchmarks": "out: benchmark parquet",
            "rejects": "out: rejects parquet",
            "metrics": "out: metrics JSON",
        },
    )
    pool, bench, rejects, metrics = build_pool_and_benchmarks(
        read_jsonl(args.gsm8k_train),
        read_jsonl(args.gsm8k_test),
        gsm8k_limit=params.pool.gsm8k_limit,
        gsm8k_test_limit=params.pool.gsm8k_test_limit,
        synthetic_per_tier=params.pool.synthetic_per_tier,
        heldout_per_tier=params.pool.heldout_per_tier,
        seed=params.seed,
        verify_timeout_s=params.verify.timeout_s,
        verify_workers=params.verify.workers,
    )
    write_table(pool, QUESTIONS, Path(args.questions))
    write_table(bench, BENCHMARK, Path(args.benchmarks))
    write_table(rejects, REJECTS, Path(args.rejects))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
