"""Fast tests for model folders (fingerprints, records, errors), the `adacot` CLI and SFT's no-data failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adacot.cli import main as cli_main
from adacot.models import (
    WeightsUnavailable,
    fingerprint_folder,
    lora_record,
    prepare_model,
    read_model_info,
    resolve_weights,
    write_model_info,
)


def _fake_model(folder: Path, weights: bytes = b"weights") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_fingerprint_tracks_weights(tmp_path: Path) -> None:
    a = _fake_model(tmp_path / "a")
    b = _fake_model(tmp_path / "b")
    c = _fake_model(tmp_path / "c", b"other weights")
    assert fingerprint_folder(a) == fingerprint_folder(b)
    assert fingerprint_folder(a) != fingerprint_folder(c)


def test_model_info_roundtrip_and_id(tmp_path: Path) -> None:
    folder = _fake_model(tmp_path / "m")
    info = write_model_info(folder, "tiny", "test")
    assert read_model_info(folder) == info
    assert info.model_id == f"tiny@{info.fingerprint[:16]}"


def test_folder_without_weights_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no model weights"):
        fingerprint_folder(folder)


def _cache_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_local_folder_is_recorded_by_path_not_copied(tmp_path: Path) -> None:
    src = _fake_model(tmp_path / "src", b"w" * 5000)
    (src / "tokenizer.json").write_text("{}")
    info = prepare_model(str(src), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["adacot_model.json"]
    assert _cache_bytes(tmp_path / "out") < 2000  # the record, not the 5,000 bytes of weights
    # The same id as when the folder was copied and fingerprinted: existing response-cache keys still hit.
    assert info.fingerprint == fingerprint_folder(src) and info.name == "src"
    assert read_model_info(tmp_path / "out") == info
    record = json.loads((tmp_path / "out/adacot_model.json").read_text())
    assert record["kind"] == "local" and record["weights"] == str(src.absolute())
    assert sorted(record["manifest"]) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert record["manifest"]["model.safetensors"]["size"] == 5000
    assert resolve_weights(tmp_path / "out") == src.absolute()
    # Preparing the same weights again writes the same record: downstream DVC stages stay up to date.
    first = (tmp_path / "out/adacot_model.json").read_bytes()
    prepare_model(str(src), tmp_path / "out")
    assert (tmp_path / "out/adacot_model.json").read_bytes() == first
    # A plain HF folder resolves to itself.
    assert resolve_weights(src) == src
    with pytest.raises(FileNotFoundError, match="neither 'bundled' nor a local"):
        prepare_model(str(tmp_path / "nowhere"), tmp_path / "out2")


@pytest.mark.parametrize("change", ["size", "same_size", "new_shard", "removed_file", "folder_gone"])
def test_a_changed_or_missing_folder_fails_in_one_line_with_the_fix(
    tmp_path: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _fake_model(tmp_path / "src", b"a" * 3000)
    prepare_model(str(src), tmp_path / "base")
    expected = {
        "size": "model.safetensors has 3,001 bytes, 3,000 recorded",
        "same_size": "model.safetensors has other contents than recorded (same size)",
        "new_shard": "model-2.safetensors is new",
        "removed_file": "config.json is missing",
        "folder_gone": "is gone; restore it there, or set model.student to where it is now",
    }[change]
    if change == "size":
        (src / "model.safetensors").write_bytes(b"a" * 3001)
    elif change == "same_size":
        (src / "model.safetensors").write_bytes(b"a" * 2999 + b"b")
    elif change == "new_shard":
        (src / "model-2.safetensors").write_bytes(b"x")
    elif change == "removed_file":
        (src / "config.json").unlink()
    else:
        shutil.rmtree(src)
    with pytest.raises(WeightsUnavailable) as raised:
        resolve_weights(tmp_path / "base")
    message = str(raised.value)
    assert expected in message and "dvc repro -f prepare_model" in message and "\n" not in message
    # The CLI the README's server line uses says the same in one line, and prints no path.
    assert cli_main(["model-path", str(tmp_path / "base")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == f"error: {message}"


def test_model_path_prints_only_the_weights_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _fake_model(tmp_path / "src")
    prepare_model(str(src), tmp_path / "base")
    assert cli_main(["model-path", str(tmp_path / "base")]) == 0
    assert capsys.readouterr().out == f"{src.absolute()}\n"
    assert cli_main(["model-path", str(tmp_path / "missing")]) == 2


def test_lora_record_id_changes_with_adapter_base_and_dtype(tmp_path: Path) -> None:
    adapter = tmp_path / "student"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 16}')
    (adapter / "adapter_model.safetensors").write_bytes(b"adapter")
    base = {"name": "tiny", "fingerprint": "a" * 64, "kind": "local"}
    first = lora_record(adapter, base, "float32")
    assert first["name"] == "tiny-sft" and first["source"] == "lora sft of tiny@aaaaaaaaaaaaaaaa"
    assert lora_record(adapter, base, "float32") == first
    assert lora_record(adapter, {**base, "fingerprint": "b" * 64}, "float32")["fingerprint"] != first["fingerprint"]
    assert lora_record(adapter, base, "auto")["fingerprint"] != first["fingerprint"]
    (adapter / "adapter_model.safetensors").write_bytes(b"adapted")
    assert lora_record(adapter, base, "float32")["fingerprint"] != first["fingerprint"]


def test_train_student_without_rows_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """No SFT rows: the stage exits 1 with one line, and no "tuned" copy of the base is left to evaluate."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    base = _fake_model(tmp_path / "base")
    write_model_info(base, "tiny", "test")
    (tmp_path / "train.jsonl").write_text("")
    done = subprocess.run(
        [
            sys.executable,
            str(root / "stages/train_student.py"),
            "--params",
            str(root / "params.yaml"),
            "--train",
            "train.jsonl",
            "--base-model",
            "base",
            "--checkpoints",
            "checkpoints",
            "--out",
            "student",
            "--curves",
            "curves",
            "--metrics",
            "metrics.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "error: train_student: the SFT data has 0 rows, nothing to train on; verify_solutions' metrics say why "
        "no solution was kept"
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "student").exists() and not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "curves").exists() and not (tmp_path / "checkpoints").exists()


def test_cli_verify_math(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"gold": "12", "response": "So the answer is \\boxed{12}."},
        {"gold": "12", "response": "I think it is 13"},
        {"gold": "12", "response": "no idea"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    out = tmp_path / "out.jsonl"
    assert cli_main(["verify-math", str(src), str(out), "--workers", "1"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["status"] for g in got] == ["correct", "wrong", "no_answer", "unparseable_gold"]
    assert got[0]["extracted"] == "12"
    assert all(g["reason"] for g in got)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "correct": 1,
        "no_answer": 1,
        "unparseable_gold": 1,
        "wrong": 1,
    }
