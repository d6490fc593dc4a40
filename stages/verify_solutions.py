"""DVC stage verify_solutions: judge teacher solutions; keep one per question as SFT data."""

from pathlib import Path

from adacot.generation import require_kept, select_solutions
from adacot.schemas import SOLUTIONS, VERIFIED_SOLUTIONS, read_table, write_table
from adacot.stageio import load_prompts, run_stage, setup, write_jsonl, write_metrics


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "solutions": "solutions parquet",
            "prompts": "prompt YAML",
            "train": "out: SFT JSONL",
            "verdicts": "out: every solution with its verdict and `kept` flag",
            "metrics": "out: metrics JSON",
        },
    )
    prompts = load_prompts(args.prompts, params.domain)
    checked, rows, metrics = select_solutions(
        read_table(Path(args.solutions), SOLUTIONS),
        prompts,
        params.verify,
        params.teacher.keep_unverified,
        params.domain,
    )
    write_table(checked, VERIFIED_SOLUTIONS, Path(args.verdicts))  # first: the reasons, also when none is kept
    require_kept(metrics, params.teacher.keep_unverified, args.verdicts)
    write_jsonl(args.train, rows)
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
