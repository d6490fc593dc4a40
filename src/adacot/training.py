"""Supervised fine-tuning of the student on the kept chains of thought (TRL SFTTrainer + PEFT LoRA).

``train_student`` is what each training process runs: the stage launches it through ``accelerate launch``
(``adacot.sft_launch``, entry point ``adacot.sft_worker``), so the same code trains in one CPU process, over
DDP, DeepSpeed ZeRO-3 or FSDP. Rows are TRL's conversational prompt/completion format, so the loss covers
the completion only. A row longer than ``sft.max_length`` tokens is dropped or truncated by
``sft.length_policy`` and counted either way (``length_counts``). Checkpoints go to a folder the caller
keeps outside the DVC out; a folder holding a complete checkpoint is resumed from. With LoRA only the
adapter is saved, with a record of its base (``adacot.models.write_lora_record``): the out stays a few MB
however big the base, and ``adacot.models.resolve_weights`` merges it into the machine-local models dir
where the student is used, so it is evaluated by the same engine as the base. A full fine-tune
(``sft.lora: false``) saves the whole model as a plain HF folder. This module does not launch processes
(``adacot.sft_launch`` does), generate or evaluate.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from adacot.config import SftParams
from adacot.errors import StageFailure
from adacot.models import reference_of, resolve_weights, write_lora_record, write_model_info

# The learning-rate and loss curves, as DVCLive writes them under the stage's curves folder.
CURVE_KEYS = {"loss": "train/loss", "learning_rate": "train/learning_rate", "grad_norm": "train/grad_norm"}


def check_rows(rows: list[dict[str, Any]]) -> None:
    """Refuse SFT data that cannot train: no rows, or a row without a prompt and a completion.

    No rows is a ``StageFailure``: a "tuned" student that is a copy of the base would be evaluated and
    compared as if it had learnt something.
    """
    if not rows:
        raise StageFailure(
            "train_student: the SFT data has 0 rows, nothing to train on; verify_solutions' "
            "metrics say why no solution was kept"
        )
    bad = [
        i
        for i, r in enumerate(rows)
        if not (isinstance(r.get("prompt"), list) and isinstance(r.get("completion"), list))
    ]
    if bad:
        raise StageFailure(
            f"train_student: {len(bad)} SFT rows (first: line {bad[0] + 1}) lack a conversational prompt and "
            "completion (lists of messages); the file is not verify_solutions' train.jsonl"
        )


def length_counts(lengths: list[int], max_length: int, policy: str) -> dict[str, int]:
    """What ``policy`` does to rows of these token ``lengths``: counts for the stage metrics."""
    over = sum(n > max_length for n in lengths)
    return {
        "rows_over_max_length": over,
        "rows_dropped_too_long": over if policy == "drop" else 0,
        "rows_truncated": over if policy == "truncate" else 0,
        "max_row_tokens": max(lengths, default=0),
    }


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in ``folder`` (one whose trainer state was written last and parses)."""
    found = []
    for child in folder.glob("checkpoint-*") if folder.is_dir() else []:
        state = child / "trainer_state.json"
        if not child.name.removeprefix("checkpoint-").isdigit() or not state.is_file():
            continue
        try:
            json.loads(state.read_text())
        except json.JSONDecodeError:
            continue  # killed while writing its state: the checkpoint before it is the one to resume
        found.append((int(child.name.removeprefix("checkpoint-")), child))
    return max(found)[1] if found else None


