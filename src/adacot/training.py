"""Supervised fine-tuning of the student on the kept chains of thought (TRL SFTTrainer + PEFT LoRA).

Rows are TRL's conversational prompt/completion format, so the loss covers the completion only. On CPU
the settings DESIGN.md §5 measured are forced explicitly (fp32, no gradient checkpointing). With LoRA the
adapter is merged into the base weights and the merged model is saved as a plain HF folder, so the tuned
student is evaluated by the same engine as the base. This module does not generate or evaluate.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from adacot.config import SftParams
from adacot.models import read_model_info, write_model_info

log = logging.getLogger(__name__)


def train_student(
    rows: list[dict[str, Any]], base_dir: Path, out_dir: Path, sft: SftParams, seed: int, work_dir: Path
) -> dict[str, Any]:
    """Fine-tune the model at ``base_dir`` on ``rows`` and save the merged result at ``out_dir``.

    With no rows there is nothing to learn: the base is copied unchanged and the metrics say so, so the
    pipeline (and its evaluation of "tuned" = base) still completes and the cause is visible.
    """
    base_info = read_model_info(base_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    if not rows:
        log.warning("no training rows (no kept solutions): the student is saved unchanged")
        shutil.copytree(base_dir, out_dir)
        info = write_model_info(out_dir, f"{base_info.name}-sft", f"unchanged copy of {base_info.model_id}")
        return {"train_rows": 0, "steps": 0, "trained": False, "model_id": info.model_id}

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(seed)
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32 if sft.use_cpu else "auto")
    config = SFTConfig(
        output_dir=str(work_dir),
        num_train_epochs=sft.epochs,
        learning_rate=sft.learning_rate,
        per_device_train_batch_size=sft.batch_size,
        gradient_accumulation_steps=sft.grad_accum,
        max_length=sft.max_length,
        completion_only_loss=True,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        # SFTConfig defaults to bf16 and gradient checkpointing; both hurt on CPU (DESIGN.md §5).
        use_cpu=sft.use_cpu,
        bf16=not sft.use_cpu,
        gradient_checkpointing=not sft.use_cpu,
        disable_tqdm=False,
    )
    peft_config = None
    if sft.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=sft.lora_r, lora_alpha=sft.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    result = trainer.train()
    tuned = trainer.model
    if sft.lora:
        tuned = tuned.merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    tuned.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    info = write_model_info(out_dir, f"{base_info.name}-sft", f"sft of {base_info.model_id}")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "train_rows": len(rows),
        "trained": True,
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "first_loss": float(losses[0]) if losses else None,
        "last_loss": float(losses[-1]) if losses else None,
        "train_runtime_s": float(result.metrics.get("train_runtime", 0.0)),
        "lora": sft.lora,
        "model_id": info.model_id,
    }
