"""DVC stage prepare_pool: the sources of `pool.sources` and `benchmarks` -> pool, benchmarks, rejects."""

from pathlib import Path

from adacot.config import in_domain
from adacot.pools import build_pool_and_benchmarks
from adacot.schemas import BENCHMARK, QUESTIONS, REJECTS, write_table
from adacot.sources import check_source_files, load_source
from adacot.stageio import run_stage, setup, write_metrics
from adacot.verify.code import Limits


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
    # Only the sources of params.domain are read (a code source has gold: code, any other is math).
    pool_specs = in_domain(params.pool.sources, params.domain)
    bench_specs = in_domain(params.benchmarks, params.domain)
    check_source_files(pool_specs, tracked, "pool")
    check_source_files(bench_specs, tracked, "benchmark")
    pool_sources = [load_source(spec, params.seed, "pool") for spec in pool_specs]
    bench_sources = [load_source(spec, params.seed, "test") for spec in bench_specs]
    pool, bench, rejects, metrics = build_pool_and_benchmarks(
        pool_sources,
        bench_sources,
        ngram=params.pool.decontam_ngram,
        min_overlap=params.pool.decontam_min_overlap,
        verify_timeout_s=params.verify.timeout_s,
        verify_workers=params.verify.workers,
        domain=params.domain,
        sandbox=Limits.from_params(params.verify.sandbox),
        sandbox_workers=params.verify.sandbox.workers,
    )
    write_table(pool, QUESTIONS, Path(args.questions))
    write_table(bench, BENCHMARK, Path(args.benchmarks))
    write_table(rejects, REJECTS, Path(args.rejects))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
