"""DVC stage evaluate: pass@1 (mean of n samples, with stderr) of one model on every benchmark."""

from pathlib import Path

from adacot.evaluation import evaluate_model
from adacot.llm import ResponseCache
from adacot.llm.roles import local_model, sampling_from
from adacot.schemas import BENCHMARK, EVAL_RESPONSES, read_table, write_table
from adacot.stageio import load_prompts, run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "benchmarks": "benchmark parquet",
            "model": "HF folder to evaluate",
            "prompts": "prompt YAML",
            "cache_dir": "response cache folder (outside DVC outs)",
            "responses": "out: responses parquet",
            "metrics": "out: metrics JSON",
        },
    )
    benchmarks = read_table(Path(args.benchmarks), BENCHMARK)
    with local_model(args.model, params) as model:
        responses, metrics = evaluate_model(
            benchmarks,
            model,
            load_prompts(args.prompts),
            sampling_from(params.evaluate, params.seed),
            params.evaluate.samples,
            params.verify,
            ResponseCache(Path(args.cache_dir)),
            params.engine.batch_requests,
        )
    write_table(responses, EVAL_RESPONSES, Path(args.responses))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
