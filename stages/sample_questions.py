"""DVC stage sample_questions: draw N questions from the database by the `dist` distribution."""

from pathlib import Path

from adacot.sampling import sample_questions
from adacot.schemas import DATABASE, SAMPLE, read_table, write_table
from adacot.stageio import setup, write_metrics


def main() -> None:
    args, params = setup(__doc__, {
        "database": "database parquet", "sample": "out: sample parquet", "metrics": "out: metrics JSON",
    })
    sample, metrics = sample_questions(
        read_table(Path(args.database), DATABASE), params.dist.shares(), params.sample.size, params.seed,
        params.sample.shortage,
    )
    write_table(sample, SAMPLE, Path(args.sample))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    main()
