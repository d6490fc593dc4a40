"""Tests for adacot.stageio and the schema helpers stages use: JSONL, metrics JSON, prompts, tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from conftest import PROMPTS_PATH

from adacot.prompts import parse_prompt_set
from adacot.schemas import QUESTIONS, SchemaError, conform, empty, read_table, write_table
from adacot.stageio import load_prompts, read_jsonl, write_jsonl, write_metrics


def test_read_jsonl_marks_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"question": "Q1?", "answer": "#### 1"}\n'
        "\n"  # blank lines are not rows
        '{"question": "Q2?", "answer": \n'  # cut-off JSON
        "[1, 2]\n"  # valid JSON, not an object
        '"just a string"\n'
        '{"question": "Janet\\u2019s ducks?", "answer": "#### 18"}\n',
        encoding="utf-8",
    )
    rows = read_jsonl(path)
    assert rows == [
        {"question": "Q1?", "answer": "#### 1"},
        {"_malformed": '{"question": "Q2?", "answer": '},
        {"_malformed": "[1, 2]"},
        {"_malformed": '"just a string"'},
        {"question": "Janet\u2019s ducks?", "answer": "#### 18"},
    ]


def test_jsonl_round_trip(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": "ü"}, {"nested": {"x": [1, 2]}}]
    assert write_jsonl(tmp_path / "deep" / "out.jsonl", rows) == 2
    assert read_jsonl(tmp_path / "deep" / "out.jsonl") == rows
    assert "ü" in (tmp_path / "deep" / "out.jsonl").read_text(encoding="utf-8")


def test_write_metrics_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "metrics" / "m.json"
    write_metrics(
        path,
        {
            "z": 1,
            "nan": math.nan,
            "inf": math.inf,
            "nested": {"ninf": -math.inf, "ok": 0.5, 3: "int key"},
            "list": [1.0, math.nan, (2, math.inf)],
        },
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data == {
        "inf": None,
        "list": [1.0, None, [2, None]],
        "nan": None,
        "nested": {"3": "int key", "ninf": None, "ok": 0.5},
        "z": 1,
    }
    assert list(data) == sorted(data)  # sorted keys keep diffs stable
    assert text.endswith("\n")


def test_load_prompts_real_file() -> None:
    prompts = load_prompts(PROMPTS_PATH)
    assert prompts.version == "math-v1"
    conversation = prompts.render("student", "What is 2 + 2?")
    assert conversation == ({"role": "user", "content": "What is 2 + 2?\nGive the final answer in \\boxed{}."},)
    assert prompts.render("teacher", "What is 2 + 2?")[-1]["content"].endswith("What is 2 + 2?")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"student": {"user": "{question}"}, "teacher": {"user": "{question}"}}, "version"),
        ({"version": "v", "student": {"user": "no placeholder"}, "teacher": {"user": "{question}"}}, "'student'"),
        ({"version": "v", "student": {"user": "{question}"}}, "'teacher'"),
        (
            {"version": "v", "student": {"user": "{question}", "assistant": "x"}, "teacher": {"user": "{question}"}},
            "unknown keys",
        ),
    ],
)
def test_parse_prompt_set_errors(raw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_prompt_set(raw)


def test_prompt_system_message() -> None:
    prompts = parse_prompt_set(
        {"version": "v", "student": {"system": "Be brief.", "user": "Q: {question}"}, "teacher": {"user": "{question}"}}
    )
    assert prompts.render("student", "2+2?") == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: 2+2?"},
    )


def test_table_round_trip_and_schema_errors(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "generator_tier": [1],
            "question_id": ["q"],
            "source": ["s"],
            "question": ["Q?"],
            "gold": ["1"],
            "solution": [None],
            "extra": [0],
        }
    )
    write_table(frame, QUESTIONS, tmp_path / "t" / "q.parquet")
    back = read_table(tmp_path / "t" / "q.parquet", QUESTIONS)
    assert list(back.columns) == list(QUESTIONS)  # schema order, extra column dropped
    assert back.schema == empty(QUESTIONS).schema
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['gold'\]"):
        conform(frame.drop("gold"), QUESTIONS, "questions")
    with pytest.raises(SchemaError, match="does not fit"):
        conform(frame.with_columns(generator_tier=pl.lit("one")), QUESTIONS, "questions")
    with pytest.raises(FileNotFoundError, match="dvc repro"):
        read_table(tmp_path / "absent.parquet", QUESTIONS)


def test_stage_fails_on_bad_params_before_any_work(tmp_path: Path) -> None:
    """A stage script given bad params exits with the fix in its message and writes nothing."""
    import subprocess
    import sys

    import yaml

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["dist"]["hard"] = -1.0
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    out = tmp_path / "sample.parquet"
    done = subprocess.run(
        [
            sys.executable,
            str(root / "stages/sample_questions.py"),
            "--params",
            str(bad),
            "--database",
            "missing.parquet",
            "--eval-database",
            "missing.parquet",
            "--sample",
            str(out),
            "--metrics",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "dist weights must be >= 0" in done.stderr and "dist.hard" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
