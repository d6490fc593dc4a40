"""Question sources: a user's files (or a hub dataset) read through a field map into question rows.

A source is one entry of ``pool.sources`` or ``benchmarks`` (``config.SourceParams``): where the rows are
(JSONL, JSON, parquet, CSV, a folder saved by ``datasets``, a hub dataset id), which columns hold the id,
question, answer, solution, options and (code) tests, and how the gold answer is written (its *gold kind*;
for ``code`` the gold is the row's tests, read by ``adacot.codetests``). This module
reads those rows (it is the one place that opens user data files), checks the field map against the
columns found, turns each row into a question with a parsed gold (and its worked solution, a GSM8K one
cleaned by ``gsm8k_solution``), or into a reject with the reason, and shuffles multiple-choice options with
a seed. It does not draw limits, deduplicate or decontaminate
(``pools``), and it does not judge answers (``adacot.verify``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from adacot.codetests import UnreadableTests, code_question, read_tests
from adacot.errors import StageFailure
from adacot.pools import TIERS, LoadedSource, generate_synthetic, seeded_subset
from adacot.schemas import QUESTIONS, REJECTS, empty
from adacot.verify import parse_gold

if TYPE_CHECKING:
    from adacot.config import SourceParams

FORMATS = ("jsonl", "json", "parquet", "csv", "datasets")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SUFFIX_FORMAT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_INTEGER = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^[+-]?\.\d+$|^[+-]?\d+/\d+$")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: "48/2 = <<48/2=24>>24"


def source_format(spec: SourceParams) -> str:
    """The file format of a ``kind: file`` source: its ``format`` key, or what the path's suffix says."""
    if spec.format != "auto":
        return spec.format
    path = Path(spec.path or "")
    if path.is_dir():
        return "datasets"
    found = _SUFFIX_FORMAT.get(path.suffix.lower())
    if found is None:
        raise StageFailure(
            f"source {spec.name}: cannot tell the format of {path} from its suffix; "
            f"set `format` to one of {', '.join(FORMATS)}"
        )
    return found


def check_source_files(specs: Sequence[SourceParams], tracked: Sequence[Path], section: str) -> None:
    """Fail before any reading when a source's file is missing or lies outside the folders the stage tracks.

    A file outside ``tracked`` (the stage's folder deps in dvc.yaml) would not rerun the stage when it
    changes: DVC would report "up to date" over stale questions, so that is refused with the fix.
    """
    problems = []
    for spec in specs:
        if spec.kind != "file":
            continue
        path = Path(spec.path or "")
        if not path.exists():
            problems.append(f"{section} source {spec.name}: {path} does not exist")
            continue
        resolved = path.resolve()
        if tracked and not any(resolved.is_relative_to(t.resolve()) for t in tracked):
            problems.append(
                f"{section} source {spec.name}: {path} is outside the folders prepare_pool tracks "
                f"({', '.join(str(t) for t in tracked)}), so DVC would not notice when it changes; move it "
                "there, or add its folder to prepare_pool's deps and --inputs in dvc.yaml"
            )
    if problems:
        raise StageFailure("; ".join(problems))


