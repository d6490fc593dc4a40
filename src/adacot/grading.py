"""Grading: the student's k attempts per question, each with its verdict.

``grade_attempts`` asks the student model k times per question (through the response cache) and checks
every attempt with the shared verifier. Turning attempts into levels is ``levels.py`` (the build_database
stage), so changing the level rule never reruns the student. This module does not sample or train.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from adacot.config import VerifyParams
from adacot.errors import StageFailure
from adacot.llm import ChatModel, Price, ResponseCache, Sampling
from adacot.llm.spend import spend_block
from adacot.prompts import PromptSet
from adacot.responses import collect_responses
from adacot.schemas import ATTEMPTS, conform
from adacot.verify.frames import mean_tests_passed_share, status_counts, verdict_columns


def grade_attempts(
    questions: pl.DataFrame,
    model: ChatModel,
    prompts: PromptSet,
    sampling: Sampling,
    attempts: int,
    verify: VerifyParams,
    cache: ResponseCache | None,
    batch_requests: int = 256,
    price: Price | None = None,
    domain: str = "math",
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every student attempt with its verdict, and metrics (counts by status, tokens, cache, cost).

    Code attempts run against every test of their question in the sandbox (a failing one too, so its
    share of tests passed can level the question: ``levels.rule: tests_passed``).

    No questions is a ``StageFailure``: levels of nothing would make every later stage empty.
    """
    if questions.height == 0:
        raise StageFailure(
            "grade_questions: the question table is empty, nothing to grade; prepare_pool's "
            "metrics say what it kept and rejected (the `pool` params set the sizes)"
        )
    frame, cache_metrics = collect_responses(
        questions, model, prompts, "student", sampling, attempts, cache, batch_requests, "grade", price
    )
    golds = dict(zip(questions["question_id"], questions["gold"], strict=True))
    verdicts = verdict_columns(
        [golds[q] for q in frame["question_id"]],
        frame["text"].to_list(),
        frame["finish_reason"].to_list(),
        verify,
        frame["error"].to_list(),
        domain=domain,
        count_all_tests=True,
    )
    table = conform(pl.concat([frame.rename({"text": "attempt"}), verdicts], how="horizontal"), ATTEMPTS, "attempts")
    metrics = {
        "questions": questions.height,
        "attempts": table.height,
        "by_status": status_counts(table["status"]),
        # prepare_pool rejects ungradable golds, so this stays 0 unless a pool bypassed it.
        "questions_with_unparseable_gold": table.filter(pl.col("status") == "unparseable_gold")[
            "question_id"
        ].n_unique(),
        "completion_tokens": int(table["completion_tokens"].sum()),
        "cache": cache_metrics,
        **spend_block(model),  # a served student: projected vs actual spend
    }
    if domain == "code":
        metrics["programs_run"] = table.filter(pl.col("tests_total") > 0).height
        metrics["mean_tests_passed_share"] = mean_tests_passed_share(table)
    return table, metrics
