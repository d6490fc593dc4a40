"""Tests for `adacot export`: the kept SFT rows as a `datasets` folder, chat JSONL and a dataset card, loaded back
with `datasets.load_from_disk` and fed to TRL's SFTTrainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import PROMPTS_PATH

from adacot.cli import main as adacot
from adacot.schemas import SAMPLE, VERIFIED_SOLUTIONS, conform

# question id, source, level, pass rate, prm score, sample index, solution, status, kept
SOLVED = [
    ("gsm8k-train-00001", "gsm8k", "medium", 0.4, 0.7, 0, "Half of 48 is 24.\nSo \\boxed{72}.", "correct", True),
    ("gsm8k-train-00001", "gsm8k", "medium", 0.4, 0.7, 1, "So \\boxed{70}.", "wrong", False),
    ("synthetic-pool-t1-00000", "synthetic", "easy", 1.0, None, 0, "3 + 4 = \\boxed{7}", "correct", True),
    ("math-train-7", "math", "extreme", 0.0, 0.1, 0, "No idea.", "no_answer", False),
]


def _write_run(folder: Path) -> tuple[Path, Path]:
    rows: list[dict[str, Any]] = []
    for qid, _, level, _, _, index, solution, status, kept in SOLVED:
        rows.append(
            {
                "question_id": qid,
                "sample_index": index,
                "finish_reason": "stop",
                "prompt_tokens": 50,
                "completion_tokens": 20 + index,
                "model_id": "teacher@abc",
                "prompt_version": "v1",
                "reasoning_tokens": 0,
                "latency_s": 0.1,
                # a served teacher names its model; a local engine leaves the field empty (as the stages write it)
                "served_model": "deepseek-reasoner" if qid.startswith("gsm8k") else "",
                "error": None,
                "question": f"Question {qid}?",
                "gold": "72",
                "level": level,
                "solution": solution,
                "status": status,
                "reason": "",
                "extracted": None,
                "tests_passed": None,
                "tests_total": None,
                "kept": kept,
            }
        )
    sample = [
        {
            "question_id": qid,
            "source": source,
            "question": f"Question {qid}?",
            "gold": "72",
            "pass_rate": rate,
            "prm_score": score,
            "level": level,
            "attempts": 5,
            "correct": int(rate * 5),
            "target_share": 0.2,
        }
        for qid, source, level, rate, score, *_ in SOLVED
    ]
    verdicts_path, sample_path = folder / "verdicts.parquet", folder / "sample.parquet"
    conform(pl.DataFrame(rows), VERIFIED_SOLUTIONS, "v").write_parquet(verdicts_path)
    frame = pl.DataFrame(sample).unique("question_id", keep="first", maintain_order=True)
    conform(
        frame.with_columns([pl.lit(None).alias(c) for c in SAMPLE if c not in frame.columns]), SAMPLE, "s"
    ).write_parquet(sample_path)
    return verdicts_path, sample_path


def _export(tmp_path: Path) -> Path:
    verdicts, sample = _write_run(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text("seed: 3\ndist: {from: weights, easy: 1}\napi: {base_urls: [http://x]}\n")
    out = tmp_path / "export"
    code = adacot(
        [
            *("export", "--out", str(out), "--verdicts", str(verdicts), "--sample", str(sample)),
            *("--prompts", str(PROMPTS_PATH), "--params", str(params), "--name", "my-cot"),
        ]
    )
    assert code == 0
    return out


def test_export_writes_a_datasets_folder_jsonl_and_card(tmp_path: Path) -> None:
    import datasets

    out = _export(tmp_path)
    data = datasets.load_from_disk(str(out / "dataset"))
    assert data.num_rows == 2  # the kept rows only
    row = {r["question_id"]: r for r in data.to_list()}["gsm8k-train-00001"]
    assert (row["source"], row["level"], row["pass_rate"], row["prm_score"]) == ("gsm8k", "medium", 0.4, 0.7)
    assert row["verified"] is True and row["teacher"] == "deepseek-reasoner" and row["completion_tokens"] == 20
    assert row["messages"][-1] == {"role": "assistant", "content": "Half of 48 is 24.\nSo \\boxed{72}."}
    assert row["messages"][-2]["role"] == "user" and "Question gsm8k-train-00001?" in row["messages"][-2]["content"]
    solved = {r["question_id"]: r for r in data.to_list()}["synthetic-pool-t1-00000"]
    assert solved["prm_score"] is None and solved["teacher"] == "teacher@abc"
    lines = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert [x["question_id"] for x in lines] == sorted(row_["question_id"] for row_ in data.to_list())
    assert lines[0]["messages"] == data[0]["messages"]
    card = (out / "README.md").read_text()
    assert "# my-cot" in card and "| medium | 1 |" in card and "| easy | 1 |" in card and "| hard | 0 |" in card
    assert "| gsm8k | 1 |" in card and "| synthetic | 1 |" in card
    assert "seed: 3" in card and "dist:" in card
    assert "base_urls" not in card  # server settings are not what made the data


def test_export_with_nothing_kept_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    verdicts, sample = _write_run(tmp_path)
    pl.read_parquet(verdicts).with_columns(kept=pl.lit(False)).write_parquet(verdicts)
    code = adacot(["export", "--out", str(tmp_path / "x"), "--verdicts", str(verdicts), "--sample", str(sample)])
    assert code == 2 and "no kept solution to export" in capsys.readouterr().out
    assert adacot(["export", "--out", str(tmp_path / "y"), "--verdicts", str(tmp_path / "none.parquet")]) == 2


@pytest.mark.slow
def test_the_exported_dataset_trains_with_sft_trainer(tmp_path: Path, base_model: Path) -> None:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    data = datasets.load_from_disk(str(_export(tmp_path) / "dataset"))
    config = SFTConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        per_device_train_batch_size=2,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        max_length=256,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base_model),
        args=config,
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(base_model),
    )
    result = trainer.train()
    assert result.global_step == 2
    assert all(h["loss"] > 0 for h in trainer.state.log_history if "loss" in h)
