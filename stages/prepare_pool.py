"""DVC stage prepare_pool: the sources of `pool.sources` and `benchmarks` -> pool, benchmarks, rejects."""

from pathlib import Path

from adacot.pools import build_pool_and_benchmarks
from adacot.schemas import BENCHMARK, QUESTIONS, REJECTS, write_table
from adacot.sources import check_source_files, load_source
from adacot.stageio import run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "inputs": "the folders this stage tracks as deps (comma-separated); every source file must lie in one",
            "questions": "out: pool parquet",
            "benchmarks": "out: benchmark parquet",
            "rejects": "out: rejects parquet",
            "metrics": "out: metrics JSON",
        },
    )
    tracked = [Path(p) for p in args.inputs.split(",") if p]
    check_source_files(params.pool.sources, tracked, "pool")
    check_source_files(params.benchmarks, tracked, "benchmark")
    pool_sources = [load_source(spec, params.seed, "pool") for spec in params.pool.sources]
    bench_sources = [load_source(spec, params.seed, "test") for spec in params.benchmarks]
    pool, bench, rejects, metrics = build_pool_and_benchmarks(
        pool_sources,
        bench_sources,
        ngram=params.pool.decontam_ngram,
        min_overlap=params.pool.decontam_min_overlap,
        verify_timeout_s=params.verify.timeout_s,
        verify_workers=params.verify.workers,
    )
    write_table(pool, QUESTIONS, Path(args.questions))
    write_table(bench, BENCHMARK, Path(args.benchmarks))
    write_table(rejects, REJECTS, Path(args.rejects))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