def train_student(
    rows: list[dict[str, Any]],
    base_dir: Path,
    out_dir: Path,
    sft: SftParams,
    seed: int,
    work_dir: Path,
    curves_dir: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune the model ``base_dir`` names on ``rows``; save the adapter (LoRA) or the model at ``out_dir``.

    Run by every process of an ``accelerate launch`` (or alone, in one process). ``work_dir`` holds the
    checkpoints (every ``sft.checkpoint_steps`` steps); a complete one there is resumed from. The main
    process saves ``out_dir``, the loss and learning-rate curves (DVCLive, into ``curves_dir``) and returns
    the metrics; the others return ``{}``.
    """
    check_rows(rows)
    base = reference_of(base_dir)
    base_weights = resolve_weights(base_dir)

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(seed)
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(base_weights)
    # The LoRA record keeps this dtype, so merging where the student is used gives what merging here did.
    merge_dtype = "float32" if sft.use_cpu else "auto"
    # device_map None: the trainer places the model (TRL's "auto" would spread one process's copy over every GPU).
    load_kwargs: dict[str, Any] = {"dtype": "float32" if sft.use_cpu else "auto", "device_map": None}
    if sft.attn_implementation is not None:
        load_kwargs["attn_implementation"] = sft.attn_implementation
    config = SFTConfig(
        output_dir=str(work_dir),
        num_train_epochs=sft.epochs,
        learning_rate=sft.learning_rate,
        lr_scheduler_type=sft.lr_scheduler,
        # transformers 5 reads a warmup_steps below 1 as a share of the steps.
        warmup_steps=sft.warmup_ratio,
        weight_decay=sft.weight_decay,
        per_device_train_batch_size=sft.batch_size,
        gradient_accumulation_steps=sft.grad_accum,
        max_length=sft.max_length,
        packing=sft.packing,
        completion_only_loss=True,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="steps" if sft.checkpoint_steps else "no",
        save_steps=sft.checkpoint_steps or 500,
        save_total_limit=2,
        report_to="none",
        # SFTConfig defaults to bf16 and gradient checkpointing; both hurt on CPU (DESIGN.md §5): params say.
        use_cpu=sft.use_cpu,
        bf16=sft.bf16,
        gradient_checkpointing=sft.gradient_checkpointing,
        disable_tqdm=False,
        # The trainer loads the model, after accelerate set up the processes: under DeepSpeed ZeRO-3 that is
        # what lets it be sharded as it loads.
        model_init_kwargs=load_kwargs,
    )
    peft_config = None
    if sft.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=sft.lora_r, lora_alpha=sft.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        )

    counts: dict[str, int] = {}

    class LengthPolicySFTTrainer(SFTTrainer):
        """TRL's own preparation, in two passes: tokenize untruncated, count and apply the length policy,
        then TRL's truncation and packing on the tokenized rows (it skips tokenizing what has input_ids)."""

        def _prepare_dataset(self, data: Any, processing_class: Any, args: Any, packing: bool, *rest: Any) -> Any:
            import copy

            untruncated = copy.copy(args)
            untruncated.max_length, untruncated.shuffle_dataset = None, False
            data = super()._prepare_dataset(data, processing_class, untruncated, False, *rest)
            lengths = [len(ids) for ids in data["input_ids"]]
            counts.update(length_counts(lengths, sft.max_length, sft.length_policy))
            if sft.length_policy == "drop":
                data = data.filter(lambda row: len(row["input_ids"]) <= sft.max_length)
            kept = len(data)
            data = super()._prepare_dataset(data, processing_class, args, packing, *rest)
            if not packing:
                # TRL drops rows whose completion the truncation cut off entirely: counted, not silent.
                counts["rows_dropped_no_completion_left"] = kept - len(data)
            counts["rows_trained"] = kept - counts.get("rows_dropped_no_completion_left", 0)
            return data

    trainer = LengthPolicySFTTrainer(
        model=str(base_weights),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if counts.get("rows_trained") == 0:
        raise StageFailure(
            f"train_student: no row fits sft.max_length={sft.max_length} tokens under length_policy="
            f"{sft.length_policy} (longest: {counts['max_row_tokens']}); raise max_length or use truncate"
        )
    resume = last_checkpoint(work_dir)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if not math.isfinite(float(result.training_loss)):
        # Diverged (a learning rate too high, a bf16 overflow): saving these weights would hand evaluation
        # a broken model that looks like a trained one.
        raise StageFailure(
            f"train_student: the training loss is {result.training_loss} after "
            f"{result.global_step} steps; lower sft.learning_rate or check the data"
        )
    # Every process takes part in gathering the weights (ZeRO-3 and FSDP shard them); the main one saves.
    state_dict = trainer.accelerator.get_state_dict(trainer.model)
    if not trainer.is_world_process_zero():
        return {}
    tuned: Any = trainer.accelerator.unwrap_model(trainer.model)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_id = f"{base['name']}@{base['fingerprint'][:16]}"
    if sft.lora:
        # PEFT writes the base's path into adapter_config.json: the base's id instead keeps the adapter (and
        # so the student's fingerprint) the same on every machine. The vocabulary is never resized here, so
        # no embedding layers are saved (PEFT's "auto" would look the id up on the Hugging Face hub). Its
        # model card README is not needed.
        for adapter_config in tuned.peft_config.values():
            adapter_config.base_model_name_or_path = base_id
            # A set, written in the process's string-hash order: sorted, the same run writes the same bytes.
            if isinstance(adapter_config.target_modules, set):
                adapter_config.target_modules = sorted(adapter_config.target_modules)
        tuned.save_pretrained(out_dir, state_dict=state_dict, save_embedding_layers=False)
        (out_dir / "README.md").unlink(missing_ok=True)
        info = write_lora_record(out_dir, base, merge_dtype)
    else:
        tuned.save_pretrained(out_dir, state_dict=state_dict)
        tokenizer.save_pretrained(out_dir)
        info = write_model_info(out_dir, f"{base['name']}-sft", f"sft of {base_id}")
    history = trainer.state.log_history
    if curves_dir is not None:
        write_curves(history, curves_dir)
    losses = [h["loss"] for h in history if "loss" in h]
    tokens = max((int(h.get("num_tokens", 0)) for h in history), default=0)
    gpu = {}
    if torch.cuda.is_available() and not sft.use_cpu:
        gpu["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return {
        "train_rows": len(rows),
        **counts,
        "trained": True,
        "processes": int(trainer.args.world_size),
        "effective_batch_size": int(sft.batch_size * sft.grad_accum * trainer.args.world_size),
        "steps": int(result.global_step),
        "resumed_from_step": int(resume.name.removeprefix("checkpoint-")) if resume else None,
        "train_loss": float(result.training_loss),
        "first_loss": float(losses[0]) if losses else None,
        "last_loss": float(losses[-1]) if losses else None,
        "train_runtime_s": float(result.metrics.get("train_runtime", 0.0)),
        "train_tokens": tokens,
        **gpu,
        "lora": sft.lora,
        "model_id": info.model_id,
    }


def write_curves(history: list[dict[str, Any]], curves_dir: Path) -> None:
    """The per-step loss, learning rate and gradient norm, written by DVCLive (one TSV per curve).

    Written from the trainer's log history at the end rather than by a callback as it trains: a resumed
    run's history holds the steps before the crash too (the checkpoint keeps them), so the curves are
    whole. ``save_dvc_exp=False`` and no dvc.yaml: the stage runs inside ``dvc repro``/``dvc exp run``,
    which own the experiment and the pipeline file.
    """
    from dvclive import Live

    if curves_dir.exists():
        shutil.rmtree(curves_dir)
    live = Live(dir=str(curves_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    for entry in history:
        if "loss" not in entry:
            continue
        live.step = int(entry["step"])
        for key, name in CURVE_KEYS.items():
            if key in entry:
                live.log_metric(name, float(entry[key]))
