"""DVC stage breakdown: pass@1 of the base and the tuned student by difficulty level and generator tier.

The evaluation set's levels come from its grading (``build_database``'s eval database): a level means
the same thing here as in the pool the sample was drawn from, so the table shows where training helped.
"""

from pathlib import Path

from adacot.breakdown import accuracy_breakdown, level_plot_table
from adacot.schemas import BENCHMARK, DATABASE, EVAL_RESPONSES, read_table
from adacot.stageio import run_stage, setup, write_json, write_metrics


def main() -> None:
    args, _ = setup(
        __doc__,
        {
            "benchmarks": "benchmark parquet (generator tiers)",
            "eval_database": "eval-set levels parquet",
            "base": "base model's scored responses parquet",
            "student": "tuned student's scored responses parquet",
            "plot": "out: pass@1 by level, one column per model (plot JSON)",
            "metrics": "out: metrics JSON",
        },
    )
    responses = {
        "base": read_table(Path(args.base), EVAL_RESPONSES),
        "student": read_table(Path(args.student), EVAL_RESPONSES),
    }
    metrics, long = accuracy_breakdown(
        responses, read_table(Path(args.benchmarks), BENCHMARK), read_table(Path(args.eval_database), DATABASE)
    )
    write_json(args.plot, level_plot_table(long).to_dicts())
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
