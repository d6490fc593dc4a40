"""Accuracy broken down by difficulty: pass@1 of each evaluated model per benchmark, per level, per tier.

The evaluation set is graded like the pool (stage ``grade_questions@eval``), so every benchmark question has
a level on the student's own scale; generated questions also have the generator's tier. This module joins
the scored evaluation responses with those labels and returns the figures (mean pass@1 over questions with
its standard error, and the share of answers cut at the token limit) and a long table for DVC plots. It is
pure: frames in, dicts and frames out. It is not for running models (``evaluation``) or for sweeps over
experiments (``ablation``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from adacot.stats import mean_and_stderr
from adacot.vocabulary import LEVELS

GROUPINGS = ("level", "generator_tier")


def _per_question(responses: pl.DataFrame) -> pl.DataFrame:
    # One row per (benchmark, question): the share of its samples that are correct and that were truncated.
    return responses.group_by("benchmark", "question_id").agg(
        (pl.col("status") == "correct").cast(pl.Float64).mean().alias("pass1"),
        (pl.col("finish_reason") == "length").cast(pl.Float64).mean().alias("truncated"),
    )


def _figures(rows: pl.DataFrame) -> dict[str, Any]:
    mean, stderr = mean_and_stderr(rows["pass1"].to_list())
    return {
        "pass@1": mean,
        "stderr": stderr,
        "questions": rows.height,
        "truncation_rate": float(rows["truncated"].mean() or 0.0),  # type: ignore[arg-type]
    }


def _key_order(grouping: str, keys: list[Any]) -> list[Any]:
    if grouping == "level":
        return [level for level in LEVELS if level in keys]
    return sorted(keys)


def accuracy_breakdown(
    responses: Mapping[str, pl.DataFrame], benchmarks: pl.DataFrame, eval_levels: pl.DataFrame
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Per model (``responses`` maps a name such as "base" to its scored EVAL_RESPONSES rows): pass@1 per
    benchmark, and per level and per generator tier within it, with "all" over every benchmark pooled.

    ``eval_levels`` is the evaluation set's database (question_id, level). A question without a level
    (none graded) or without a tier (not generated) is left out of that grouping only. Returns the
    metrics dict and a long table (model, benchmark, grouping, key, pass@1, stderr, questions) for plots.
    """
    labels = benchmarks.select("question_id", "generator_tier").join(
        eval_levels.select("question_id", "level"), on="question_id", how="left"
    )
    metrics: dict[str, Any] = {}
    long_rows: list[dict[str, Any]] = []
    for model, scored in responses.items():
        per_q = _per_question(scored).join(labels, on="question_id", how="left")
        by_bench: dict[str, Any] = {}
        names = sorted(per_q["benchmark"].unique().to_list())
        for bench in [*names, "all"]:
            rows = per_q if bench == "all" else per_q.filter(pl.col("benchmark") == bench)
            entry = _figures(rows)
            for grouping in GROUPINGS:
                labelled = rows.filter(pl.col(grouping).is_not_null())
                groups = {key[0]: part for key, part in labelled.group_by(grouping)}
                if not groups:
                    continue
                entry[f"by_{grouping}"] = {}
                for key in _key_order(grouping, list(groups)):
                    figures = _figures(groups[key])
                    entry[f"by_{grouping}"][str(key)] = figures
                    long_rows.append(
                        {"model": model, "benchmark": bench, "grouping": grouping, "key": str(key)}
                        | {k: figures[k] for k in ("pass@1", "stderr", "questions")}
                    )
            by_bench[bench] = entry
        metrics[model] = by_bench
    schema = {
        "model": pl.String(),
        "benchmark": pl.String(),
        "grouping": pl.String(),
        "key": pl.String(),
        "pass@1": pl.Float64(),
        "stderr": pl.Float64(),
        "questions": pl.Int64(),
    }
    return metrics, pl.DataFrame(long_rows, schema=schema)


def level_plot_table(long: pl.DataFrame, benchmark: str = "all") -> pl.DataFrame:
    """One row per level, one column per model: pass@1 on ``benchmark`` (the DVC plot's data)."""
    rows = long.filter((pl.col("grouping") == "level") & (pl.col("benchmark") == benchmark))
    if rows.is_empty():
        return pl.DataFrame({"level": []}, schema={"level": pl.String()})
    wide = rows.pivot(on="model", index="key", values="pass@1").rename({"key": "level"})
    order = {level: i for i, level in enumerate(LEVELS)}
    return wide.sort(pl.col("level").replace_strict(order, default=len(order)))
