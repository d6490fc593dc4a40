"""SFT through `accelerate launch`: the launch plan, checkpoint keys, the length policy, resume and DDP.

Fast: the shipped configs load through accelerate's own parser (ZeRO-3 and FSDP included), the
``ADACOT_*`` multi-node overrides, bad settings failing in one line before any work, the checkpoint key,
the length-policy counts. Slow (the bundled model, real processes): two gloo CPU processes train the
same adapter as one process with the same effective batch; a run killed (SIGKILL) after its first
checkpoint resumes from it on rerun; rows over ``max_length`` are dropped or truncated and counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from adacot.config import ParamsError, parse_params
from adacot.errors import StageFailure
from adacot.sft_launch import checkpoint_key, plan_launch
from adacot.training import last_checkpoint, length_counts

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs/accelerate"


# --- fast ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "processes"),
    [("cpu", "NO", 1), ("ddp", "MULTI_GPU", 8), ("zero3", "DEEPSPEED", 8), ("fsdp", "FSDP", 8)],
)
def test_shipped_configs_load_through_accelerates_parser(name: str, kind: str, processes: int) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert str(config.distributed_type).rsplit(".", 1)[-1] == kind and config.num_processes == processes
    if name == "zero3":
        assert config.deepspeed_config["zero_stage"] == 3 and config.deepspeed_config["zero3_save_16bit_model"]
    if name == "fsdp":
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    plan = plan_launch(str(CONFIGS / f"{name}.yaml"), {}, use_cpu=name == "cpu", bf16=name != "cpu")
    assert (plan.distributed_type, plan.num_processes, plan.overrides) == (kind, processes, {})


def test_multi_node_settings_come_from_the_environment() -> None:
    env = {
        "ADACOT_NUM_PROCESSES": "16",
        "ADACOT_NUM_MACHINES": "2",
        "ADACOT_MACHINE_RANK": "1",
        "ADACOT_MAIN_PROCESS_IP": "10.0.0.1",
    }
    plan = plan_launch(str(CONFIGS / "zero3.yaml"), env, use_cpu=False, bf16=True)
    assert (plan.num_processes, plan.num_machines, plan.machine_rank) == (16, 2, 1)
    flags = plan.flags()
    assert flags[:2] == ["--config_file", str(CONFIGS / "zero3.yaml")]
    assert dict(zip(flags[2::2], flags[3::2], strict=True)) == {
        "--mixed_precision": "bf16",
        "--machine_rank": "1",
        "--main_process_ip": "10.0.0.1",
        "--num_machines": "2",
        "--num_processes": "16",
    }


@pytest.mark.parametrize(
    ("config", "env", "use_cpu", "message"),
    [
        ("configs/accelerate/nope.yaml", {}, True, "sft.accelerate_config=configs/accelerate/nope.yaml does not exist"),
        ("configs/accelerate/ddp.yaml", {"ADACOT_NUM_PROCESSES": "two"}, True, "ADACOT_NUM_PROCESSES='two' must be"),
        ("configs/accelerate/ddp.yaml", {"ADACOT_NUM_MACHINES": "2"}, True, "need ADACOT_MAIN_PROCESS_IP"),
        (
            "configs/accelerate/ddp.yaml",
            {"ADACOT_NUM_MACHINES": "2", "ADACOT_MACHINE_RANK": "2", "ADACOT_MAIN_PROCESS_IP": "h"},
            True,
            "machine rank 2 with 2 machines",
        ),
        ("configs/accelerate/cpu.yaml", {}, False, "sft.use_cpu is false but configs/accelerate/cpu.yaml forces"),
        ("configs/accelerate/zero3.yaml", {}, True, "is DEEPSPEED, which needs GPUs"),
        ("configs/accelerate/fsdp.yaml", {}, True, "is FSDP, which needs GPUs"),
    ],
)
def test_bad_launch_settings_fail_in_one_line(
    config: str, env: dict[str, str], use_cpu: bool, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(StageFailure, match=message) as failure:
        plan_launch(config, env, use_cpu=use_cpu, bf16=not use_cpu)
    assert "\n" not in str(failure.value)


def test_sft_params_refuse_contradictions(params_raw: dict[str, Any]) -> None:
    for update, message in [
        ({"bf16": True}, "sft.bf16: true needs a GPU"),
        ({"packing": True, "length_policy": "drop"}, "use sft.length_policy: truncate"),
        ({"lr_scheduler": "cosine_annealing"}, "lr_scheduler"),
        ({"length_policy": "silent"}, "length_policy"),
    ]:
        raw = {**params_raw, "sft": {**params_raw["sft"], **update}}
        with pytest.raises(ParamsError, match=message):
            parse_params(raw)
    raw = {**params_raw, "sft": {k: v for k, v in params_raw["sft"].items() if k != "length_policy"}}
    with pytest.raises(ParamsError, match="length_policy"):
        parse_params(raw)


def test_checkpoint_key_follows_what_training_depends_on(params_raw: dict[str, Any]) -> None:
    sft = parse_params(params_raw).sft
    plan = plan_launch(str(CONFIGS / "ddp.yaml"), {}, use_cpu=True, bf16=False)
    key = checkpoint_key(b"rows", "base@1", sft, 0, plan)
    assert checkpoint_key(b"rows", "base@1", sft.model_copy(update={"checkpoint_steps": 7}), 0, plan) == key
    changed = [
        checkpoint_key(b"other rows", "base@1", sft, 0, plan),
        checkpoint_key(b"rows", "base@2", sft, 0, plan),
        checkpoint_key(b"rows", "base@1", sft.model_copy(update={"learning_rate": 1e-5}), 0, plan),
        checkpoint_key(b"rows", "base@1", sft, 1, plan),
        checkpoint_key(
            b"rows",
            "base@1",
            sft,
            0,
            plan_launch(str(CONFIGS / "ddp.yaml"), {"ADACOT_NUM_PROCESSES": "2"}, use_cpu=True, bf16=False),
        ),
        checkpoint_key(
            b"rows", "base@1", sft, 0, plan_launch(str(CONFIGS / "zero3.yaml"), {}, use_cpu=False, bf16=True)
        ),
    ]
    assert key not in changed and len(set(changed)) == len(changed)


def test_length_policy_counts() -> None:
    lengths = [10, 64, 65, 200]
    assert length_counts(lengths, 64, "drop") == {
        "rows_over_max_length": 2,
        "rows_dropped_too_long": 2,
        "rows_truncated": 0,
        "max_row_tokens": 200,
    }
    assert length_counts(lengths, 64, "truncate")["rows_truncated"] == 2
    assert length_counts(lengths, 64, "truncate")["rows_dropped_too_long"] == 0


def test_last_checkpoint_skips_incomplete_ones(tmp_path: Path) -> None:
    assert last_checkpoint(tmp_path / "missing") is None
    for step, state in [(2, "{}"), (10, "{}"), (12, '{"trunc'), (14, None)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


# --- slow: the bundled model in real processes ------------------------------------------------------------

PAIRS = [
    ("What is 2 + 3?", "2 + 3 = 5. The answer is \\boxed{5}."),
    ("What is 4 * 2?", "4 * 2 = 8. \\boxed{8}"),
    ("What is 10 - 7?", "We take 7 away from 10. " * 8 + "The answer is \\boxed{3}."),
    ("What is 9 / 3?", "9 / 3 = 3. \\boxed{3}"),
]


def _project(folder: Path, base_record: Path, params_raw: dict[str, Any], **sft: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
        for q, a in PAIRS
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = {
        "accelerate_config": str(CONFIGS / "cpu.yaml"),
        "epochs": 1,
        "max_length": 64,
        "learning_rate": 1e-3,
        "checkpoint_steps": 0,
        **sft,
    }
    params = {**params_raw, "sft": {**params_raw["sft"], **settings}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def _stage(folder: Path, base_record: Path, env: dict[str, str] | None = None, **popen: Any) -> Any:
    command = [
        sys.executable,
        str(ROOT / "stages/train_student.py"),
        *("--params", "params.yaml", "--train", "train.jsonl", "--base-model", str(base_record)),
        *("--checkpoints", "checkpoints", "--out", "student", "--curves", "curves", "--metrics", "metrics.json"),
    ]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    if popen:
        return subprocess.Popen(command, cwd=folder, env=full_env, **popen)
    done = subprocess.run(command, cwd=folder, env=full_env, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return json.loads((folder / "metrics.json").read_text())


def _adapter(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "student/adapter_model.safetensors"))


def _curve(folder: Path, name: str) -> list[dict[str, str]]:
    lines = (folder / f"curves/plots/metrics/train/{name}.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


@pytest.mark.slow
def test_two_gloo_processes_train_what_one_process_trains(
    base_record: Path, params_raw: dict[str, Any], tmp_path: Path
) -> None:
    """Same effective batch (1 process x 4 rows vs 2 processes x 2 rows): the same adapter, within float noise.

    One optimizer step over all four rows: the processes' shard of the shuffled rows differs from one
    process's order, and over several steps a different order trains a (legitimately) different adapter.
    """
    import torch

    one = _project(tmp_path / "one", base_record, params_raw, batch_size=4)
    two = _project(tmp_path / "two", base_record, params_raw, batch_size=2,
                   accelerate_config=str(CONFIGS / "ddp.yaml"))  # fmt: skip
    single = _stage(one, base_record)
    double = _stage(two, base_record, {"ADACOT_NUM_PROCESSES": "2"})
    assert (single["processes"], double["processes"]) == (1, 2)
    assert (single["distributed_type"], double["distributed_type"]) == ("NO", "MULTI_GPU")  # torchrun; gloo on CPU
    assert single["effective_batch_size"] == double["effective_batch_size"] == 4
    counts = ("train_rows", "rows_trained", "rows_over_max_length", "rows_truncated", "rows_dropped_too_long", "steps")
    assert {k: single[k] for k in counts} == {k: double[k] for k in counts}
    assert single["rows_truncated"] == 1 and single["steps"] == 1  # the long chain of thought, cut and counted
    assert abs(single["train_loss"] - double["train_loss"]) < 1e-4 * single["train_loss"]
    ours, theirs = _adapter(one), _adapter(two)
    assert ours.keys() == theirs.keys()
    # LoRA A: the same seeded initialisation, and no gradient in the first step (B starts at zero).
    assert all(torch.equal(ours[k], theirs[k]) for k in ours if "lora_A" in k)
    # LoRA B: Adam's first step is lr * g / (|g| + eps), about +-lr for every element, so an element whose
    # gradient is at float-noise level may land on either side; compare the update as a whole.
    b_ours = torch.cat([ours[k].flatten() for k in sorted(ours) if "lora_B" in k])
    b_theirs = torch.cat([theirs[k].flatten() for k in sorted(ours) if "lora_B" in k])
    assert float(b_ours.abs().max()) > 1e-4  # it trained
    assert float(torch.nn.functional.cosine_similarity(b_ours, b_theirs, dim=0)) > 0.95
    assert float(((b_ours - b_theirs).abs() < 1e-4).float().mean()) > 0.95
    assert all(torch.isfinite(v).all() for v in theirs.values())
    # DVCLive wrote the step's loss and learning rate.
    for folder in (one, two):
        assert [row["step"] for row in _curve(folder, "loss")] == ["1"]
        assert len(_curve(folder, "learning_rate")) == 1
    assert not (one / "checkpoints").exists() or not any((one / "checkpoints").iterdir())


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint(
    base_record: Path, params_raw: dict[str, Any], tmp_path: Path
) -> None:
    """SIGKILL (the whole process group) after the first checkpoint; the rerun resumes it and finishes.

    Also the drop policy: the long row is left out and counted, and the step count follows."""
    folder = _project(tmp_path / "run", base_record, params_raw, batch_size=1, checkpoint_steps=1,
                      length_policy="drop")  # fmt: skip
    proc = _stage(folder, base_record, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    try:
        while not list((folder / "checkpoints").glob("sft-*/checkpoint-*/trainer_state.json")):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 15 minutes"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (folder / "metrics.json").exists() and not (folder / "student").exists()
    (saved,) = (folder / "checkpoints").iterdir()
    checkpoints = sorted(int(p.name.split("-")[1]) for p in saved.glob("checkpoint-*"))
    assert checkpoints and max(checkpoints) < 3  # killed mid-run: 3 steps in all

    metrics = _stage(folder, base_record)
    assert metrics["resumed_from_step"] is not None and 1 <= metrics["resumed_from_step"] <= max(checkpoints)
    assert metrics["steps"] == 3
    assert (metrics["rows_dropped_too_long"], metrics["rows_trained"], metrics["rows_truncated"]) == (1, 3, 0)
    assert (folder / "student/adapter_model.safetensors").is_file()
    # The curves cover the steps before the kill too: the checkpoint kept the log history.
    assert [row["step"] for row in _curve(folder, "loss")] == ["1", "2", "3"]
    assert not saved.exists()  # removed after success


@pytest.mark.slow
def test_no_row_fits_under_the_drop_policy(base_record: Path, params_raw: dict[str, Any], tmp_path: Path) -> None:
    folder = _project(tmp_path / "run", base_record, params_raw, max_length=8, length_policy="drop")
    done = _stage(folder, base_record, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = done.communicate(timeout=900)
    assert done.returncode == 1
    assert err.splitlines()[-1].startswith("error: train_student: no row fits sft.max_length=8 tokens")
    assert not (folder / "student").exists() and not (folder / "metrics.json").exists()


def test_the_readme_8_gpu_command_gives_valid_params(tmp_path: Path) -> None:
    from test_readme_runs import params_after, readme_block

    (command,) = readme_block("sft-8gpu")
    sft = params_after(command, tmp_path).sft
    assert (sft.accelerate_config, sft.use_cpu, sft.bf16, sft.lora) == (
        "configs/accelerate/zero3.yaml",
        False,
        True,
        False,
    )
    plan = plan_launch(str(ROOT / sft.accelerate_config), {}, use_cpu=sft.use_cpu, bf16=sft.bf16)
    assert (plan.distributed_type, plan.num_processes) == ("DEEPSPEED", 8)


@pytest.mark.parametrize("bf16", [False, True])
def test_the_launch_precision_follows_sft_bf16_not_the_config_file(bf16: bool) -> None:
    # ddp.yaml says mixed_precision: bf16 (its GPU use); a CPU run with sft.bf16: false must not train
    # under bfloat16 autocast (it did: the two-process loss moved 0.2% from the one-process loss).
    plan = plan_launch(str(CONFIGS / "ddp.yaml"), {}, use_cpu=not bf16, bf16=bf16)
    flags = plan.flags()
    assert flags[flags.index("--mixed_precision") + 1] == ("bf16" if bf16 else "no") == plan.mixed_precision
