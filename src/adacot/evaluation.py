"""Evaluation: pass@1 of one model on the benchmark sets, averaged over n samples, with standard error.

pass@1 for a question is the fraction of its n samples verified correct by the shared verifier; a
benchmark's score is the mean over questions, and its standard error is the sample standard deviation of
the per-question scores over sqrt(questions). This module does not compare models (``dvc metrics diff``
does) and does not load them.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from adacot.config import VerifyParams
from adacot.errors import StageFailure
from adacot.llm import ChatModel, ResponseCache, Sampling
from adacot.prompts import PromptSet
from adacot.responses import collect_responses
from adacot.schemas import BENCHMARK, EVAL_RESPONSES, conform
from adacot.verify.frames import status_counts, verdict_columns


def pass_at_1(per_question: list[float]) -> tuple[float, float]:
    """(mean, standard error) of per-question pass rates; the error is 0 for fewer than two questions."""
    if not per_question:
        return 0.0, 0.0
    mean = sum(per_question) / len(per_question)
    if len(per_question) < 2:
        return mean, 0.0
    var = sum((x - mean) ** 2 for x in per_question) / (len(per_question) - 1)
    return mean, math.sqrt(var / len(per_question))


def evaluate_model(
    benchmarks: pl.DataFrame,
    model: ChatModel,
    prompts: PromptSet,
    sampling: Sampling,
    samples: int,
    verify: VerifyParams,
    cache: ResponseCache | None,
    batch_requests: int = 256,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every response with its verdict, and pass@1 ± stderr per benchmark.

    No benchmark questions is a ``StageFailure``: a pass@1 of nothing would read as a score of 0.
    """
    benchmarks = conform(benchmarks, BENCHMARK, "benchmarks")
    if benchmarks.height == 0:
        raise StageFailure(
            "evaluate: there are no benchmark questions; prepare_pool's `pool.gsm8k_test_limit` "
            "and `pool.heldout_per_tier` set how many it draws"
        )
    frame, cache_metrics = collect_responses(
        benchmarks, model, prompts, "student", sampling, samples, cache, batch_requests, "evaluate"
    )
    info = benchmarks.select("question_id", "benchmark", "gold")
    frame = frame.join(info, on="question_id", how="left")
    verdicts = verdict_columns(
        frame["gold"].to_list(),
        frame["text"].to_list(),
        frame["finish_reason"].to_list(),
        verify,
        frame["error"].to_list(),
    )
    table = conform(
        pl.concat([frame.rename({"text": "response"}), verdicts], how="horizontal"), EVAL_RESPONSES, "responses"
    )
    per_benchmark: dict[str, Any] = {}
    for name in sorted(set(table["benchmark"].to_list())):
        sub = table.filter(pl.col("benchmark") == name)
        scores = sub.group_by("question_id").agg((pl.col("status") == "correct").mean().alias("p"))["p"].to_list()
        mean, stderr = pass_at_1(scores)
        per_benchmark[name] = {
            "pass@1": mean,
            "stderr": stderr,
            "questions": len(scores),
            "samples": samples,
            "by_status": status_counts(sub["status"]),
        }
    metrics = {
        "model_id": model.model_id,
        "benchmarks": per_benchmark,
        "completion_tokens": int(table["completion_tokens"].sum()),
        "cache": cache_metrics,
    }
    return table, metrics
