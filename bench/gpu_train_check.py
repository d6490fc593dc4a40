"""GPU check of the student's training path, launched as the stage launches it, in bf16; then generation.

What it does, in order:

1. Prepares a base model folder. With ``--base`` it uses that HF folder as is. With ``--config-dir`` (a
   folder holding only ``config.json`` and the tokenizer / chat-template files, no weights) it builds a
   RANDOMLY INITIALISED model of that architecture in bf16 and saves it with the tokenizer files, so the
   check can run where the real weights cannot travel. Random weights make the losses and the generated
   text meaningless; the speed, memory and the code path (bf16, gradient checkpointing, LoRA merge, save
   and reload) are what this checks.
2. Reads TRL conversational prompt/completion rows (``data/sft/train.jsonl`` format) and repeats them up
   to ``--rows`` rows so that the timing covers enough steps.
3. Trains through the stage's own launch path: the real params.yaml with the ``sft`` settings below,
   validated, then ``adacot.sft_launch`` (``accelerate launch --config_file <--accelerate-config>`` on
   ``adacot.sft_worker``, each process running ``adacot.training.train_student``). On a GPU:
   ``configs/accelerate/ddp.yaml`` with one process per visible GPU (``--processes``), bf16 and gradient
   checkpointing. Without CUDA it stops with one line unless ``--cpu`` is given (the CPU settings and
   ``configs/accelerate/cpu.yaml``, a quick local smoke test).
4. Reloads the merged model from the output folder, checks it has no LoRA leftovers and that training
   moved its weights, and times batched greedy generation with transformers (bf16 on CUDA).
5. Prints one JSON summary (and writes it to ``--out/summary.json``, with this script's own log in
   ``--out/log.txt``; the trainer's per-step lines go to stdout, so tee stdout for the full log).

Example (on a CUDA machine)::

    PYTHONPATH=src python bench/gpu_train_check.py --config-dir cfg/ --train data/sft/train.jsonl \\
        --rows 256 --out out/

Throughput and peak GPU memory come from the stage metrics the main training process writes
(``train_tokens``, ``train_runtime_s``, ``peak_gpu_mem_gib``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("gpu_train_check")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--base", type=Path, help="HF model folder with weights (used as is)")
    src.add_argument("--config-dir", type=Path, help="folder with config.json + tokenizer files: random init")
    parser.add_argument("--train", type=Path, required=True, help="SFT JSONL (prompt/completion rows)")
    parser.add_argument("--rows", type=int, default=256, help="train rows, the file's rows repeated")
    parser.add_argument("--out", type=Path, required=True, help="folder for summary.json and log.txt")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--cpu", action="store_true", help="sft.use_cpu=true, configs/accelerate/cpu.yaml (smoke test)")
    parser.add_argument("--accelerate-config", default=None, help="default: cpu.yaml with --cpu, else ddp.yaml")
    parser.add_argument("--processes", type=int, default=None, help="training processes (default: GPUs, or 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-lora", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--gen-batch", type=int, default=16, help="prompts per generate() call")
    parser.add_argument("--gen-new-tokens", type=int, default=128, help="new tokens per prompt (forced)")
    return parser.parse_args(argv)


def setup_logging(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(out / "log.txt", mode="w")):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def read_rows(path: Path, n: int) -> list[dict[str, Any]]:
    """The file's prompt/completion rows, repeated (in order) until there are ``n``."""
    base = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            base.append({"prompt": row["prompt"], "completion": row["completion"]})
    if not base:
        raise SystemExit(f"{path} holds no rows")
    return [base[i % len(base)] for i in range(n)]


