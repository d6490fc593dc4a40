"""DVC stage prepare_model: the bundled SmolLM2 GGUF (or model.student folder) -> an HF folder."""

from pathlib import Path

from adacot.models import prepare_model
from adacot.stageio import run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(__doc__, {"out": "out: HF model folder", "metrics": "out: metrics JSON"})
    info = prepare_model(params.model.student, Path(args.out))
    write_metrics(args.metrics, {"model_id": info.model_id, "source": info.source})


if __name__ == "__main__":
    run_stage(main)
