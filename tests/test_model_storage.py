"""Big models are referenced, not copied: the bundled model's machine-local folder and the LoRA student.

With the real bundled model: ``prepare_model`` writes a record and converts the GGUF once into the models
dir (``ADACOT_MODELS_DIR``, a session temp dir here, see conftest); preparing again converts nothing and
writes the same record; a machine without the converted folder (a fresh models dir) re-creates it on use
with the recorded fingerprint, also when two processes ask at once (one converts, the other waits). A
LoRA-trained student is stored as its adapter and a record of its base, and evaluates (greedy,
transformers) with the same answers as the merged model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import engine_params

from adacot.config import Params
from adacot.llm import Sampling, open_local_model
from adacot.models import (
    BUNDLED_NAME,
    fingerprint_folder,
    models_dir,
    prepare_model,
    read_model_info,
    resolve_weights,
)

pytestmark = pytest.mark.slow


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bundled_record_and_reuse(base_record: Path, base_model: Path, tmp_path: Path) -> None:
    assert _files(base_record) == ["adacot_model.json"]
    assert base_model.parent == models_dir() and base_model.name.startswith(f"{BUNDLED_NAME}-")
    info = read_model_info(base_record)
    # The recorded fingerprint is the converted folder's, by the fingerprint of old: the model id (and so
    # every response-cache key) is what it was when models/base held the weights.
    assert info.fingerprint == fingerprint_folder(base_model) and base_model.name.endswith(info.fingerprint[:16])
    record = json.loads((base_record / "adacot_model.json").read_text())
    assert record["kind"] == "bundled" and "weights" not in record  # nothing machine-specific in the record
    before = (base_model / "model.safetensors").stat().st_mtime_ns
    started = time.monotonic()
    prepare_model("bundled", tmp_path / "again")
    assert time.monotonic() - started < 10  # a GGUF hash, not a ~20 s conversion
    assert (tmp_path / "again/adacot_model.json").read_bytes() == (base_record / "adacot_model.json").read_bytes()
    assert (base_model / "model.safetensors").stat().st_mtime_ns == before
    assert resolve_weights(tmp_path / "again") == base_model


def test_missing_bundled_folder_is_recreated_once_by_concurrent_users(base_record: Path, tmp_path: Path) -> None:
    """A teammate's machine: the record was pulled, the models dir is empty; two processes resolve at once."""
    fresh = tmp_path / "other-machine-models"
    env = {**os.environ, "ADACOT_MODELS_DIR": str(fresh)}
    command = [sys.executable, "-m", "adacot.cli", "model-path", str(base_record)]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    time.sleep(0.5)
    procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    paths = {out.strip() for out, _ in outputs}
    fingerprint = read_model_info(base_record).fingerprint
    assert paths == {str(fresh / f"{BUNDLED_NAME}-{fingerprint[:16]}")}
    folder = Path(paths.pop())
    # Re-created with the recorded fingerprint (the conversion is deterministic), converted once.
    assert fingerprint_folder(folder) == fingerprint
    assert sum(err.count("converting the bundled model") for _, err in outputs) == 1
    assert not [p for p in fresh.iterdir() if ".tmp-" in p.name]  # no temporary folder left behind


def _sft_rows() -> list[dict[str, Any]]:
    pairs = [("What is 2 + 3?", "2 + 3 = 5. The answer is \\boxed{5}."), ("What is 4 * 2?", "4 * 2 = 8. \\boxed{8}")]
    return [
        {"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
        for q, a in pairs * 2
    ]


def test_lora_student_is_the_adapter_and_evaluates_as_the_merged_model(
    base_record: Path, base_model: Path, params: Params, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adacot.llm.transformers_backend import TransformersChatModel
    from adacot.training import train_student

    sft = params.sft.model_copy(update={"epochs": 1, "batch_size": 2, "max_length": 128, "learning_rate": 1e-3})
    student = tmp_path / "student"
    metrics = train_student(_sft_rows(), base_record, student, sft, 0, tmp_path / "work")
    assert _files(student) == ["adacot_model.json", "adapter_config.json", "adapter_model.safetensors"]
    stored = sum(p.stat().st_size for p in student.iterdir())
    assert stored < 0.1 * (base_model / "model.safetensors").stat().st_size  # ~20 MB against 269 MB
    record = json.loads((student / "adacot_model.json").read_text())
    assert record["kind"] == "lora" and record["base"]["fingerprint"] == read_model_info(base_record).fingerprint
    assert metrics["model_id"] == read_model_info(student).model_id
    assert metrics["model_id"].startswith(f"{BUNDLED_NAME}-sft@")
    assert json.loads((student / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        read_model_info(base_record).model_id
    )

    # The merged model as train_student used to save it: the base in float32 plus the adapter, merged.
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    reference = tmp_path / "merged-by-hand"
    PeftModel.from_pretrained(base, student).merge_and_unload().save_pretrained(reference)
    AutoTokenizer.from_pretrained(base_model).save_pretrained(reference)

    merged = resolve_weights(student)
    assert merged.parent == models_dir() and merged.name.endswith(record["fingerprint"][:16])
    assert resolve_weights(student) == merged  # reused, not merged again
    from safetensors.torch import load_file

    ours, theirs = load_file(merged / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    original = load_file(base_model / "model.safetensors")
    assert any(not torch.equal(ours[k].to(original[k].dtype), original[k]) for k in original)  # it learnt

    conversations = [[{"role": "user", "content": q}] for q in ("What is 2 + 3?", "What is 7 - 4?")]
    greedy = Sampling(max_tokens=24, temperature=0.0, top_p=1.0, seed=0)
    engine = engine_params("transformers")
    tuned = open_local_model(student, engine, seed=0)
    assert tuned.model_id == metrics["model_id"]
    by_hand = TransformersChatModel(reference, "by-hand", engine, seed=0)
    try:
        ours_text = [c[0].text for c in tuned.complete(conversations, greedy, 1)]
        theirs_text = [c[0].text for c in by_hand.complete(conversations, greedy, 1)]
    finally:
        tuned.close()
        by_hand.close()
    assert ours_text == theirs_text and all(ours_text)
