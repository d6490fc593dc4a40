"""DVC stage evaluate: pass@1 (mean of n samples, with stderr) of one model on every benchmark."""

from pathlib import Path

from adacot.evaluation import evaluate_model
from adacot.llm import ResponseCache, Sampling, open_local_model
from adacot.schemas import BENCHMARK, EVAL_RESPONSES, read_table, write_table
from adacot.stageio import load_prompts, setup, write_metrics


def main() -> None:
    args, params = setup(__doc__, {
        "benchmarks": "benchmark parquet", "model": "HF folder to evaluate", "prompts": "prompt YAML",
        "cache_dir": "response cache folder (outside DVC outs)", "responses": "out: responses parquet",
        "metrics": "out: metrics JSON",
    })
    e = params.evaluate
    prompts = load_prompts(args.prompts)
    sampling = Sampling(max_tokens=e.max_tokens, temperature=e.temperature, top_p=e.top_p, seed=params.seed)
    benchmarks = read_table(Path(args.benchmarks), BENCHMARK)
    model = open_local_model(Path(args.model), params.engine, params.seed)
    try:
        responses, metrics = evaluate_model(
            benchmarks, model, prompts, sampling, e.samples, params.verify, ResponseCache(Path(args.cache_dir)),
            params.engine.batch_requests,
        )
    finally:
        model.close()
    write_table(responses, EVAL_RESPONSES, Path(args.responses))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    main()
