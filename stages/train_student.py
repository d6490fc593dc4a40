"""DVC stage train_student: TRL SFT (LoRA by default) of the base model on the kept solutions.

Validates params, rows, the base model and the accelerate config, then trains through `accelerate launch`
(``adacot.sft_launch``). On a multi-node run every node runs this script (rank from ADACOT_MACHINE_RANK);
only rank 0 writes the outs.
"""

import os
from pathlib import Path

from adacot.sft_launch import plan_launch, train_resumable
from adacot.stageio import read_jsonl, run_stage, setup, write_metrics
from adacot.training import check_rows


def main() -> None:
    args, params = setup(
        __doc__,
        {
            "train": "SFT JSONL",
            "base_model": "base model folder (a record or an HF folder)",
            "checkpoints": "folder for resumable checkpoints (outside every out)",
            "out": "out: tuned student (LoRA adapter + record, or a full HF folder)",
            "curves": "out: DVCLive folder with the loss and learning-rate curves",
            "metrics": "out: metrics JSON",
        },
    )
    check_rows(read_jsonl(args.train))
    plan = plan_launch(params.sft.accelerate_config, os.environ, use_cpu=params.sft.use_cpu, bf16=params.sft.bf16)
    metrics = train_resumable(
        plan,
        params.sft,
        params.seed_of("sft"),
        params_file=Path(args.params),
        train_file=Path(args.train),
        base_dir=Path(args.base_model),
        out_dir=Path(args.out),
        checkpoints_root=Path(args.checkpoints),
        curves_dir=Path(args.curves),
    )
    if metrics is not None:
        write_metrics(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
