"""DVC stage build_database: attempts and PRM scores -> one row per question with its level (pool and eval set)."""

from pathlib import Path

from adacot.levels import assign_levels
from adacot.schemas import ATTEMPTS, DATABASE, PRM_SCORES, QUESTIONS, read_table, write_table
from adacot.stageio import run_stage, setup, write_json, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "questions": "pool parquet",
            "attempts": "pool attempts parquet",
            "scores": "pool PRM step scores",
            "eval_questions": "evaluation set parquet (the benchmarks)",
            "eval_attempts": "eval attempts parquet",
            "eval_scores": "eval PRM step scores",
            "database": "out: database parquet",
            "eval_database": "out: eval-set levels parquet (P_eval)",
            "plot_levels": "out: level histogram plot (JSON)",
            "plot_pass_rate": "out: pass rate per level plot (JSON)",
            "metrics": "out: metrics JSON",
        },
    )
    levels = params.levels
    database, metrics = assign_levels(
        read_table(Path(args.questions), QUESTIONS),
        read_table(Path(args.attempts), ATTEMPTS),
        levels,
        read_table(Path(args.scores), PRM_SCORES),
    )
    # The eval set is levelled with the pool's score edges, so a level means the same on both (P_eval).
    eval_db, eval_metrics = assign_levels(
        read_table(Path(args.eval_questions), QUESTIONS),
        read_table(Path(args.eval_attempts), ATTEMPTS),
        levels,
        read_table(Path(args.eval_scores), PRM_SCORES),
        edges=metrics["score_edges"],
    )
    write_table(database, DATABASE, Path(args.database))
    write_table(eval_db, DATABASE, Path(args.eval_database))
    levels_rows, pass_rows = [], []
    for name, m in (("pool", metrics), ("eval", eval_metrics)):
        levels_rows += [
            {"set": name, "level": lv, "share": m["level_share"][lv], "questions": n}
            for lv, n in m["level_histogram"].items()
        ]
        pass_rows += [
            {"set": name, "level": lv, "pass_rate": m["pass_rate_by_level"][lv] or 0.0} for lv in m["level_histogram"]
        ]
    write_json(args.plot_levels, levels_rows)
    write_json(args.plot_pass_rate, pass_rows)
    metrics["eval"] = {
        k: eval_metrics[k]
        for k in (
            "questions",
            "level_histogram",
            "level_share",
            "pass_rate_by_level",
            "score_edges",
            "truncation_rate",
            "truncation_by_level",
        )
        if k in eval_metrics
    }
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