def read_source(spec: SourceParams) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, unreadable) of a file or hub source; ``unreadable`` holds lines that are not JSON objects.

    ``kind: synthetic`` sources are made by ``pools.generate_synthetic``, not read here.
    """
    if spec.kind == "hub":
        return _read_hub(spec), []
    fmt = source_format(spec)
    path = Path(spec.path or "")
    if fmt == "jsonl":
        return _read_jsonl(path)
    if fmt == "json":
        return _read_json(path, spec), []
    if fmt == "parquet":
        return pl.read_parquet(path).to_dicts(), []
    if fmt == "csv":
        return pl.read_csv(path, infer_schema=False).to_dicts(), []
    return _read_datasets_folder(path, spec), []


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                bad.append({"line": number, "text": line.strip()[:200], "reason": f"not JSON: line {number}: {error}"})
                continue
            if not isinstance(row, dict):
                bad.append({"line": number, "text": line.strip()[:200], "reason": f"not a JSON object: line {number}"})
                continue
            rows.append(row)
    return rows, bad


def _read_json(path: Path, spec: SourceParams) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StageFailure(f"source {spec.name}: {path} is not valid JSON ({error})") from None
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        key = spec.split if spec.split in lists else (next(iter(lists)) if len(lists) == 1 else None)
        if key is None:
            raise StageFailure(
                f"source {spec.name}: {path} holds an object; set `split` to the key of its row list "
                f"(lists found: {sorted(lists) or 'none'})"
            )
        data = lists[key]
    if not isinstance(data, list):
        raise StageFailure(f"source {spec.name}: {path} must hold a list of row objects")
    return [row if isinstance(row, dict) else {"__not_an_object__": row} for row in data]


def _read_datasets_folder(path: Path, spec: SourceParams) -> list[dict[str, Any]]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if spec.split not in loaded:
            raise StageFailure(
                f"source {spec.name}: {path} is a DatasetDict; set `split` to one of {sorted(loaded)} "
                f"(got {spec.split!r})"
            )
        loaded = loaded[spec.split]
    return list(loaded.to_list())


def _read_hub(spec: SourceParams) -> list[dict[str, Any]]:
    import datasets

    try:
        loaded = datasets.load_dataset(spec.hub, split=spec.split or "train", revision=spec.revision)
    except Exception as error:  # offline, unknown id, gated: the library's message says which
        raise StageFailure(f"source {spec.name}: cannot load hub dataset {spec.hub!r}: {error}") from None
    return list(loaded.to_list())


def check_field_map(spec: SourceParams, rows: Sequence[dict[str, Any]]) -> None:
    """Fail naming the field and the columns found when the field map names a column no row has."""
    columns: set[str] = set()
    for row in rows[:1000]:
        columns.update(row)
    wanted = {"question": spec.fields.question}
    if spec.gold != "code":  # code golds are the tests column
        wanted["answer"] = spec.fields.answer
    for name in ("id", "solution", "tests", "entry_point", "setup"):
        column = getattr(spec.fields, name)
        if column is not None:
            wanted[name] = column
    for i, column in enumerate(_option_columns(spec)):
        wanted[f"options[{i}]"] = column
    missing = {field: column for field, column in wanted.items() if column not in columns}
    if missing and rows:
        said = ", ".join(f"fields.{field} = {column!r}" for field, column in missing.items())
        raise StageFailure(
            f"source {spec.name}: the field map names column(s) no row has ({said}); "
            f"columns found: {', '.join(sorted(columns))}"
        )


def _option_columns(spec: SourceParams) -> list[str]:
    options = spec.fields.options
    if options is None:
        return []
    return [options] if isinstance(options, str) else list(options)


def parse_gold_kind(raw: Any, kind: str) -> str | None:
    """The gold answer of one row under its gold kind, or ``None`` when it does not parse as that kind.

    ``gsm8k``: the number after ``####``; ``latex``: the last ``\\boxed{}`` of a solution, else the whole
    text (MATH's ``answer``); ``integer``: an integer (AIME's "025" is 25; "27.0" is 27); ``number``: a
    plain number, decimal or fraction ("1,234" is 1234, "27.0" is 27). ``choice`` golds are made by
    ``choice_question`` from the options.
    """
    if raw is None or isinstance(raw, (list, dict)):
        return None
    if isinstance(raw, bool):
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = str(raw).strip()
    if not text:
        return None
    if kind == "gsm8k":
        return parse_gold(text, "gsm8k")
    if kind == "latex":
        return parse_gold(text, "math")
    if kind == "integer":
        return str(int(float(text))) if _INTEGER.match(text) else None
    if kind == "number":
        if not _NUMBER.match(text):
            return None
        text = text.replace(",", "")
        if "/" not in text and "." in text and float(text).is_integer():
            return str(int(float(text)))
        return text
    raise ValueError(f"no gold parser for kind {kind!r}")


def gsm8k_solution(text: str) -> str:
    """A GSM8K worked solution as a teacher would write it: the calculator annotations (``<<48/2=24>>``)
    removed and the final answer after ``####`` written as ``\\boxed{}`` (thousands separators removed,
    as in the gold). A text without ``####`` keeps its words, annotations removed, and no box is added."""
    text = _CALCULATOR.sub("", text).replace("\r\n", "\n").strip()
    answer = parse_gold(text, "gsm8k")
    if answer is None:
        return text
    body = text[: text.rfind("####")].rstrip()
    return f"{body}\nThe answer is \\boxed{{{answer}}}." if body else f"The answer is \\boxed{{{answer}}}."


