"""DVC stage build_database: attempts -> one row per question with pass rate and level."""

from pathlib import Path

from adacot.grading import assign_levels
from adacot.schemas import ATTEMPTS, DATABASE, QUESTIONS, read_table, write_table
from adacot.stageio import setup, write_jsonl, write_metrics


def main() -> None:
    args, params = setup(__doc__, {
        "questions": "pool parquet", "attempts": "attempts parquet", "database": "out: database parquet",
        "plot": "out: level histogram plot data (JSON rows)", "metrics": "out: metrics JSON",
    })
    database, metrics = assign_levels(
        read_table(Path(args.questions), QUESTIONS), read_table(Path(args.attempts), ATTEMPTS), params.levels
    )
    write_table(database, DATABASE, Path(args.database))
    write_jsonl(args.plot, [
        {"level": lv, "questions": n, "pass_rate": metrics["pass_rate_by_level"][lv]}
        for lv, n in metrics["level_histogram"].items()
    ])
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    main()
