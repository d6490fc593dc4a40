"""DVC stage generate_solutions: the teacher writes m chains of thought per sampled question."""

from pathlib import Path

from adacot.generation import generate_solutions
from adacot.llm import ResponseCache, Sampling, open_local_model
from adacot.schemas import SAMPLE, SOLUTIONS, read_table, write_table
from adacot.stageio import load_prompts, setup, write_metrics


def main() -> None:
    args, params = setup(__doc__, {
        "sample": "sample parquet", "base_model": "prepared student base (teacher.model: base)",
        "prompts": "prompt YAML", "cache_dir": "response cache folder (outside DVC outs)",
        "solutions": "out: solutions parquet", "metrics": "out: metrics JSON",
    })
    t = params.teacher
    path = Path(args.base_model) if t.model == "base" else Path(t.model)
    sample = read_table(Path(args.sample), SAMPLE)
    prompts = load_prompts(args.prompts)
    sampling = Sampling(max_tokens=t.max_tokens, temperature=t.temperature, top_p=t.top_p, seed=params.seed)
    teacher = open_local_model(path, params.engine, params.seed)
    try:
        solutions, metrics = generate_solutions(
            sample, teacher, prompts, sampling, t.attempts, ResponseCache(Path(args.cache_dir)),
            params.engine.batch_requests,
        )
    finally:
        teacher.close()
    write_table(solutions, SOLUTIONS, Path(args.solutions))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    main()
