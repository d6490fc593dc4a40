"""Tests for adacot.generation: teacher solutions recorded in full, one kept per question, TRL-shaped SFT rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import FakeChatModel

from adacot.config import VerifyParams
from adacot.errors import StageFailure
from adacot.generation import generate_solutions, require_kept, select_solutions
from adacot.llm import ResponseCache, Sampling
from adacot.prompts import PromptSet
from adacot.schemas import SOLUTIONS, VERIFIED_SOLUTIONS

SAMPLE = {
    "q1": ("What is 2 + 3?", "5", "easy"),
    "q2": ("What is 27 + 48?", "75", "hard"),
    "q3": ("Ben has 6 books and gives away 2. How many books does Ben have left?", "4", "medium"),
    "q4": ("What is 9 + 9?", "18", "very_hard"),
    "q5": ("What is 1 + 1?", "2", "extreme"),
}

# Teacher answers per question, sample 0..2, as (text, finish_reason).
TEACHER: dict[str, list[tuple[str, str]]] = {
    # wrong first, then two verified ones: the first verified (sample 1) is kept.
    "q1": [("2 + 3 = 6. \\boxed{6}", "stop"), ("  2 + 3 = 5. \\boxed{5}  ", "stop"), ("\\boxed{5}", "stop")],
    # nothing verifies: a complete wrong one (0), one without an answer (1), a truncated one (2).
    "q2": [("27 + 48 = 65. \\boxed{65}", "stop"), ("Adding the tens first", "stop"), ("27 + 48 is 7", "length")],
    # truncated first, then a complete wrong one: keep_unverified may only pick the complete one.
    "q3": [("Ben had 6 and then 2", "length"), ("6 - 2 = 3. \\boxed{3}", "stop"), ("6 + 2 = 8", "length")],
    # only truncated answers: never kept.
    "q4": [("9 + 9 is", "length"), ("Nine and nine make", "length"), ("The sum is 1", "length")],
    # cut off after a correct boxed answer: verified, so kept.
    "q5": [("1 + 1 = \\boxed{2} and now let me check", "length"), ("\\boxed{3}", "stop"), ("\\boxed{2}", "stop")],
}


def _sample() -> pl.DataFrame:
    return pl.DataFrame(
        [{"question_id": qid, "question": q, "gold": g, "level": lv} for qid, (q, g, lv) in SAMPLE.items()]
    )


def _solutions(
    prompts: PromptSet, sampling: Sampling, cache: ResponseCache | None = None
) -> tuple[pl.DataFrame, dict, FakeChatModel]:
    fake = FakeChatModel({SAMPLE[qid][0]: answers for qid, answers in TEACHER.items()}, model_id="teacher@1")
    table, metrics = generate_solutions(_sample(), fake, prompts, sampling, 3, cache, batch_requests=2)
    return table, metrics, fake


def test_generate_solutions_records_every_attempt(tmp_path: Path, prompts: PromptSet, sampling: Sampling) -> None:
    table, metrics, fake = _solutions(prompts, sampling, ResponseCache(tmp_path))
    assert list(table.columns) == list(SOLUTIONS)
    assert table.height == 15 == fake.requests
    assert all(user.startswith("Solve the following problem step by step") for user, _ in fake.asked)
    assert set(table["model_id"]) == {"teacher@1"}
    joined = {r["question_id"]: (r["question"], r["gold"], r["level"]) for r in table.iter_rows(named=True)}
    assert joined == SAMPLE
    assert metrics["questions"] == 5 and metrics["solutions"] == 15
    assert metrics["by_finish_reason"] == {"length": 7, "stop": 8}
    assert metrics["prompt_tokens"] == int(table["prompt_tokens"].sum()) > 0
    assert metrics["completion_tokens"] == int(table["completion_tokens"].sum())
    assert metrics["cache"]["misses"] == 15


# keep_unverified -> expected kept sample index per question (None: no kept solution)
KEPT_CASES = {
    False: {"q1": 1, "q2": None, "q3": None, "q4": None, "q5": 0},
    True: {"q1": 1, "q2": 0, "q3": 1, "q4": None, "q5": 0},
}


@pytest.mark.parametrize("keep_unverified", [False, True])
def test_select_solutions_keeps_first_eligible(
    prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams, keep_unverified: bool
) -> None:
    solutions, _, _ = _solutions(prompts, sampling)
    table, rows, metrics = select_solutions(solutions, prompts, verify_params, keep_unverified)
    expected = KEPT_CASES[keep_unverified]

    # Every solution is retained in the verdicts table, with a verdict and a reason.
    assert list(table.columns) == list(VERIFIED_SOLUTIONS)
    assert table.height == solutions.height == 15
    assert table["status"].null_count() == 0
    assert all(reason for reason in table["reason"])
    kept = {r["question_id"]: r["sample_index"] for r in table.filter(pl.col("kept")).iter_rows(named=True)}
    assert kept == {qid: index for qid, index in expected.items() if index is not None}
    # A truncated solution is never kept, whatever the setting.
    truncated = table.filter(pl.col("status") == "truncated")
    assert truncated.height > 0 and not truncated["kept"].any()

    statuses = {(r["question_id"], r["sample_index"]): r["status"] for r in table.iter_rows(named=True)}
    assert statuses[("q1", 0)] == "wrong" and statuses[("q1", 1)] == "correct"
    assert statuses[("q2", 1)] == "no_answer" and statuses[("q4", 0)] == "truncated"
    assert statuses[("q5", 0)] == "correct"

    assert [r["question_id"] for r in rows] == sorted(kept)
    assert metrics["solutions"] == 15 and metrics["questions"] == 5
    assert metrics["kept"] == len(rows) == len(kept)
    assert metrics["rejected"] == 15 - len(kept)
    assert metrics["questions_without_kept_solution"] == 5 - len(kept)
    assert metrics["questions_with_verified_solution"] == 2
    assert metrics["kept_unverified"] == (2 if keep_unverified else 0)
    assert sum(metrics["by_status"].values()) == 15
    assert metrics["verified_fraction"] == pytest.approx(float((table["status"] == "correct").mean()))


def test_sft_rows_are_trl_conversational(prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams) -> None:
    solutions, _, _ = _solutions(prompts, sampling)
    _, rows, _ = select_solutions(solutions, prompts, verify_params, keep_unverified=True)
    by_id = {r["question_id"]: r for r in rows}
    for row in rows:
        assert set(row) == {"question_id", "level", "verified", "prompt", "completion"}
        question = SAMPLE[row["question_id"]][0]
        # The student learns under its own prompt, not the teacher's.
        assert row["prompt"] == list(prompts.render("student", question))
        assert row["prompt"][-1]["role"] == "user" and question in row["prompt"][-1]["content"]
        assert all(set(m) == {"role", "content"} for m in row["prompt"])
        assert len(row["completion"]) == 1 and row["completion"][0]["role"] == "assistant"
        assert row["level"] == SAMPLE[row["question_id"]][2]
    assert by_id["q1"]["completion"][0]["content"] == "2 + 3 = 5. \\boxed{5}"  # stripped
    assert by_id["q1"]["verified"] is True
    assert by_id["q2"]["verified"] is False
    assert by_id["q2"]["completion"][0]["content"] == TEACHER["q2"][0][0]


def test_select_solutions_order_independent(
    prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams
) -> None:
    solutions, _, _ = _solutions(prompts, sampling)
    a, rows_a, _ = select_solutions(solutions, prompts, verify_params, keep_unverified=False)
    b, rows_b, _ = select_solutions(solutions.reverse(), prompts, verify_params, keep_unverified=False)
    assert a.equals(b)
    assert rows_a == rows_b


def test_no_kept_solution_fails_with_the_reasons(
    prompts: PromptSet, sampling: Sampling, verify_params: VerifyParams
) -> None:
    # Every request failed (the served-teacher review): the verdicts say request_error, and
    # require_kept turns "0 kept" into a one-line stage failure instead of an empty SFT set.
    solutions, _ = generate_solutions(
        _sample(), _AllMayFail(lambda user, number: ("", "error")), prompts, sampling, 3, None
    )
    table, rows, metrics = select_solutions(solutions, prompts, verify_params, keep_unverified=False)
    assert rows == [] and set(table["status"]) == {"request_error"}
    with pytest.raises(StageFailure) as failure:
        require_kept(metrics, False, "data/sft/verdicts.parquet")
    assert str(failure.value) == (
        "verify_solutions kept 0 of 15 teacher solutions for SFT (by status: request_error 15); every verdict and "
        "its reason is in data/sft/verdicts.parquet; fix the teacher (generate_solutions' metrics) or set "
        "teacher.keep_unverified: true"
    )
    _, _, some = select_solutions(_solutions(prompts, sampling)[0], prompts, verify_params, False)
    require_kept(some, False, "x")  # kept rows: nothing to say


class _AllMayFail(FakeChatModel):
    """The scripted fake as a served model whose budget lets every request fail (to reach verification)."""

    max_failed_fraction = 1.0


def test_an_empty_sample_fails_before_asking(prompts: PromptSet, sampling: Sampling) -> None:
    fake = FakeChatModel({})
    with pytest.raises(StageFailure, match="the sample is empty, nothing to ask the teacher"):
        generate_solutions(_sample().head(0), fake, prompts, sampling, 3, None)
    assert fake.calls == []


def test_verify_stage_writes_the_verdicts_then_fails_in_one_line(
    tmp_path: Path, prompts: PromptSet, sampling: Sampling
) -> None:
    import subprocess
    import sys

    from conftest import PARAMS_PATH, PROMPTS_PATH

    from adacot.schemas import read_table, write_table

    solutions, _ = generate_solutions(
        _sample(), _AllMayFail(lambda user, number: ("", "error")), prompts, sampling, 3, None
    )
    write_table(solutions, SOLUTIONS, tmp_path / "solutions.parquet")
    done = subprocess.run(
        [
            sys.executable,
            "stages/verify_solutions.py",
            "--params",
            str(PARAMS_PATH),
            "--solutions",
            str(tmp_path / "solutions.parquet"),
            "--prompts",
            str(PROMPTS_PATH),
            "--train",
            str(tmp_path / "train.jsonl"),
            "--verdicts",
            str(tmp_path / "verdicts.parquet"),
            "--metrics",
            str(tmp_path / "metrics.json"),
        ],
        cwd=PARAMS_PATH.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "error: verify_solutions kept 0 of 15 teacher solutions for SFT "
        "(by status: request_error 15); every verdict and its reason is in"
    )
    verdicts = read_table(tmp_path / "verdicts.parquet", VERIFIED_SOLUTIONS)
    assert verdicts.height == 15 and set(verdicts["status"]) == {"request_error"}
    assert not (tmp_path / "train.jsonl").exists() and not (tmp_path / "metrics.json").exists()
