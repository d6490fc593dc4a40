"""Run the student's SFT through ``accelerate launch``: one CPU process, DDP, DeepSpeed ZeRO-3 or FSDP.

The stage validates everything first (params, rows, base model, the accelerate config through
accelerate's own parser, the multi-node settings), then runs ``accelerate launch --config_file <sft.
accelerate_config> -m adacot.sft_worker`` and reads back the metrics the main process wrote. Settings
that differ from node to node come from the environment, never from params (params are the same on every
node): ``ADACOT_NUM_PROCESSES`` (processes on all nodes together), ``ADACOT_NUM_MACHINES``,
``ADACOT_MACHINE_RANK``, ``ADACOT_MAIN_PROCESS_IP``, ``ADACOT_MAIN_PROCESS_PORT``; each overrides the
config file's value. Checkpoints live in ``<checkpoints root>/sft-<key>``, the key a hash of the training
inputs, params, accelerate config and process count, so a changed run never resumes another run's
checkpoint; the folder is removed after a successful run. This module launches and waits; the training
itself is ``adacot.training.train_student``, run in every launched process by ``adacot.sft_worker``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adacot.config import SftParams
from adacot.errors import StageFailure

log = logging.getLogger(__name__)

WORKER_MODULE = "adacot.sft_worker"
SHIPPED_CONFIGS = "configs/accelerate/{cpu,ddp,zero3,fsdp}.yaml"
# Environment variable -> accelerate launch flag; the value must be an int unless listed in TEXT_SETTINGS.
LAUNCH_ENV = {
    "ADACOT_NUM_PROCESSES": "num_processes",
    "ADACOT_NUM_MACHINES": "num_machines",
    "ADACOT_MACHINE_RANK": "machine_rank",
    "ADACOT_MAIN_PROCESS_IP": "main_process_ip",
    "ADACOT_MAIN_PROCESS_PORT": "main_process_port",
}
TEXT_SETTINGS = {"main_process_ip"}


@dataclass(frozen=True)
class LaunchPlan:
    """An accelerate config file as accelerate reads it, with the environment's overrides."""

    config_file: Path
    config_text: str
    distributed_type: str
    num_processes: int
    num_machines: int
    machine_rank: int
    overrides: dict[str, str]
    mixed_precision: str  # "bf16" or "no": sft.bf16's, whatever the config file says

    def flags(self) -> list[str]:
        """``accelerate launch`` arguments: the config file, the precision, then the overrides."""
        out = ["--config_file", str(self.config_file), "--mixed_precision", self.mixed_precision]
        for name, value in sorted(self.overrides.items()):
            out += [f"--{name}", value]
        return out


def plan_launch(config_file: str, environ: Mapping[str, str], *, use_cpu: bool, bf16: bool) -> LaunchPlan:
    """Read ``config_file`` with accelerate's own parser and apply the ``ADACOT_*`` overrides; fail clearly.

    ``use_cpu`` is ``sft.use_cpu``: a config that forces the CPU cannot serve a GPU run (accelerate would
    quietly train on the CPU), and DeepSpeed or FSDP cannot serve a CPU run. ``bf16`` is ``sft.bf16``: the
    launch's mixed precision follows it, not the file's ``mixed_precision`` (ddp.yaml's bf16 would
    otherwise run a CPU run under bfloat16 autocast while params say float32).
    """
    from accelerate.commands.config.config_args import load_config_from_file

    path = Path(config_file)
    if not path.is_file():
        raise StageFailure(
            f"train_student: sft.accelerate_config={config_file} does not exist; shipped: {SHIPPED_CONFIGS}"
        )
    try:
        config = load_config_from_file(str(path))
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise StageFailure(
            f"train_student: accelerate cannot read sft.accelerate_config={config_file}: {error}"
        ) from None
    kind = str(config.distributed_type).rsplit(".", 1)[-1]
    if config.use_cpu and not use_cpu:
        raise StageFailure(
            f"train_student: sft.use_cpu is false but {config_file} forces the CPU (use_cpu: true); "
            "choose configs/accelerate/ddp.yaml, zero3.yaml or fsdp.yaml"
        )
    if use_cpu and kind in ("DEEPSPEED", "FSDP"):
        raise StageFailure(
            f"train_student: {config_file} is {kind}, which needs GPUs; set sft.use_cpu: false "
            "(and sft.bf16: true), or use configs/accelerate/cpu.yaml or ddp.yaml on CPU"
        )
    overrides: dict[str, str] = {}
    for variable, name in LAUNCH_ENV.items():
        value = environ.get(variable, "").strip()
        if not value:
            continue
        if name not in TEXT_SETTINGS and not (value.isdigit() and (int(value) > 0 or name == "machine_rank")):
            raise StageFailure(f"train_student: {variable}={value!r} must be a whole number (> 0 except a rank)")
        overrides[name] = value
    num_processes = int(overrides.get("num_processes", config.num_processes or 1))
    num_machines = int(overrides.get("num_machines", config.num_machines or 1))
    machine_rank = int(overrides.get("machine_rank", config.machine_rank or 0))
    if machine_rank >= num_machines:
        raise StageFailure(f"train_student: machine rank {machine_rank} with {num_machines} machines; ranks are 0..n-1")
    if num_machines > 1 and "main_process_ip" not in overrides and not getattr(config, "main_process_ip", None):
        raise StageFailure("train_student: several machines need ADACOT_MAIN_PROCESS_IP (the rank-0 node's address)")
    mixed_precision = "bf16" if bf16 else "no"
    in_file = str(getattr(config, "mixed_precision", "no") or "no").rsplit(".", 1)[-1].lower()
    if in_file != mixed_precision:
        log.info(
            "train_student: sft.bf16 is %s, so the launch runs mixed_precision %s (%s says %s)",
            str(bf16).lower(),
            mixed_precision,
            config_file,
            in_file,
        )
    return LaunchPlan(
        config_file=path,
        config_text=path.read_text(),
        distributed_type=kind,
        num_processes=num_processes,
        num_machines=num_machines,
        machine_rank=machine_rank,
        overrides=overrides,
        mixed_precision=mixed_precision,
    )


