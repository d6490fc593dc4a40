"""Tests for adacot.sources and the `pool.sources` / `benchmarks` params: every file format on tiny fixtures,
field maps, each gold kind, seeded multiple-choice shuffling, and bad input (a clear error, or a reject)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import GPQA_FIELDS, PARAMS_PATH

from adacot.config import ParamsError, SourceParams, in_domain, load_params, parse_params
from adacot.errors import StageFailure
from adacot.sources import (
    check_field_map,
    check_source_files,
    choice_question,
    load_source,
    parse_gold_kind,
    read_source,
    rows_to_questions,
)

ROWS: list[dict[str, Any]] = [
    {"uid": "a1", "problem": "What is $1+1$?", "final": "2", "worked": "1+1 = \\boxed{2}"},
    {"uid": "a2", "problem": "What is $\\frac{1}{2}+\\frac{1}{2}$?", "final": "1", "worked": "\\boxed{1}"},
    {"uid": "a3", "problem": "Give $x$ if $2x=1$.", "final": "\\frac{1}{2}", "worked": "so \\boxed{\\frac12}"},
]
FIELDS = {"id": "uid", "question": "problem", "answer": "final", "solution": "worked"}


def _write(fmt: str, folder: Path) -> Path:
    """ROWS written in ``fmt``: what a user hands the pipeline."""
    if fmt == "jsonl":
        path = folder / "rows.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "json":
        path = folder / "rows.json"
        path.write_text(json.dumps(ROWS))
    elif fmt == "json_split":
        path = folder / "splits.json"
        path.write_text(json.dumps({"train": ROWS, "test": ROWS[:1]}))
    elif fmt == "parquet":
        path = folder / "rows.parquet"
        pl.DataFrame(ROWS).write_parquet(path)
    elif fmt == "csv":
        path = folder / "rows.csv"
        pl.DataFrame(ROWS).write_csv(path)
    else:
        import datasets

        path = folder / "saved"
        data = datasets.Dataset.from_list(ROWS)
        if fmt == "datasets_dict":
            datasets.DatasetDict({"train": data, "test": data.select([0])}).save_to_disk(str(path))
        else:
            data.save_to_disk(str(path))
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "json_split", "parquet", "csv", "datasets", "datasets_dict"])
def test_every_format_reads_the_same_questions(fmt: str, tmp_path: Path) -> None:
    path = _write(fmt, tmp_path)
    spec = SourceParams(name="mine", path=str(path), split="train", fields=FIELDS, gold="latex")
    loaded = load_source(spec, 0, "pool")
    assert loaded.rows_in == 3 and loaded.rejects.height == 0
    frame = loaded.questions.sort("question_id")
    assert frame["question_id"].to_list() == ["mine-a1", "mine-a2", "mine-a3"]
    assert frame["gold"].to_list() == ["2", "1", "\\frac{1}{2}"]
    assert frame["solution"].to_list() == [r["worked"] for r in ROWS]
    assert set(frame["source"]) == {"mine"}


def test_ids_without_an_id_column_use_name_split_and_row_number(tmp_path: Path) -> None:
    spec = SourceParams(
        name="mine",
        path=str(_write("jsonl", tmp_path)),
        fields={"question": "problem", "answer": "final"},
        gold="latex",
    )
    frame = load_source(spec, 0, "pool").questions
    assert frame["question_id"].to_list() == ["mine-pool-00000", "mine-pool-00001", "mine-pool-00002"]
    assert frame["solution"].null_count() == 3


def test_limit_is_a_seeded_draw(tmp_path: Path) -> None:
    spec = SourceParams(name="mine", path=str(_write("jsonl", tmp_path)), fields=FIELDS, gold="latex", limit=2)
    first = load_source(spec, 0, "pool").questions
    assert first.height == 2 and first.equals(load_source(spec, 0, "pool").questions)
    seeds = {
        tuple(load_source(spec.model_copy(update={"seed": s}), 0, "pool").questions["question_id"]) for s in range(8)
    }
    assert len(seeds) > 1


# (kind, raw gold, parsed gold or None for a reject)
GOLD_CASES: list[tuple[str, Any, str | None]] = [
    ("gsm8k", "work\n#### 1,234", "1234"),
    ("gsm8k", "no marker 5", None),
    ("latex", "\\frac{1}{2}", "\\frac{1}{2}"),
    (
        "latex",
        "so the answer is $\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}$.",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
    ),
    ("integer", "025", "25"),
    ("integer", 70, "70"),
    ("integer", 27.0, "27"),
    ("integer", "-3", "-3"),
    ("integer", "2.5", None),
    ("integer", "twelve", None),
    ("number", 27.0, "27"),
    ("number", "1,234.5", "1234.5"),
    ("number", "3/4", "3/4"),
    ("number", "-0.25", "-0.25"),
    ("number", ".5", ".5"),
    ("number", "x+1", None),
    ("number", "1,23", None),
    ("number", True, None),
    ("latex", ["list"], None),
    ("latex", "   ", None),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), GOLD_CASES)
def test_gold_kinds(kind: str, raw: Any, expected: str | None) -> None:
    assert parse_gold_kind(raw, kind) == expected


def test_a_gold_that_does_not_parse_under_its_kind_is_a_reject_with_the_reason() -> None:
    spec = SourceParams(name="aime", path="x.jsonl", fields={"question": "problem"}, gold="integer")
    rows = [{"problem": "P1", "answer": "025"}, {"problem": "P2", "answer": "2.5"}, {"problem": "P3"}]
    questions, rejects = rows_to_questions(rows, spec, 0, "test")
    assert questions["gold"].to_list() == ["25"]
    assert dict(zip(rejects["question_id"], rejects["reason"], strict=True)) == {
        "aime-test-00001": "gold does not parse as integer",
        "aime-test-00002": "no gold answer in column 'answer'",
    }
    assert rejects.filter(pl.col("question_id") == "aime-test-00001")["gold_raw"].item() == "2.5"


def test_duplicate_ids_in_a_source_are_rejects() -> None:
    spec = SourceParams(name="s", path="x.jsonl", fields={"id": "k"}, gold="integer")
    questions, rejects = rows_to_questions(
        [{"k": 1, "question": "A", "answer": 1}, {"k": 1, "question": "B", "answer": 2}], spec, 0, "x"
    )
    assert questions["question_id"].to_list() == ["s-1"]
    assert rejects["reason"].to_list() == ["duplicate id in the source: 1"]


# --- multiple choice -------------------------------------------------------------------------------------

GPQA_LIKE = [
    {
        "id": f"g{i}",
        "Question": f"Which of these is prime number {i}?",
        "Correct Answer": str([2, 3, 5, 7, 11, 13][i]),
        "Incorrect Answer 1": str([4, 6, 8, 9, 10, 12][i]),
        "Incorrect Answer 2": str([15, 16, 18, 20, 21, 22][i]),
        "Incorrect Answer 3": str([24, 25, 26, 27, 28, 30][i]),
    }
    for i in range(6)
]
CHOICE = SourceParams(name="gpqa_like", path="x.jsonl", fields=GPQA_FIELDS, gold="choice")


def test_choice_options_are_shuffled_with_a_seed_and_the_gold_is_the_right_letter() -> None:
    questions, rejects = rows_to_questions(GPQA_LIKE, CHOICE, 0, "test")
    assert rejects.height == 0
    for row, original in zip(questions.iter_rows(named=True), GPQA_LIKE, strict=True):
        lines = row["question"].split("\n")
        assert lines[0] == original["Question"] and lines[1] == ""
        options = dict(line.split(") ", 1) for line in lines[2:])
        assert sorted(options) == ["A", "B", "C", "D"]
        assert options[row["gold"]] == original["Correct Answer"]  # the gold letter names the right option
    golds = questions["gold"].to_list()
    assert len(set(golds)) > 1, "the right option must not always land on the same letter"
    # Stable: the same seed gives the same order, another seed another, and a row's order does not depend
    # on which other rows are in the source.
    again, _ = rows_to_questions(GPQA_LIKE, CHOICE, 0, "test")
    assert again.equals(questions)
    other, _ = rows_to_questions(GPQA_LIKE, CHOICE, 1, "test")
    assert other["question"].to_list() != questions["question"].to_list()
    alone, _ = rows_to_questions(GPQA_LIKE[3:4], CHOICE, 0, "test")
    assert alone.row(0, named=True)["question"] == questions.row(3, named=True)["question"]


@pytest.mark.parametrize(
    ("options", "answer", "right"),
    [
        (["red", "green", "blue"], "green", "green"),  # by text
        (["red", "green", "blue"], "C", "blue"),  # by letter in the order given
        (["red", "green", "blue"], 0, "red"),  # by index
    ],
)
def test_choice_answer_by_text_letter_or_index(options: list[str], answer: Any, right: str) -> None:
    text, gold = choice_question("Pick one.", options, answer, "seed")
    assert text is not None
    shown = dict(line.split(") ", 1) for line in text.split("\n")[2:])
    assert shown[gold] == right


@pytest.mark.parametrize(
    ("options", "answer", "reason"),
    [
        (["only"], "only", "needs at least 2 options"),
        (["a", "a", "b"], "a", "two options have the same text"),
        (["a", "b"], "z", "is none of the options"),
        (["a", "b"], "E", "is none of the options"),
    ],
)
def test_choice_rows_that_cannot_be_asked_are_rejects(options: list[str], answer: Any, reason: str) -> None:
    text, why = choice_question("Q", options, answer, "s")
    assert text is None and reason in why


def test_choice_from_one_list_column_and_letter_verification() -> None:
    from adacot.verify import verify_one

    spec = SourceParams(name="mc", path="x.jsonl", fields={"options": "choices"}, gold="choice")
    rows = [{"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1}]
    questions, rejects = rows_to_questions(rows, spec, 0, "test")
    assert rejects.height == 0
    gold = questions["gold"].item()
    assert verify_one(gold, f"The answer is \\boxed{{{gold}}}").status == "correct"
    assert verify_one(gold, f"Answer: {gold}").status == "correct"
    wrong = next(letter for letter in "ABCD" if letter != gold)
    assert verify_one(gold, f"\\boxed{{{wrong}}}").status == "wrong"
    assert verify_one(gold, f"Answer: {wrong}").status == "wrong"


# --- bad input: a clear error before any model loads, or a reject ------------------------------------------


def test_a_field_map_naming_a_missing_column_says_which_and_lists_the_columns(tmp_path: Path) -> None:
    spec = SourceParams(name="mine", path=str(_write("jsonl", tmp_path)), fields={"question": "question"}, gold="latex")
    with pytest.raises(StageFailure) as info:
        load_source(spec, 0, "pool")
    message = str(info.value)
    assert "fields.question = 'question'" in message and "fields.answer = 'answer'" in message
    assert "columns found: final, problem, uid, worked" in message


def test_a_missing_file_fails_before_reading(tmp_path: Path) -> None:
    specs = [SourceParams(name="gone", path=str(tmp_path / "nope.jsonl"), gold="gsm8k")]
    with pytest.raises(StageFailure, match=r"pool source gone: .*nope.jsonl does not exist"):
        check_source_files(specs, [tmp_path], "pool")


def test_a_file_outside_the_tracked_folders_is_refused(tmp_path: Path) -> None:
    inside, outside = tmp_path / "data", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    path = _write("jsonl", outside)
    spec = SourceParams(name="mine", path=str(path), fields=FIELDS, gold="latex")
    with pytest.raises(StageFailure, match="outside the folders prepare_pool tracks"):
        check_source_files([spec], [inside], "pool")
    check_source_files([spec], [inside, outside], "pool")


def test_malformed_jsonl_lines_are_rejects_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{broken\n[1, 2]\n\n" + json.dumps(ROWS[1]) + "\n")
    spec = SourceParams(name="mine", path=str(path), fields=FIELDS, gold="latex")
    loaded = load_source(spec, 0, "pool")
    assert loaded.questions.height == 2 and loaded.rows_in == 4
    assert sorted(r.split(":")[0] for r in loaded.rejects["reason"]) == ["not JSON", "not a JSON object"]


def test_unknown_suffix_and_wrong_json_shapes_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(StageFailure, match="cannot tell the format"):
        read_source(SourceParams(name="t", path=str(tmp_path / "rows.txt"), gold="latex"))
    (tmp_path / "two.json").write_text(json.dumps({"a": [], "b": []}))
    with pytest.raises(StageFailure, match="set `split` to the key of its row list"):
        read_source(SourceParams(name="t", path=str(tmp_path / "two.json"), gold="latex"))
    path = _write("datasets_dict", tmp_path)
    with pytest.raises(StageFailure, match=r"is a DatasetDict; set `split` to one of \['test', 'train'\]"):
        read_source(SourceParams(name="t", path=str(path), split="validation", fields=FIELDS, gold="latex"))


def test_check_field_map_passes_a_complete_map() -> None:
    check_field_map(SourceParams(name="s", path="x", fields=FIELDS, gold="latex"), ROWS)


def _params_with(**sections: Any) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load(PARAMS_PATH.read_text())
    raw.update(sections)
    return raw


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"benchmarks": [{"name": "a", "kind": "synthetic", "per_tier": 1}] * 2},
            "benchmarks names must be unique; repeated: a",
        ),
        (
            {
                "pool": {
                    "sources": [{"name": "p", "kind": "synthetic", "per_tier": 1}] * 2,
                    "decontam_ngram": 8,
                    "decontam_min_overlap": 0.5,
                }
            },
            "pool.sources names must be unique; repeated: p",
        ),
        (
            {"benchmarks": [{"name": "a", "path": "x.jsonl", "gold": "latex", "limit": 0}]},
            "a limit of 0 leaves it empty",
        ),
        ({"benchmarks": [{"name": "a", "path": "x.jsonl"}]}, "needs `gold`"),
        ({"benchmarks": [{"name": "a", "gold": "latex"}]}, "kind file needs `path`"),
        ({"benchmarks": [{"name": "a", "path": "x", "gold": "choice"}]}, "gold choice needs `fields.options`"),
        ({"benchmarks": [{"name": "a", "path": "x", "gold": "code"}]}, "gold code needs `fields.tests`"),
        ({"benchmarks": [{"name": "a", "path": "x", "gold": "latex", "colour": 1}]}, "unknown key"),
        ({"benchmarks": [{"name": "a", "path": "x", "gold": "fraction"}]}, "benchmarks.0.gold"),
        ({"benchmarks": []}, "benchmarks"),
        ({"benchmarks": [{"name": "a", "kind": "synthetic", "per_tier": 1, "tiers": [6]}]}, "benchmarks.0.tiers"),
        ({"benchmarks": [{"name": "a", "path": "x", "gold": "latex", "tiers": [1]}]}, "for kind synthetic only"),
    ],
    ids=[
        "dup_bench",
        "dup_source",
        "zero_limit",
        "no_gold",
        "no_path",
        "choice_no_options",
        "code",
        "unknown",
        "bad_kind",
        "none",
        "bad_tier",
        "tiers_on_file",
    ],
)
def test_bad_source_params_fail_before_any_work(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message.replace("(", "\\(").replace("[", "\\[")):
        parse_params(_params_with(**sections))


def test_shipped_params_parse_and_keep_the_default_run() -> None:
    params = load_params(PARAMS_PATH)
    assert params.domain == "math"
    assert [(s.name, s.kind, s.limit, s.per_tier) for s in in_domain(params.pool.sources, "math")] == [
        ("gsm8k", "file", 8, None),
        ("synthetic", "synthetic", None, 12),
    ]
    assert [(b.name, b.limit, b.per_tier) for b in in_domain(params.benchmarks, "math")] == [
        ("gsm8k_test", 12, None),
        ("synthetic_heldout", None, 6),
    ]
    # The code domain's sources ride along, unused until domain: code.
    assert [(s.name, s.id_range) for s in in_domain(params.pool.sources, "code")] == [("mbpp", (601, 974))]
    assert [b.name for b in in_domain(params.benchmarks, "code")] == ["humaneval", "mbpp_test"]


def test_a_hub_source_goes_through_datasets_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    # No hub here: the loader is replaced (a unit test of the call; the rows path is the one every format uses).
    import datasets

    calls: list[tuple[Any, ...]] = []

    def fake_load(name: str, split: str, revision: str | None) -> datasets.Dataset:
        calls.append((name, split, revision))
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    spec = SourceParams(name="h", kind="hub", hub="org/set", revision="abc123", fields=FIELDS, gold="latex")
    loaded = load_source(spec, 0, "pool")
    assert calls == [("org/set", "train", "abc123")] and loaded.questions.height == 3

    def offline(*_: Any, **__: Any) -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(StageFailure, match="source h: cannot load hub dataset 'org/set': no network"):
        load_source(spec, 0, "pool")
