"""Fast tests for model folders (fingerprints, errors), the `adacot` CLI and SFT's no-data failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adacot.cli import main as cli_main
from adacot.models import fingerprint_folder, prepare_model, read_model_info, write_model_info


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


def test_prepare_model_from_local_folder_and_bad_path(tmp_path: Path) -> None:
    src = _fake_model(tmp_path / "src")
    info = prepare_model(str(src), tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == b"weights"
    assert info.fingerprint == fingerprint_folder(src)
    with pytest.raises(FileNotFoundError, match="neither 'bundled' nor a local"):
        prepare_model(str(tmp_path / "nowhere"), tmp_path / "out2")


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
            "--out",
            "student",
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
