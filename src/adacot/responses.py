"""Ask a role's model for n samples per question, as one table row per (question, sample index).

Grading (the student's attempts), generation (the teacher's solutions) and evaluation (the responses on
the benchmarks) all ask a model the same way: render each question with the role's prompt, answer from
the response cache first, ask the model for the rest, and keep every sample with its accounting
(finish_reason, tokens, model id, latency, error). ``collect_responses`` is that one way, and so the one
place where a stage whose requests failed beyond ``api.max_failed_fraction`` stops (``StageFailure``,
after every answer that arrived is cached). It does not judge answers (``adacot.verify``) and does not
decide levels (``levels.py``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from adacot.llm import ChatModel, Price, ResponseCache, Sampling, cached_complete, failure_budget
from adacot.prompts import PromptSet
from adacot.schemas import RESPONSES


def collect_responses(
    questions: pl.DataFrame,
    model: ChatModel,
    prompts: PromptSet,
    role: str,
    sampling: Sampling,
    n: int,
    cache: ResponseCache | None,
    batch_requests: int,
    desc: str,
    price: Price | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per (question, sample index) with the completion and its accounting.

    The metrics are the cache ledger (hits, misses, errors, tokens and dollars spent and saved) plus, for
    a remote model, what its client did (requests sent, retries by cause). More failed requests than the
    model's ``failure_budget`` (a served role's ``api.max_failed_fraction``; 0 for a local engine) raise
    ``StageFailure``; fewer stay rows with ``finish_reason == "error"``, counted in ``cache.errors``.
    """
    conversations = [prompts.render(role, q) for q in questions["question"]]
    completions, stats = cached_complete(
        model,
        conversations,
        sampling,
        n,
        cache,
        batch_requests=batch_requests,
        desc=desc,
        price=price,
        max_failed_fraction=failure_budget(model),
    )
    rows: list[dict[str, Any]] = []
    for qid, samples in zip(questions["question_id"], completions, strict=True):
        for index, c in enumerate(samples):
            rows.append(
                {
                    "question_id": qid,
                    "sample_index": index,
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "model_id": c.model_id,
                    "prompt_version": prompts.version,
                    "reasoning_tokens": c.reasoning_tokens,
                    "latency_s": c.latency_s,
                    "served_model": c.served_model,
                    "error": c.error,
                }
            )
    frame = pl.DataFrame(rows, schema=RESPONSES)
    metrics = stats.as_metrics()
    client_stats = getattr(model, "stats", None)
    if client_stats is not None and hasattr(client_stats, "as_metrics"):
        metrics["client"] = client_stats.as_metrics()
    return frame, metrics
