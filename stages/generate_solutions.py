"""DVC stage generate_solutions: the teacher writes m chains of thought per sampled question (or, with
teacher.backend=reference, each question's own worked solution is the answer)."""

from pathlib import Path

from adacot.generation import generate_solutions, reference_solutions
from adacot.llm import ResponseCache, resolve_cache_dir
from adacot.llm.roles import sampling_from, teacher_model
from adacot.schemas import SAMPLE, SOLUTIONS, read_table, write_table
from adacot.stageio import load_prompts, run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "sample": "sample parquet",
            "base_model": "prepared student base (used when teacher.backend=local and teacher.model=base)",
            "prompts": "prompt YAML",
            "cache_dir": "response cache folder (outside DVC outs)",
            "solutions": "out: solutions parquet",
            "metrics": "out: metrics JSON",
        },
    )
    teacher = params.teacher
    sample = read_table(Path(args.sample), SAMPLE)
    prompts = load_prompts(args.prompts, params.domain)
    if teacher.backend == "reference":  # no model: nothing to open, ask or cache
        solutions, metrics = reference_solutions(sample, prompts, params.domain)
    else:
        with teacher_model(params, args.base_model) as (model, price):
            solutions, metrics = generate_solutions(
                sample,
                model,
                prompts,
                sampling_from(teacher, params.seed),
                teacher.attempts,
                ResponseCache(resolve_cache_dir(args.cache_dir)),
                params.role_engine("teacher").batch_requests,
                price,
            )
    write_table(solutions, SOLUTIONS, Path(args.solutions))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
