"""DVC stage evaluate: one model on every benchmark: pass@1 ± stderr, pass@k, cons@k, truncation, tokens."""

from pathlib import Path

from adacot.config import in_domain
from adacot.evaluation import evaluate_model
from adacot.llm import ResponseCache, resolve_cache_dir
from adacot.llm.roles import evaluated_model
from adacot.schemas import BENCHMARK, EVAL_RESPONSES, read_table, write_table
from adacot.stageio import load_prompts, run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "benchmarks": "benchmark parquet",
            "which": "base or student: which model (a folder here, or a served name with evaluate.backend=openai)",
            "model": "HF folder to evaluate (evaluate.backend=local)",
            "prompts": "prompt YAML",
            "cache_dir": "response cache folder (outside DVC outs)",
            "responses": "out: responses parquet",
            "metrics": "out: metrics JSON",
        },
    )
    benchmarks = read_table(Path(args.benchmarks), BENCHMARK)
    with evaluated_model(params, args.which, args.model) as (model, price):
        responses, metrics = evaluate_model(
            benchmarks,
            model,
            load_prompts(args.prompts, params.domain),
            params.evaluate,
            in_domain(params.benchmarks, params.domain),
            params.seed,
            params.verify,
            ResponseCache(resolve_cache_dir(args.cache_dir)),
            params.role_engine("evaluate").batch_requests,
            price,
            params.domain,
        )
    write_table(responses, EVAL_RESPONSES, Path(args.responses))
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
