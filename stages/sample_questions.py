"""DVC stage sample_questions: draw N questions from the database by P_C weights, P_eval, or uniformly."""

from pathlib import Path

from adacot.errors import StageFailure
from adacot.sampling import eval_overlap, eval_shares, sample_questions
from adacot.schemas import DATABASE, SAMPLE, read_table, write_table
from adacot.stageio import run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "database": "database parquet",
            "eval_database": "eval-set levels parquet (P_eval)",
            "sample": "out: sample parquet",
            "metrics": "out: metrics JSON",
        },
    )
    eval_db = read_table(Path(args.eval_database), DATABASE)
    shares = eval_shares(eval_db) if params.dist.source == "eval" else params.dist.shares()
    sample, metrics = sample_questions(
        read_table(Path(args.database), DATABASE),
        shares,
        params.sample.size,
        params.seed_of("sample"),
        params.sample.shortage,
        params.sample.strategy,
    )
    overlap = eval_overlap(sample, eval_db)
    if overlap:
        raise StageFailure(
            f"{overlap} sampled question(s) are evaluation questions; check prepare_pool's decontamination"
        )
    metrics.update(distribution_from=params.dist.source, eval_overlap=overlap)
    write_table(sample, SAMPLE, Path(args.sample))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