def choice_question(
    question: str, options: Sequence[Any], answer: Any, seed: str
) -> tuple[str, str] | tuple[None, str]:
    """(question with lettered shuffled options, gold letter), or (None, reason) when the row cannot be a
    multiple-choice question.

    ``answer`` names the right option by its text, its letter in the order given, or its 0-based index.
    The shuffle depends only on ``seed`` (the source's seed, name and the question's id), so it is the
    same in every run and does not change when other rows are added or removed.
    """
    texts = [str(o).strip() for o in options if o is not None and str(o).strip()]
    if len(texts) < 2:
        return None, f"needs at least 2 options, has {len(texts)}"
    if len(texts) > len(LETTERS):
        return None, f"has {len(texts)} options; at most {len(LETTERS)} can be lettered"
    if len(set(texts)) != len(texts):
        return None, "two options have the same text"
    right = _right_option(texts, answer)
    if right is None:
        return None, f"answer {str(answer)[:60]!r} is none of the options (by text, letter or index)"
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    lines = [f"{LETTERS[pos]}) {texts[i]}" for pos, i in enumerate(order)]
    return f"{question.strip()}\n\n" + "\n".join(lines), LETTERS[order.index(right)]


def _right_option(texts: list[str], answer: Any) -> int | None:
    if answer is None:
        return None
    text = str(answer).strip()
    if text in texts:
        return texts.index(text)
    if len(text) == 1 and text.upper() in LETTERS[: len(texts)]:
        return LETTERS.index(text.upper())
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(texts):
        return answer
    return None


