"""Sampling the graded database by a difficulty distribution, with exact integer quotas.

``allocate_quotas`` turns target shares into integer quotas that sum to N (largest remainder method),
caps each level at what it holds, and applies the shortage policy: ``nearest`` hands a short level's
remainder to the nearest levels that still have questions, ``fewer`` samples fewer, ``fail`` raises.
``sample_questions`` draws the quotas without replacement with a seed, so the same seed gives the same
rows; with ``strategy="random"`` it ignores levels and draws N uniformly from the whole pool (the
non-adaptive baseline of the ablation). ``eval_shares`` turns an evaluation set's levels into P_eval,
and ``eval_overlap`` checks that no sampled question is an evaluation question. A draw of 0 questions
fails the stage (``StageFailure``): an empty sample would only hand an empty training set down the
pipeline. This module does not grade and does not choose the distribution's weights (params do).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from adacot.errors import StageFailure
from adacot.schemas import DATABASE, SAMPLE, conform
from adacot.vocabulary import LEVELS


class ShortageError(StageFailure, ValueError):
    """A level holds fewer questions than its quota and the policy is ``fail`` (a one-line stage failure)."""


def largest_remainder(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Integer quotas summing to ``n`` that are the closest integers to ``n * share`` (ties: easier first)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("shares must have a positive sum")
    exact = {level: n * share / total for level, share in shares.items()}
    quotas = {level: math.floor(value) for level, value in exact.items()}
    left = n - sum(quotas.values())
    order = sorted(shares, key=lambda lv: (-(exact[lv] - quotas[lv]), LEVELS.index(lv) if lv in LEVELS else 0))
    for level in order[:left]:
        quotas[level] += 1
    return quotas


def _nearest_order(level: str) -> list[str]:
    """Other levels by distance from ``level``; at equal distance the easier one first."""
    here = LEVELS.index(level)
    return sorted((lv for lv in LEVELS if lv != level), key=lambda lv: (abs(LEVELS.index(lv) - here), LEVELS.index(lv)))


def allocate_quotas(
    n: int, shares: dict[str, float], available: dict[str, int], shortage: str
) -> tuple[dict[str, int], dict[str, int]]:
    """(quotas, ideal) per level: ideal by largest remainder, quotas after the shortage policy."""
    ideal = largest_remainder(n, {lv: shares.get(lv, 0.0) for lv in LEVELS})
    quotas = {lv: min(ideal[lv], available.get(lv, 0)) for lv in LEVELS}
    short = {lv: ideal[lv] - quotas[lv] for lv in LEVELS if ideal[lv] > quotas[lv]}
    if not short:
        return quotas, ideal
    if shortage == "fail":
        detail = ", ".join(f"{lv}: want {ideal[lv]}, have {available.get(lv, 0)}" for lv in short)
        raise ShortageError(f"levels short of questions ({detail}); set sample.shortage to nearest or fewer")
    if shortage == "nearest":
        for level, deficit in short.items():
            for neighbour in _nearest_order(level):
                room = available.get(neighbour, 0) - quotas[neighbour]
                take = min(room, deficit)
                quotas[neighbour] += take
                deficit -= take
                if deficit == 0:
                    break
    return quotas, ideal


def sample_questions(
    database: pl.DataFrame, shares: dict[str, float], n: int, seed: int, shortage: str, strategy: str = "adaptive"
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Draw the sample and report requested vs effective distribution."""
    database = conform(database, DATABASE, "database").sort("question_id")
    available = {lv: int((database["level"] == lv).sum()) for lv in LEVELS}
    if strategy == "random":
        size = min(n, database.height)
        if size < n and shortage == "fail":
            raise ShortageError(f"the pool holds {database.height} questions, fewer than sample.size={n}")
        sample = database.sample(n=size, seed=seed, shuffle=True)
        quotas = {lv: int((sample["level"] == lv).sum()) for lv in LEVELS}
        ideal = quotas
    elif strategy == "adaptive":
        quotas, ideal = allocate_quotas(n, shares, available, shortage)
        parts = []
        for index, level in enumerate(LEVELS):
            pool = database.filter(pl.col("level") == level)
            if quotas[level]:
                parts.append(pool.sample(n=quotas[level], seed=seed + index, shuffle=True))
        sample = pl.concat(parts) if parts else database.head(0)
    else:
        raise ValueError(f"unknown sample strategy {strategy!r}: use adaptive or random")
    if sample.height == 0:
        held = ", ".join(f"{lv} {available[lv]}" for lv in LEVELS)
        wanted = ", ".join(lv for lv in LEVELS if shares.get(lv, 0.0) > 0) or "none"
        raise StageFailure(
            f"sample_questions drew 0 questions: the database holds {database.height} (by level: {held}), the "
            f"distribution wants {wanted}, sample.shortage={shortage}; give weight to a level that has questions "
            "or set sample.shortage: nearest"
        )
    sample = conform(
        sample.with_columns(target_share=pl.col("level").replace_strict(shares, default=0.0, return_dtype=pl.Float64)),
        SAMPLE,
        "sample",
    )
    size = sample.height
    metrics = {
        "strategy": strategy,
        "requested_size": n,
        "effective_size": size,
        "available": available,
        "requested_quota": ideal,
        "effective_quota": quotas,
        "requested_distribution": {lv: shares.get(lv, 0.0) for lv in LEVELS},
        "effective_distribution": {lv: (quotas[lv] / size if size else 0.0) for lv in LEVELS},
        "shortage_policy": shortage,
    }
    return sample, metrics


def eval_shares(eval_database: pl.DataFrame) -> dict[str, float]:
    """P_eval: the share of each level in the student's graded evaluation set."""
    if eval_database.height == 0:
        raise ValueError("dist.from=eval but the evaluation set has no graded questions")
    return {lv: int((eval_database["level"] == lv).sum()) / eval_database.height for lv in LEVELS}


def eval_overlap(sample: pl.DataFrame, eval_questions: pl.DataFrame) -> int:
    """Sampled questions whose normalized text is an evaluation question (must be 0: no training on eval)."""
    from adacot.pools import normalize_text

    eval_keys = {normalize_text(q) for q in eval_questions["question"].to_list()}
    return sum(normalize_text(q) in eval_keys for q in sample["question"].to_list())
