"""Export the kept SFT rows as a dataset others can train on: a `datasets` folder, chat JSONL, and a card.

Each row is one kept teacher solution with what made it: question id, source, level, the student's pass
rate and PRM score on the question, whether it verified, the teacher, tokens, and ``messages`` (the
student's prompt as the pipeline renders it, then the solution as the assistant turn: TRL's
conversational format). The card counts rows per level and source and lists the params that made the
data. This module builds frames and text; ``adacot export`` writes them. It does not train.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import yaml

from adacot.errors import StageFailure
from adacot.prompts import PromptSet
from adacot.schemas import SAMPLE, VERIFIED_SOLUTIONS, conform
from adacot.vocabulary import LEVELS

# The params sections that decide what the data holds (not engine or server settings).
CARD_SECTIONS = ("seed", "pool", "benchmarks", "model", "grade", "prm", "levels", "dist", "sample", "teacher", "verify")


def export_table(verdicts: pl.DataFrame, sample: pl.DataFrame, prompts: PromptSet) -> pl.DataFrame:
    """One row per kept solution, with its question's grading and the chat ``messages`` to train on."""
    verdicts = conform(verdicts, VERIFIED_SOLUTIONS, "verdicts")
    sample = conform(sample, SAMPLE, "sample")
    kept = verdicts.filter(pl.col("kept"))
    if kept.height == 0:
        raise StageFailure("export: no kept solution to export; verify_solutions' metrics say why")
    info = sample.select("question_id", "source", "pass_rate", "prm_score").unique("question_id", keep="first")
    table = kept.join(info, on="question_id", how="left").sort("question_id")
    messages = [
        [*prompts.render("student", question), {"role": "assistant", "content": solution.strip()}]
        for question, solution in zip(table["question"], table["solution"], strict=True)
    ]
    return table.select(
        "question_id",
        "source",
        "level",
        "pass_rate",
        "prm_score",
        (pl.col("status") == "correct").alias("verified"),
        # A local engine leaves served_model empty: the teacher is then its model id.
        pl.when(pl.col("served_model").fill_null("") != "")
        .then(pl.col("served_model"))
        .otherwise(pl.col("model_id"))
        .alias("teacher"),
        "prompt_tokens",
        "completion_tokens",
        "question",
        "gold",
        "solution",
        "prompt_version",
        pl.Series("messages", messages, dtype=pl.List(pl.Struct({"role": pl.String, "content": pl.String}))),
    )


def dataset_card(table: pl.DataFrame, params: dict[str, Any], name: str) -> str:
    """A Markdown dataset card: what the rows are, counts per level and source, and the params that made them."""
    by_level = dict(table["level"].value_counts().iter_rows())
    by_source = dict(sorted(table["source"].fill_null("?").value_counts().iter_rows()))
    teachers = sorted(set(table["teacher"].to_list()))
    lines = [
        "---",
        "task_categories: [text-generation]",
        "tags: [chain-of-thought, sft, adacot]",
        "---",
        f"# {name}",
        "",
        "Chain-of-thought SFT data built by [adacot](https://arxiv.org/abs/2504.11919)-style adaptive difficulty "
        "grading: questions graded by the student's own pass rate (then a process-reward grader for the "
        "failures), sampled by a difficulty distribution, answered by a teacher, kept when verified.",
        "",
        f"- rows: {table.height} (verified: {int(table['verified'].sum())})",
        f"- teacher: {', '.join(teachers)}",
        f"- completion tokens: {int(table['completion_tokens'].sum())}",
        "",
        "| level | rows |",
        "|---|---|",
        *(f"| {level} | {by_level.get(level, 0)} |" for level in LEVELS),
        "",
        "| source | rows |",
        "|---|---|",
        *(f"| {source} | {count} |" for source, count in by_source.items()),
        "",
        "Columns: `messages` (the student's prompt, then the solution as the assistant turn), `question_id`, "
        "`source`, `level`, `pass_rate` (the student's, over its attempts), `prm_score` (its failed reasoning's, "
        "null when solved), `verified`, `teacher`, `prompt_tokens`, `completion_tokens`, `question`, `gold`, "
        "`solution`, `prompt_version`.",
        "",
        "## Params that made it",
        "",
        "```yaml",
        yaml.safe_dump({k: params[k] for k in CARD_SECTIONS if k in params}, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