def rows_to_questions(
    rows: Iterable[dict[str, Any]], spec: SourceParams, seed: int, split_default: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(questions, rejects) of one source's raw rows, through its field map and gold kind.

    A row without question text, without a gold, or whose gold does not parse under the source's kind is a
    reject with that reason. Ids are ``<name>-<row id>`` when the field map has an id column, else
    ``<name>-<split>-<row number>``.
    """
    fields = spec.fields
    split = spec.split or split_default
    option_columns = _option_columns(spec)
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    for index, row in enumerate(rows):
        own_id = row.get(fields.id) if fields.id else None
        qid = f"{spec.name}-{own_id}" if own_id not in (None, "") else f"{spec.name}-{split}-{index:05d}"
        question = row.get(fields.question)
        code = spec.gold == "code"
        gold_column = (fields.tests or "tests") if code else fields.answer
        gold_raw = row.get(gold_column)
        base = {
            "question_id": qid,
            "source": spec.name,
            "question": str(question or "")[:2000],
            "gold_raw": "" if gold_raw is None else str(gold_raw)[:500],
        }
        if "__not_an_object__" in row:
            bad.append({**base, "reason": "row is not an object"})
            continue
        if not in_range(own_id, spec.id_range):
            continue
        if qid in seen_ids:
            bad.append({**base, "reason": f"duplicate id in the source: {own_id!r}"})
            continue
        if not isinstance(question, str) or not question.strip():
            bad.append({**base, "reason": f"no question text in column {fields.question!r}"})
            continue
        if gold_raw is None or (isinstance(gold_raw, str) and not gold_raw.strip()) or gold_raw in ([], {}):
            said = "no tests" if code else "no gold answer"
            bad.append({**base, "reason": f"{said} in column {gold_column!r}"})
            continue
        gold: str | None
        if code:
            try:
                tests = read_tests(
                    gold_raw,
                    entry_point=row.get(fields.entry_point) if fields.entry_point else None,
                    setup=row.get(fields.setup) if fields.setup else None,
                    question=question,
                )
            except UnreadableTests as error:
                bad.append({**base, "reason": f"tests in column {gold_column!r}: {error}"})
                continue
            question, gold = code_question(question, tests), tests.to_json()
        elif spec.gold == "choice":
            options = _row_options(row, option_columns)
            text, said = choice_question(question, options, gold_raw, f"{seed}-{spec.name}-{qid}")
            if text is None:
                bad.append({**base, "reason": f"not a multiple-choice question: {said}"})
                continue
            question, gold = text, said
        else:
            gold = parse_gold_kind(gold_raw, spec.gold or "")
            if gold is None:
                bad.append({**base, "reason": f"gold does not parse as {spec.gold}"})
                continue
        seen_ids.add(qid)
        solution = row.get(fields.solution) if fields.solution else None
        if solution is not None and not isinstance(solution, str):
            bad.append({**base, "reason": f"solution in column {fields.solution!r} is not text"})
            continue
        good.append(
            {
                "question_id": qid,
                "source": spec.name,
                "question": question.strip(),
                "gold": gold,
                "generator_tier": None,
                "solution": _own_solution(solution, spec.gold),
            }
        )
    questions = pl.DataFrame(good, schema=QUESTIONS) if good else empty(QUESTIONS)
    rejects = pl.DataFrame(bad, schema=REJECTS) if bad else empty(REJECTS)
    return questions, rejects


def _own_solution(solution: str | None, gold: str | None) -> str | None:
    # GSM8K's solutions carry calculator annotations and end in "#### answer": cleaned here, once, into the
    # form a teacher writes. A MATH solution (already boxed) or a code solution (run as it is) is kept as it is.
    if solution is None:
        return None
    return gsm8k_solution(solution) if gold == "gsm8k" else solution


def in_range(own_id: Any, id_range: tuple[int, int] | None) -> bool:
    """Whether a row's id lies in ``id_range`` (inclusive; ids like "HumanEval/12" count by their last
    number); every row when there is no range, none whose id holds no number."""
    if id_range is None:
        return True
    if isinstance(own_id, float) and own_id.is_integer():  # 601.0 from a CSV or pandas column
        own_id = int(own_id)
    if isinstance(own_id, int) and not isinstance(own_id, bool):
        return id_range[0] <= own_id <= id_range[1]
    found = re.findall(r"\d+", str(own_id)) if own_id is not None else []
    return bool(found) and id_range[0] <= int(found[-1]) <= id_range[1]


def _row_options(row: dict[str, Any], columns: list[str]) -> list[Any]:
    if len(columns) == 1 and isinstance(row.get(columns[0]), (list, tuple)):
        return list(row[columns[0]])
    return [row.get(c) for c in columns]


def unreadable_rejects(spec: SourceParams, unreadable: list[dict[str, Any]]) -> pl.DataFrame:
    """Reject rows for the lines of a JSONL source that were not JSON objects."""
    if not unreadable:
        return empty(REJECTS)
    return pl.DataFrame(
        [
            {
                "question_id": f"{spec.name}-line-{u['line']:05d}",
                "source": spec.name,
                "question": u["text"],
                "gold_raw": "",
                "reason": u["reason"],
            }
            for u in unreadable
        ],
        schema=REJECTS,
    )


def load_source(spec: SourceParams, seed: int, split_default: str) -> LoadedSource:
    """One source's questions with its limit drawn (seeded by the source's seed, else ``seed``), and its
    rejects; the generator for ``kind: synthetic``. The field map is checked against the rows first."""
    own_seed = seed if spec.seed is None else spec.seed
    if spec.kind == "synthetic":
        tiers = tuple(spec.tiers) if spec.tiers else TIERS
        generated = generate_synthetic(spec.per_tier or 0, own_seed, spec.split or split_default, spec.name, tiers)
        return LoadedSource(spec.name, generated, empty(REJECTS), generated.height, True)
    rows, unreadable = read_source(spec)
    check_field_map(spec, rows)
    questions, rejects = rows_to_questions(rows, spec, own_seed, split_default)
    rejects = pl.concat([unreadable_rejects(spec, unreadable), rejects])
    return LoadedSource(
        spec.name, seeded_subset(questions, spec.limit, own_seed), rejects, len(rows) + len(unreadable), False
    )