def checkpoint_key(train_bytes: bytes, base_id: str, sft: SftParams, seed: int, plan: LaunchPlan) -> str:
    """A hash of everything a checkpoint depends on: resuming it under other inputs would train a mix.

    ``checkpoint_steps`` and the config file's name are left out (saving more often, or the same file
    moved, trains the same run); the config file's text and the process count are in.
    """
    settings = sft.model_dump(exclude={"checkpoint_steps", "accelerate_config"})
    document = {
        "train_sha256": hashlib.sha256(train_bytes).hexdigest(),
        "base": base_id,
        "sft": settings,
        "seed": seed,
        "accelerate_config": plan.config_text,
        "processes": plan.num_processes,
        "machines": plan.num_machines,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def train_resumable(
    plan: LaunchPlan,
    sft: SftParams,
    seed: int,
    *,
    params_file: Path,
    train_file: Path,
    base_dir: Path,
    out_dir: Path,
    checkpoints_root: Path,
    curves_dir: Path,
) -> dict[str, Any] | None:
    """``run_training`` with its checkpoints in ``checkpoints_root/sft-<checkpoint_key>``: a rerun of the same
    run (rows, base, params, launch) resumes there; any other run starts afresh."""
    from adacot.models import reference_of

    key = checkpoint_key(train_file.read_bytes(), reference_of(base_dir)["fingerprint"], sft, seed, plan)
    return run_training(
        plan,
        params_file=params_file,
        train_file=train_file,
        base_dir=base_dir,
        out_dir=out_dir,
        checkpoint_dir=checkpoints_root / f"sft-{key}",
        curves_dir=curves_dir,
    )


def run_training(
    plan: LaunchPlan,
    *,
    params_file: Path,
    train_file: Path,
    base_dir: Path,
    out_dir: Path,
    checkpoint_dir: Path,
    curves_dir: Path,
) -> dict[str, Any] | None:
    """Run ``accelerate launch`` on the worker and wait; the main node gets the metrics, other nodes ``None``.

    The workers run the adacot package this process imported (its folder goes first on PYTHONPATH), so a
    stage and its workers never run two versions of the code.
    """
    import adacot

    package_root = str(Path(adacot.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="adacot-sft-") as scratch:
        result_file = Path(scratch) / "result.json"
        command = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            *plan.flags(),
            "-m",
            WORKER_MODULE,
            *("--params", str(params_file), "--train", str(train_file), "--base-model", str(base_dir)),
            *("--out", str(out_dir), "--work", str(checkpoint_dir), "--curves", str(curves_dir)),
            *("--result", str(result_file)),
        ]
        log.info(
            "accelerate launch: %s, %d process(es) on %d machine(s), this is machine %d; checkpoints in %s",
            plan.config_file,
            plan.num_processes,
            plan.num_machines,
            plan.machine_rank,
            checkpoint_dir,
        )
        done = subprocess.run(command, env=env, check=False)
        result = json.loads(result_file.read_text()) if result_file.is_file() else None
    if result is not None and "error" in result:
        raise StageFailure(result["error"])
    if done.returncode != 0:
        raise StageFailure(
            f"train_student: accelerate launch exited with status {done.returncode}; the training log above says "
            f"why (a rerun resumes from the last checkpoint in {checkpoint_dir}, if one was saved)"
        )
    if plan.machine_rank != 0:
        return None
    if result is None:
        raise StageFailure("train_student: the training processes ended without writing their metrics")
    # Trained and saved: the checkpoints served their purpose (a rerun of the same run is a DVC cache hit).
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return {
        **result,
        "accelerate_config": str(plan.config_file),
        "distributed_type": plan.distributed_type,
        "machines": plan.num_machines,
    }
