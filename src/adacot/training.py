"""Supervised fine-tuning of the student on the kept chains of thought (TRL SFTTrainer + PEFT LoRA).

Rows are TRL's conversational prompt/completion format, so the loss covers the completion only. On CPU
the settings DESIGN.md §5 measured are forced explicitly (fp32, no gradient checkpointing). With LoRA only
the adapter is saved, with a record of its base (``adacot.models.write_lora_record``): the out stays a few
MB however big the base, and ``adacot.models.resolve_weights`` merges it into the machine-local models dir
where the student is used, so it is evaluated by the same engine as the base. A full fine-tune
(``sft.lora: false``) saves the whole model as a plain HF folder. This module does not generate or evaluate.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from adacot.config import SftParams
from adacot.errors import StageFailure
from adacot.models import reference_of, resolve_weights, write_lora_record, write_model_info


def train_student(
    rows: list[dict[str, Any]], base_dir: Path, out_dir: Path, sft: SftParams, seed: int, work_dir: Path
) -> dict[str, Any]:
    """Fine-tune the model ``base_dir`` names on ``rows``; save the adapter (LoRA) or the model at ``out_dir``.

    No rows is a ``StageFailure``: a "tuned" student that is a copy of the base would be evaluated and
    compared as if it had learnt something.
    """
    if not rows:
        raise StageFailure(
            "train_student: the SFT data has 0 rows, nothing to train on; verify_solutions' "
            "metrics say why no solution was kept"
        )
    base = reference_of(base_dir)
    base_weights = resolve_weights(base_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(seed)
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(base_weights)
    # The LoRA record keeps this dtype, so merging where the student is used gives what merging here did.
    merge_dtype = "float32" if sft.use_cpu else "auto"
    model = AutoModelForCausalLM.from_pretrained(base_weights, dtype=torch.float32 if sft.use_cpu else "auto")
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
    if not math.isfinite(float(result.training_loss)):
        # Diverged (a learning rate too high, a bf16 overflow): saving these weights would hand evaluation
        # a broken model that looks like a trained one.
        raise StageFailure(
            f"train_student: the training loss is {result.training_loss} after "
            f"{result.global_step} steps; lower sft.learning_rate or check the data"
        )
    tuned: Any = trainer.model
    out_dir.mkdir(parents=True, exist_ok=True)
    base_id = f"{base['name']}@{base['fingerprint'][:16]}"
    if sft.lora:
        # PEFT writes the base's path into adapter_config.json: the base's id instead keeps the adapter (and
        # so the student's fingerprint) the same on every machine. The vocabulary is never resized here, so
        # no embedding layers are saved (PEFT's "auto" would look the id up on the Hugging Face hub). Its
        # model card README is not needed.
        for adapter_config in tuned.peft_config.values():
            adapter_config.base_model_name_or_path = base_id
        tuned.save_pretrained(out_dir, save_embedding_layers=False)
        (out_dir / "README.md").unlink(missing_ok=True)
        info = write_lora_record(out_dir, base, merge_dtype)
    else:
        tuned.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        info = write_model_info(out_dir, f"{base['name']}-sft", f"sft of {base_id}")
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
