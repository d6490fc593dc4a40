"""DVC stage grade_questions: the student answers every pool question k times; every attempt gets a verdict."""

from pathlib import Path

from adacot.grading import grade_attempts
from adacot.llm import ResponseCache, resolve_cache_dir
from adacot.llm.roles import sampling_from, student_model
from adacot.schemas import ATTEMPTS, QUESTIONS, read_table, write_table
from adacot.stageio import load_prompts, run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "questions": "pool parquet",
            "model": "student HF folder (student.backend=local)",
            "prompts": "prompt YAML",
            "cache_dir": "response cache folder (outside DVC outs)",
            "attempts": "out: attempts parquet",
            "metrics": "out: metrics JSON",
        },
    )
    questions = read_table(Path(args.questions), QUESTIONS)
    with student_model(params, args.model) as (model, price):
        attempts, metrics = grade_attempts(
            questions,
            model,
            load_prompts(args.prompts, params.domain),
            sampling_from(params.grade, params.seed),
            params.grade.attempts,
            params.verify,
            ResponseCache(resolve_cache_dir(args.cache_dir)),
            params.role_engine("student").batch_requests,
            price,
            params.domain,
        )
    write_table(attempts, ATTEMPTS, Path(args.attempts))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
