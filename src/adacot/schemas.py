"""One declared schema per table, and the read/write helpers that enforce it.

Every parquet table the pipeline writes or reads passes through ``write_table``/``read_table`` with its
schema, so a missing column or a wrong type fails loudly at the stage boundary instead of three stages
later. This module does not transform data.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

Schema = dict[str, pl.DataType]

QUESTIONS: Schema = {
    "question_id": pl.String(),
    "source": pl.String(),
    "question": pl.String(),
    "gold": pl.String(),  # math: the answer; code: the tests as JSON (adacot.codetests.CodeTests)
    "generator_tier": pl.Int32(),  # only for generated questions: the generator's intended difficulty
    "solution": pl.String(),  # the source's own worked solution, when its field map names one
}

BENCHMARK: Schema = {"benchmark": pl.String(), **QUESTIONS}

REJECTS: Schema = {
    "question_id": pl.String(),
    "source": pl.String(),
    "question": pl.String(),
    "gold_raw": pl.String(),
    "reason": pl.String(),
}

_GENERATION: Schema = {
    "question_id": pl.String(),
    "sample_index": pl.Int32(),
    "finish_reason": pl.String(),
    "prompt_tokens": pl.Int64(),
    "completion_tokens": pl.Int64(),
    "model_id": pl.String(),
    "prompt_version": pl.String(),
    "reasoning_tokens": pl.Int64(),
    "latency_s": pl.Float64(),
    "served_model": pl.String(),
    "error": pl.String(),  # why a request failed for good (finish_reason "error"); null when answered
}

# A verdict (adacot.verify.Verdict) as columns; tests_passed / tests_total are for code (null for math).
_VERDICT: Schema = {
    "status": pl.String(),
    "reason": pl.String(),
    "extracted": pl.String(),
    "tests_passed": pl.Int32(),
    "tests_total": pl.Int32(),
}

# A role's raw answers, one row per (question, sample index), before any verdict (responses.py).
RESPONSES: Schema = {**_GENERATION, "text": pl.String()}

ATTEMPTS: Schema = {**_GENERATION, "attempt": pl.String(), **_VERDICT}

DATABASE: Schema = {
    **QUESTIONS,
    "attempts": pl.Int32(),
    "correct": pl.Int32(),
    "pass_rate": pl.Float64(),
    "prm_score": pl.Float64(),  # the failed reasoning's PRM score (null: solved, or rule pass_rate_bands)
    "tests_passed_share": pl.Float64(),  # code: mean share of its tests the k attempts passed (null: solved)
    "level": pl.String(),
    "grader_version": pl.String(),
    "completion_tokens": pl.Int64(),
}

PRM_SCORES: Schema = {
    "question_id": pl.String(),
    "sample_index": pl.Int32(),
    "step_index": pl.Int32(),  # null: the attempt had no reasoning to score
    "step": pl.String(),
    "step_score": pl.Float64(),  # null: no step, or a score that was no number in [0, 1] (see error)
    "grader": pl.String(),
    "error": pl.String(),  # why step_score is missing although the step was scored (NaN, inf, out of range)
}

# The sample records each row's requested level share, so the sample (and what follows) is rebuilt whenever
# the distribution changes; the response cache makes that rerun free where the questions are the same.
SAMPLE: Schema = {**DATABASE, "target_share": pl.Float64()}

SOLUTIONS: Schema = {
    **_GENERATION,
    "question": pl.String(),
    "gold": pl.String(),
    "level": pl.String(),
    "solution": pl.String(),
}

VERIFIED_SOLUTIONS: Schema = {**SOLUTIONS, **_VERDICT, "kept": pl.Boolean()}

EVAL_RESPONSES: Schema = {"benchmark": pl.String(), **_GENERATION, "response": pl.String(), **_VERDICT}


class SchemaError(ValueError):
    """A table does not match its declared schema."""


def conform(frame: pl.DataFrame, schema: Schema, name: str) -> pl.DataFrame:
    """Select the schema's columns in order, cast losslessly, and fail naming any missing column."""
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise SchemaError(f"{name}: missing column(s) {missing}; have {frame.columns}")
    try:
        return frame.select([pl.col(c).cast(t, strict=True) for c, t in schema.items()])
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as error:
        raise SchemaError(f"{name}: a column does not fit its declared type: {error}") from None


def empty(schema: Schema) -> pl.DataFrame:
    """An empty frame with the schema's columns and types."""
    return pl.DataFrame(schema=schema)


def write_table(frame: pl.DataFrame, schema: Schema, path: Path) -> None:
    """Check ``frame`` against ``schema`` and write it as parquet (parent folders created)."""
    checked = conform(frame, schema, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    checked.write_parquet(path)


def read_table(path: Path, schema: Schema) -> pl.DataFrame:
    """Read a parquet table and check it against ``schema``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run the stage that writes it (dvc repro)")
    return conform(pl.read_parquet(path), schema, str(path))
