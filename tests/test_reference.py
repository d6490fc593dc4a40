"""The reference teacher (`teacher.backend: reference`): sources' own worked solutions as teacher answers.

GSM8K solutions cleaned and boxed (real rows), the generator's solutions at every tier verifying against
their own answers while its questions stay byte-identical to the frozen ones, MBPP's reference code passing
its tests in the real sandbox, the solution column flowing from the pool through the sample, the
library functions end to end (missing references counted, a wrong reference rejected), the stage script
on a tiny sample, and the params and estimate that accept it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from conftest import PROMPTS_PATH, ROOT

from adacot.config import Params, VerifyParams, in_domain, parse_params
from adacot.errors import StageFailure
from adacot.estimate import Inputs, Questions, estimate_pipeline
from adacot.generation import REFERENCE_MODEL_ID, reference_answer, reference_solutions, select_solutions
from adacot.pools import TIERS, generate_synthetic
from adacot.prompts import PromptSet
from adacot.sampling import sample_questions
from adacot.schemas import DATABASE, SAMPLE, SOLUTIONS, VERIFIED_SOLUTIONS, conform, read_table, write_table
from adacot.sources import gsm8k_solution, load_source, parse_gold_kind
from adacot.stageio import load_prompts
from adacot.verify.frames import verdict_columns

GSM8K = ROOT / "data/pools/gsm8k_train.jsonl"
FROZEN = ROOT / "tests/fixtures/synthetic_frozen.json"


def _gsm8k_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in GSM8K.read_text().splitlines()]


def _verdicts(golds: list[str], texts: list[str], verify: VerifyParams, domain: str = "math") -> list[str]:
    return verdict_columns(golds, texts, ["stop"] * len(texts), verify, domain=domain)["status"].to_list()


# -- GSM8K -------------------------------------------------------------------------------------------------


def test_gsm8k_solution_removes_annotations_and_boxes_the_answer() -> None:
    rows = _gsm8k_rows()
    assert gsm8k_solution(rows[0]["answer"]) == (
        "Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May.\n"
        "The answer is \\boxed{72}."
    )
    # decimals in the steps and a dollar sign before an annotation
    assert gsm8k_solution(rows[1]["answer"]) == (
        "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n"
        "The answer is \\boxed{10}."
    )
    # negative numbers inside annotations and as the answer
    negative = gsm8k_solution(rows[5715]["answer"])
    assert negative.startswith("-14 + (-8) + 1 = -21 degrees Fahrenheit\n-21/3 = -7 degrees Fahrenheit\n")
    assert negative.endswith("\\boxed{-7}.")
    # thousands separators: boxed as the gold writes them (none)
    assert rows[644]["answer"].endswith("#### 109,200,000")
    assert gsm8k_solution(rows[644]["answer"]).endswith("The answer is \\boxed{109200000}.")
    # a decimal final answer (none in the shipped train split) and a text without ####
    assert (
        gsm8k_solution("Half of 5 is 5/2 = <<5/2=2.5>>2.5.\n#### 2.5")
        == "Half of 5 is 5/2 = 2.5.\nThe answer is \\boxed{2.5}."
    )
    assert gsm8k_solution("It is 3 + 4 = <<3+4=7>>7 in all.") == "It is 3 + 4 = 7 in all."


def test_every_shipped_gsm8k_solution_cleans_to_one_boxed_gold() -> None:
    for row in _gsm8k_rows():
        cleaned = gsm8k_solution(row["answer"])
        gold = parse_gold_kind(row["answer"], "gsm8k")
        assert "<<" not in cleaned and ">>" not in cleaned and "####" not in cleaned, cleaned
        assert cleaned.endswith(f"\\boxed{{{gold}}}.") and cleaned.count("\\boxed") == 1


def test_gsm8k_references_verify_with_the_math_verifier(verify_params: VerifyParams) -> None:
    rows = _gsm8k_rows()
    picked = [0, 1, 2, 3, 4, 345, 367, 462, 497, 643, 644, 5715, 5844, 6189]  # plain, commas, negatives
    golds = [parse_gold_kind(rows[i]["answer"], "gsm8k") or "" for i in picked]
    texts = [gsm8k_solution(rows[i]["answer"]) for i in picked]
    assert _verdicts(golds, texts, verify_params) == ["correct"] * len(picked)


def test_the_gsm8k_pool_source_keeps_its_cleaned_solution(params: Params) -> None:
    spec = next(s for s in params.pool.sources if s.name == "gsm8k")
    spec = spec.model_copy(update={"path": str(ROOT / (spec.path or ""))})
    questions = load_source(spec, params.seed, "pool").questions
    assert questions.height == spec.limit
    for gold, solution in questions.select("gold", "solution").iter_rows():
        assert solution.endswith(f"\\boxed{{{gold}}}.") and "<<" not in solution


# -- the generator -----------------------------------------------------------------------------------------


def test_generated_questions_answers_and_ids_are_byte_identical_to_before() -> None:
    """The fixture was written by the generator before it wrote solutions (commit history of this file):
    ids, questions, golds and tiers, so every committed pool, grading and cache key stays valid."""
    frozen = json.loads(FROZEN.read_text())
    columns = frozen["columns"]
    for case in frozen["cases"]:
        made = generate_synthetic(case["per_tier"], case["seed"], case["split"], case["name"], tuple(case["tiers"]))
        digest = hashlib.sha256()
        for row in made.select(columns).iter_rows():
            digest.update(json.dumps(row).encode() + b"\n")
        assert made.height == case["rows"] and digest.hexdigest() == case["sha256"], case
        if "frame" in case:
            assert [list(r) for r in made.select(columns).iter_rows()] == case["frame"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 17])
def test_every_tier_writes_a_solution_that_verifies_against_its_own_answer(
    seed: int, verify_params: VerifyParams
) -> None:
    made = generate_synthetic(20, seed, "pool", "synthetic", TIERS)
    assert made["solution"].null_count() == 0 and set(made["generator_tier"]) == set(TIERS)
    for tier, gold, solution in made.select("generator_tier", "gold", "solution").iter_rows():
        assert solution.endswith(f"The answer is \\boxed{{{gold}}}."), (tier, solution)
        assert "\n" in solution  # a step (or several), then the answer
    statuses = _verdicts(made["gold"].to_list(), made["solution"].to_list(), verify_params)
    assert statuses == ["correct"] * made.height


def test_a_tier3_solution_shows_the_carry() -> None:
    made = generate_synthetic(3, 0, "pool", "synthetic", (3,))
    for question, solution in made.select("question", "solution").iter_rows():
        a, b = (int(x) for x in question.removeprefix("What is ").removesuffix("?").split(" + "))
        assert f"Add the ones: {a % 10} + {b % 10} = {a % 10 + b % 10}; write {(a + b) % 10} and carry 1." in solution
        assert f"Add the tens: {a // 10} + {b // 10} + 1 = {(a + b) // 10}." in solution


# -- code --------------------------------------------------------------------------------------------------


def test_mbpp_reference_code_passes_its_tests_in_the_sandbox(params_raw: dict[str, Any]) -> None:
    params_raw["domain"] = "code"
    params = parse_params(params_raw)
    spec = next(s for s in in_domain(params.pool.sources, "code") if s.name == "mbpp")
    spec = spec.model_copy(update={"path": str(ROOT / (spec.path or "")), "limit": 4})
    questions = load_source(spec, params.seed, "pool").questions
    answers = [reference_answer(s, "code") or "" for s in questions["solution"].to_list()]
    assert all(a.startswith("```python\n") and a.endswith("\n```") and "\r" not in a for a in answers)
    assert _verdicts(questions["gold"].to_list(), answers, params.verify, "code") == ["correct"] * 4


def test_reference_answer_per_domain() -> None:
    assert reference_answer(None, "math") is None and reference_answer("  \n", "code") is None
    assert reference_answer("So $x=2$, \\boxed{2}.\r\n", "math") == "So $x=2$, \\boxed{2}."
    assert reference_answer("def f():\r\n\treturn 1", "code") == "```python\ndef f():\n\treturn 1\n```"
    fenced = "Use a loop.\n```python\ndef f():\n    return 1\n```"
    assert reference_answer(fenced, "code") == fenced


# -- the pipeline ------------------------------------------------------------------------------------------


def _sample(rows: list[tuple[str, str, str, str | None]], level: str = "hard") -> pl.DataFrame:
    """A SAMPLE table of (question_id, source, question, gold, solution) rows."""
    frame = pl.DataFrame(
        [
            {"question_id": q, "source": s, "question": text, "gold": g, "generator_tier": None, "solution": sol}
            for q, s, text, g, sol in [(r[0], r[0].split("-")[0], r[1], r[2], r[3]) for r in rows]
        ],
        schema={"question_id": pl.String, "source": pl.String, "question": pl.String, "gold": pl.String,
                "generator_tier": pl.Int32, "solution": pl.String},
    )  # fmt: skip
    return conform(
        frame.with_columns(
            attempts=pl.lit(5, pl.Int32),
            correct=pl.lit(0, pl.Int32),
            pass_rate=pl.lit(0.0),
            prm_score=pl.lit(0.5),
            tests_passed_share=pl.lit(None, pl.Float64),
            level=pl.lit(level),
            grader_version=pl.lit("fixture"),
            completion_tokens=pl.lit(0, pl.Int64),
            target_share=pl.lit(0.2),
        ),
        SAMPLE,
        "sample",
    )


def _mixed_sample() -> pl.DataFrame:
    made = generate_synthetic(1, 0, "pool", "synthetic", (4, 5))
    gsm8k = _gsm8k_rows()[0]
    rows: list[tuple[str, str, str, str | None]] = [
        (qid, q, g, s) for qid, q, g, s in made.select("question_id", "question", "gold", "solution").iter_rows()
    ]
    rows.append(("gsm8k-train-00000", gsm8k["question"], "72", gsm8k_solution(gsm8k["answer"])))
    rows.append(("user-1", "What is 6 x 7?", "42", None))  # a source without solutions
    rows.append(("user-2", "What is 6 x 8?", "48", "6 x 8 = 46, \\boxed{46}."))  # a wrong reference
    return _sample(rows)


def test_the_solution_column_flows_from_the_pool_through_the_sample() -> None:
    pool = generate_synthetic(4, 0, "pool", "synthetic", TIERS)
    database = conform(
        pool.with_columns(
            attempts=pl.lit(5, pl.Int32),
            correct=pl.lit(0, pl.Int32),
            pass_rate=pl.lit(0.0),
            prm_score=pl.lit(0.5),
            tests_passed_share=pl.lit(None, pl.Float64),
            level=pl.lit("hard"),
            grader_version=pl.lit("fixture"),
            completion_tokens=pl.lit(0, pl.Int64),
        ),
        DATABASE,
        "database",
    )
    shares = {"easy": 0.0, "medium": 0.0, "hard": 1.0, "very_hard": 0.0, "extreme": 0.0}
    sample, _ = sample_questions(database, shares, 6, 0, "nearest")
    solutions = dict(pool.select("question_id", "solution").iter_rows())
    assert sample.height == 6
    for qid, solution in sample.select("question_id", "solution").iter_rows():
        assert solution == solutions[qid] and solution


def test_reference_solutions_record_one_free_answer_per_question(prompts: PromptSet) -> None:
    sample = _mixed_sample()
    table, metrics = reference_solutions(sample, prompts, "math")
    assert list(table.columns) == list(SOLUTIONS) and table.height == sample.height == 5
    assert set(table["model_id"]) == {REFERENCE_MODEL_ID} and set(table["sample_index"]) == {0}
    assert table["prompt_tokens"].sum() == table["completion_tokens"].sum() == table["reasoning_tokens"].sum() == 0
    missing = table.filter(pl.col("question_id") == "user-1").row(0, named=True)
    assert missing["finish_reason"] == "error" and missing["solution"] == ""
    assert missing["error"].startswith("no reference solution: source user gives none")
    assert table.filter(pl.col("question_id") != "user-1")["finish_reason"].to_list() == ["stop"] * 4
    assert metrics["reference"] == {"used": 4, "missing": 1, "missing_by_source": {"user": 1}}
    assert metrics["by_finish_reason"] == {"error": 1, "stop": 4} and metrics["failed_requests"] == 0
    assert metrics["cache"]["hits"] == metrics["cache"]["misses"] == 0 and metrics["cache"]["dollars_spent"] == 0


@pytest.mark.parametrize("keep_unverified", [False, True])
def test_references_are_verified_like_any_teacher_answer(
    prompts: PromptSet, verify_params: VerifyParams, keep_unverified: bool
) -> None:
    table, _ = reference_solutions(_mixed_sample(), prompts, "math")
    checked, rows, metrics = select_solutions(table, prompts, verify_params, keep_unverified)
    assert list(checked.columns) == list(VERIFIED_SOLUTIONS)
    status = dict(checked.select("question_id", "status").iter_rows())
    assert status["user-1"] == "request_error" and status["user-2"] == "wrong"
    assert [s for q, s in status.items() if not q.startswith("user")] == ["correct"] * 3
    kept = sorted(r["question_id"] for r in rows)
    assert kept == sorted([q for q in status if not q.startswith("user")] + (["user-2"] if keep_unverified else []))
    assert metrics["reference"] == {
        "questions": 5,
        "used": 4,
        "missing": 1,
        "verified": 3,
        "verified_fraction": 0.75,
        "failed_verification_by_status": {"wrong": 1},
    }
    gsm8k_row = next(r for r in rows if r["question_id"] == "gsm8k-train-00000")
    assert gsm8k_row["completion"][0]["content"].endswith("\\boxed{72}.") and gsm8k_row["verified"]


def test_no_reference_at_all_fails_in_one_line(prompts: PromptSet) -> None:
    sample = _sample([("user-1", "What is 6 x 7?", "42", None), ("user-2", "What is 1 + 1?", "2", " ")])
    with pytest.raises(
        StageFailure, match=r"none of the 2 sampled questions has a reference solution \(by source: user 2\)"
    ):
        reference_solutions(sample, prompts, "math")
    with pytest.raises(StageFailure, match="the sample is empty"):
        reference_solutions(sample.head(0), prompts, "math")


def _stage(tmp_path: Path, script: str, **paths: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(ROOT / "stages" / script), "--params", str(tmp_path / "params.yaml")]
    for name, path in paths.items():
        args += [f"--{name.replace('_', '-')}", str(path)]
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_the_stage_script_writes_references_and_verify_solutions_keeps_them(
    tmp_path: Path, params_raw: dict[str, Any]
) -> None:
    params_raw["teacher"]["backend"] = "reference"
    params_raw["teacher"]["model"] = "no-such-folder"  # never opened
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_raw, sort_keys=False))
    write_table(_mixed_sample(), SAMPLE, tmp_path / "sample.parquet")
    done = _stage(
        tmp_path,
        "generate_solutions.py",
        sample=tmp_path / "sample.parquet",
        base_model=tmp_path / "no-model",
        prompts=PROMPTS_PATH,
        cache_dir=tmp_path / "cache",
        solutions=tmp_path / "solutions.parquet",
        metrics=tmp_path / "generate.json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "cache").exists()  # nothing asked, nothing cached
    solutions = read_table(tmp_path / "solutions.parquet", SOLUTIONS)
    assert solutions.height == 5 and set(solutions["model_id"]) == {REFERENCE_MODEL_ID}
    assert json.loads((tmp_path / "generate.json").read_text())["reference"]["missing"] == 1
    done = _stage(
        tmp_path,
        "verify_solutions.py",
        solutions=tmp_path / "solutions.parquet",
        prompts=PROMPTS_PATH,
        train=tmp_path / "train.jsonl",
        verdicts=tmp_path / "verdicts.parquet",
        metrics=tmp_path / "verify.json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verify = json.loads((tmp_path / "verify.json").read_text())
    assert verify["kept"] == 3 and verify["reference"]["verified"] == 3 and verify["reference"]["missing"] == 1
    assert len((tmp_path / "train.jsonl").read_text().splitlines()) == 3


# -- params and estimate -----------------------------------------------------------------------------------


def test_params_accept_the_reference_backend_and_refuse_others(params_raw: dict[str, Any]) -> None:
    params_raw["teacher"]["backend"] = "reference"
    assert parse_params(params_raw).teacher.backend == "reference"
    params_raw["teacher"]["backend"] = "human"
    with pytest.raises(ValueError, match=r"teacher\.backend"):
        parse_params(params_raw)


def test_estimate_projects_nothing_to_pay_for_the_reference_teacher(params_raw: dict[str, Any]) -> None:
    params_raw["teacher"].update(backend="reference", attempts=8)
    params = parse_params(params_raw)
    pool = Questions({"pool": [f"What is {i} + 1?" for i in range(40)]}, "test")
    inputs = Inputs(pool, Questions({"b": ["What is 2 + 2?"]}, "test"), None, {}, None)
    rows = {r.stage: r for r in estimate_pipeline(params, load_prompts(PROMPTS_PATH), inputs)}
    teacher = rows["generate_solutions"]
    assert (teacher.backend, teacher.answers, teacher.requests_to_send) == ("reference", params.sample.size, 0)
    assert teacher.prompt_tokens == teacher.completion_tokens == 0 and teacher.usd == 0.0


def test_the_reference_teacher_has_no_model_to_open(params_raw: dict[str, Any]) -> None:
    from adacot.llm import open_teacher_model

    params_raw["teacher"]["backend"] = "reference"
    with pytest.raises(ValueError, match="no model to open"):
        open_teacher_model(parse_params(params_raw), Path("models/base"))


def test_the_stage_script_fails_in_one_line_when_no_question_has_a_reference(
    tmp_path: Path, params_raw: dict[str, Any]
) -> None:
    params_raw["teacher"]["backend"] = "reference"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_raw, sort_keys=False))
    write_table(_sample([("user-1", "What is 6 x 7?", "42", None)]), SAMPLE, tmp_path / "sample.parquet")
    done = _stage(
        tmp_path,
        "generate_solutions.py",
        sample=tmp_path / "sample.parquet",
        base_model=tmp_path / "no-model",
        prompts=PROMPTS_PATH,
        cache_dir=tmp_path / "cache",
        solutions=tmp_path / "solutions.parquet",
        metrics=tmp_path / "generate.json",
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "error: generate_solutions: teacher.backend=reference but none of the 1 sampled questions has a reference "
        "solution (by source: user 1)"
    )
    assert not (tmp_path / "solutions.parquet").exists()
