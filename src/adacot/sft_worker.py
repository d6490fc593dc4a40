"""Entry point of each process ``accelerate launch`` starts for SFT: ``python -m adacot.sft_worker``.

Every process reads the same params and rows and runs ``adacot.training.train_student``; the main process
writes the metrics (or a ``StageFailure``'s message) as JSON to ``--result`` for ``adacot.sft_launch``.
Not for running by hand: the stage (``stages/train_student.py``) validates everything and launches it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("params", "train", "base-model", "out", "work", "curves", "result"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("ADACOT_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from adacot.config import load_params
    from adacot.errors import StageFailure
    from adacot.stageio import read_jsonl, write_metrics
    from adacot.training import train_student

    # torchrun sets RANK; a single process launched plainly is the main one.
    main_process = int(os.environ.get("RANK", "0")) == 0
    params = load_params(args.params)
    try:
        metrics = train_student(
            read_jsonl(args.train), args.base_model, args.out, params.sft, params.seed_of("sft"), args.work, args.curves
        )
    except StageFailure as failure:
        if main_process:
            args.result.write_text(json.dumps({"error": str(failure)}))
        print(f"error: {failure}", file=sys.stderr)
        return 1
    if main_process:
        write_metrics(args.result, metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