def build_random_base(config_dir: Path, dest: Path) -> dict[str, Any]:
    """A bf16, randomly initialised model of ``config_dir``'s architecture, saved as an HF folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from adacot.models import write_model_info

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(config_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    for name in TOKENIZER_FILES:
        if (config_dir / name).is_file():
            shutil.copy2(config_dir / name, dest / name)
    info = write_model_info(dest, "random-init-" + config.model_type, f"random init from {config_dir}/config.json")
    return {
        "base_weights": "random init (from_config, bf16)",
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "model_id": info.model_id,
    }


def launch_training(
    args: argparse.Namespace, rows: list[dict[str, Any]], base_dir: Path, work: Path, device: str
) -> dict[str, Any]:
    """Train as the stage does: params validated, then ``accelerate launch`` through ``adacot.sft_launch``."""
    import torch
    import yaml

    from adacot.config import load_params
    from adacot.sft_launch import plan_launch, train_resumable

    root = Path(__file__).resolve().parents[1]
    config = args.accelerate_config or str(root / "configs/accelerate" / ("cpu.yaml" if args.cpu else "ddp.yaml"))
    processes = args.processes or (torch.cuda.device_count() if device == "cuda" else 1)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["seed"] = args.seed
    raw["sft"].update(
        accelerate_config=config,
        lora=not args.no_lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        use_cpu=args.cpu,
        bf16=not args.cpu,
        gradient_checkpointing=not args.cpu,
        checkpoint_steps=0,
    )
    work.mkdir(parents=True, exist_ok=True)
    params_file, train_file = work / "params.yaml", work / "train.jsonl"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sft = load_params(params_file).sft
    plan = plan_launch(
        config, {**os.environ, "ADACOT_NUM_PROCESSES": str(processes)}, use_cpu=sft.use_cpu, bf16=sft.bf16
    )
    start = time.perf_counter()
    metrics = train_resumable(
        plan,
        sft,
        args.seed,
        params_file=params_file,
        train_file=train_file,
        base_dir=base_dir,
        out_dir=work / "tuned",
        checkpoints_root=work / "checkpoints",
        curves_dir=work / "curves",
    )
    wall = round(time.perf_counter() - start, 2)
    assert metrics is not None  # machine rank 0
    log.info("trained %d rows in %.1f s wall: %s", len(rows), wall, metrics)
    runtime, tokens = float(metrics["train_runtime_s"]), int(metrics.get("train_tokens") or 0)
    return {
        "sft": sft.model_dump(),
        "accelerate_config": config,
        "processes": metrics["processes"],
        "train_wall_s": wall,
        "train_metrics": metrics,
        "train_rows": len(rows),
        "steps": metrics["steps"],
        "train_runtime_s": runtime,
        "train_tokens": tokens or None,
        "train_tokens_per_s": round(tokens / runtime, 1) if tokens and runtime else None,
        "train_peak_gpu_mem_gib": metrics.get("peak_gpu_mem_gib"),
        "first_loss": metrics.get("first_loss"),
        "final_loss": metrics.get("last_loss"),
        "mean_loss": metrics.get("train_loss"),
    }


def safetensors_keys(folder: Path) -> list[str]:
    from safetensors import safe_open

    keys: list[str] = []
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            keys.extend(handle.keys())
    return keys


def weight_delta(base_dir: Path, tuned_dir: Path) -> float:
    """Largest absolute change of any shared weight tensor between the two folders (in fp32)."""
    from safetensors.torch import load_file

    def load(folder: Path) -> dict[str, Any]:
        tensors: dict[str, Any] = {}
        for path in sorted(folder.glob("*.safetensors")):
            tensors.update(load_file(str(path)))
        return tensors

    base, tuned = load(base_dir), load(tuned_dir)
    return max(float((base[k].float() - tuned[k].float()).abs().max()) for k in base.keys() & tuned.keys())


def time_generation(model_dir: Path, rows: list[dict[str, Any]], args: argparse.Namespace, device: str) -> dict:
    """Batched greedy generation with transformers: one warm-up call, then one timed call."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    prompts = [rows[i % len(rows)]["prompt"] for i in range(args.gen_batch)]
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    n_new = args.gen_new_tokens
    # Random weights may emit EOS at once; forcing the length keeps the token count (and the timing) fixed.
    kwargs = dict(max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=tokenizer.pad_token_id)

    def run() -> tuple[Any, float]:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**batch, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        return out, time.perf_counter() - start

    warm_out, warm_s = run()
    out, seconds = run()
    new = out[:, batch["input_ids"].shape[1] :]
    return {
        "gen_dtype": str(dtype).removeprefix("torch."),
        "gen_batch": args.gen_batch,
        "gen_prompt_tokens_padded": int(batch["input_ids"].shape[1]),
        "gen_new_tokens_per_prompt": int(new.shape[1]),
        "gen_warmup_s": round(warm_s, 3),
        "gen_s": round(seconds, 3),
        "gen_tokens_per_s": round(new.numel() / seconds, 1),
        "gen_greedy_repeatable": bool(torch.equal(warm_out, out)),
        "gen_sample_text": tokenizer.decode(new[0], skip_special_tokens=True)[:200],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.out)
    import torch
    import transformers

    summary: dict[str, Any] = {"ok": False}
    device = "cuda" if (torch.cuda.is_available() and not args.cpu) else "cpu"
    summary["device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    summary["versions"] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    for name in ("trl", "peft", "accelerate", "datasets", "pydantic"):
        try:
            summary["versions"][name] = __import__(name).__version__
        except Exception as error:
            summary["versions"][name] = f"unavailable: {error}"

    if device == "cpu" and not args.cpu:
        raise SystemExit("error: no CUDA device here; pass --cpu for the CPU smoke run of the same launch path")
    work_ctx = tempfile.TemporaryDirectory(prefix="gpu-train-check-") if args.work is None else None
    work = Path(work_ctx.name) if work_ctx else args.work
    try:
        if args.config_dir:
            base_dir = work / "base"
            summary.update(build_random_base(args.config_dir, base_dir))
        else:
            base_dir = args.base
            summary["base_weights"] = f"pretrained from {base_dir}"
        log.info("base model ready at %s (%s)", base_dir, summary["base_weights"])
        rows = read_rows(args.train, args.rows)
        summary.update(launch_training(args, rows, base_dir, work, device))
        # train_student saves the LoRA adapter and a record; the merge happens where the student is used.
        from adacot.models import resolve_weights

        summary["adapter_saved"] = (work / "tuned/adapter_model.safetensors").is_file()
        out_dir = resolve_weights(work / "tuned")
        keys = safetensors_keys(out_dir)
        summary["merged_saved"] = bool(keys) and (out_dir / "adacot_model.json").is_file()
        summary["merged_lora_keys_left"] = sum("lora_" in k for k in keys)
        summary["merged_max_weight_change"] = weight_delta(base_dir, out_dir)
        log.info("merged model saved: %s, lora keys left %d", summary["merged_saved"], summary["merged_lora_keys_left"])
        summary.update(time_generation(out_dir, rows, args, device))
        log.info("generation: %.1f new tokens/s (%s)", summary["gen_tokens_per_s"], summary["gen_dtype"])
        summary["merged_reloaded"] = True
        summary["ok"] = (
            summary["merged_saved"]
            and summary["merged_lora_keys_left"] == 0
            and summary["merged_max_weight_change"] > 0
        )
    except Exception as error:
        log.exception("check failed")
        summary["error"] = f"{type(error).__name__}: {error}"
    finally:
        if work_ctx:
            work_ctx.cleanup()
    text = json.dumps(summary, indent=2, default=str)
    (args.out / "summary.json").write_text(text + "\n")
    print(text)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
