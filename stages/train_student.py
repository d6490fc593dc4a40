"""DVC stage train_student: TRL SFT (LoRA by default) of the base model on the kept solutions."""

import tempfile
from pathlib import Path

from adacot.stageio import read_jsonl, run_stage, setup, write_metrics
from adacot.training import train_student


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "train": "SFT JSONL",
            "base_model": "base model folder (a record or an HF folder)",
            "out": "out: tuned student (LoRA adapter + record, or a full HF folder)",
            "metrics": "out: metrics JSON",
        },
    )
    with tempfile.TemporaryDirectory(prefix="adacot-sft-") as work:
        metrics = train_student(
            read_jsonl(args.train), Path(args.base_model), Path(args.out), params.sft, params.seed, Path(work)
        )
    write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
