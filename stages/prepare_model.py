"""DVC stage prepare_model: a record of the student base (bundled SmolLM2 GGUF or model.student folder).

The out holds only adacot_model.json; the weights stay in the user's folder or the machine-local models dir.
"""

from pathlib import Path

from adacot.models import prepare_model
from adacot.stageio import run_stage, setup, write_metrics


def main() -> None:
    args, params = setup(__doc__, {"out": "out: model record folder", "metrics": "out: metrics JSON"})
    info = prepare_model(params.model.student, Path(args.out))
    write_metrics(args.metrics, {"model_id": info.model_id, "source": info.source})


if __name__ == "__main__":
    run_stage(main)
