"""DVC stage grade_questions: the student answers every pool question k times; every attempt is judged."""

from pathlib import Path

from adacot.grading import grade_attempts
from adacot.llm import ResponseCache, Sampling, open_local_model
from adacot.schemas import ATTEMPTS, QUESTIONS, read_table, write_table
from adacot.stageio import load_prompts, setup, write_metrics


def main() -> None:
    args, params = setup(__doc__, {
        "questions": "pool parquet", "model": "student HF folder", "prompts": "prompt YAML",
        "cache_dir": "response cache folder (outside DVC outs)", "attempts": "out: attempts parquet",
        "metrics": "out: metrics JSON",
    })
    questions = read_table(Path(args.questions), QUESTIONS)
    prompts = load_prompts(args.prompts)
    g = params.grade
    sampling = Sampling(max_tokens=g.max_tokens, temperature=g.temperature, top_p=g.top_p, seed=params.seed)
    model = open_local_model(Path(args.model), params.engine, params.seed)
    try:
        attempts, metrics = grade_attempts(
            questions, model, prompts, sampling, g.attempts, params.verify, ResponseCache(Path(args.cache_dir)),
            params.engine.batch_requests,
        )
    finally:
        model.close()
    write_table(attempts, ATTEMPTS, Path(args.attempts))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    main()
