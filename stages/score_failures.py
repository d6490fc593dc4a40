"""DVC stage score_failures: the PRM grader scores each step of the student's failed attempts."""

from pathlib import Path

import polars as pl

from adacot.llm import resolve_cache_dir
from adacot.llm.roles import api_errors_as_exit
from adacot.prm import open_scorer, score_failures
from adacot.schemas import ATTEMPTS, PRM_SCORES, QUESTIONS, read_table, write_table
from adacot.stageio import load_prompts, run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "questions": "questions parquet (pool or eval set)",
            "attempts": "the student's graded attempts",
            "base_model": "prepared student base (prm.model: base)",
            "cache_dir": "response cache folder (every judgement: one per attempt in a single pass, else per step)",
            "prompts": "prompt YAML of the domain (its `judge` wording)",
            "scores": "out: step scores parquet",
            "metrics": "out: metrics JSON",
        },
    )
    questions = read_table(Path(args.questions), QUESTIONS)
    attempts = read_table(Path(args.attempts), ATTEMPTS)
    if params.prm.kind == "none":
        scores, metrics = pl.DataFrame(schema=PRM_SCORES), {"grader": "none", "steps_scored": 0}
    else:
        with api_errors_as_exit():
            judge = load_prompts(args.prompts, params.domain).judge
            scorer = open_scorer(params, args.base_model, resolve_cache_dir(args.cache_dir), judge)
            try:
                scores, metrics = score_failures(questions, attempts, scorer, params.prm, params.domain)
            finally:
                scorer.close()
    write_table(scores, PRM_SCORES, Path(args.scores))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
