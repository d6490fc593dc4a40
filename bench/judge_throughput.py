"""Bench: the generative PRM judge in one pass per attempt vs one prompt per step, on the same attempts.

Both modes run in one process on one engine (the bundled model through ``engine`` from params.yaml,
vLLM when installed), on the failing attempts of a graded pool (``data/grading/pool/attempts.parquet``
after ``dvc repro grade_questions@pool``), split into steps as ``score_failures`` splits them. No
response cache: each mode pays its full prompt work. Prints, side by side:

- prompt tokens processed and wall time per mode, and the speed-up (target >= 3x);
- how far the scores agree: the Spearman rank correlation of the attempt scores (steps combined by
  ``levels.aggregate``) and of the question scores (``levels.score_attempt``), and how many failing
  questions change level under ``levels`` from params.yaml (the same rule ``build_database`` applies);
- a soundness proxy per mode (no gold step labels exist here): the Spearman correlation of a failing
  question's score with its pass rate (a student that is nearer solves it more often).

Prompt tokens are what each mode sends (tokenized here); vLLM's prefix caching lets prompts that share
leading blocks (the instructions, a question's attempts, an attempt's per-step prompts) skip their
prefill in both modes, so wall time is the figure that counts.

Usage: python bench/judge_throughput.py [--attempts PATH] [--questions PATH] [--model models/base]
       [--limit N] [--repeats 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from adacot.config import load_params
from adacot.levels import assign_levels, attempt_scores, question_scores
from adacot.llm import open_local_model, open_verdict_reader
from adacot.prm import (
    GenerativeJudge,
    failing_attempts,
    judge_conversations,
    score_failures,
    single_pass_conversation,
    single_pass_prompt,
    split_code_steps,
    split_steps,
)
from adacot.schemas import ATTEMPTS, QUESTIONS, read_table
from adacot.stageio import load_prompts
from adacot.vocabulary import LEVELS


class _Fixed:
    """A step scorer that hands back scores already computed (to run score_failures' table building)."""

    def __init__(self, grader_id: str, scores: list[list[float]]) -> None:
        self.grader_id = grader_id
        self._scores = scores

    def score(self, items: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        return self._scores


def _prompt_tokens(tokenizer: Any, mode: str, items: list[tuple[str, list[str]]], judge: dict[str, str] | None) -> int:
    """Prompt tokens the engine processes for ``items`` in ``mode`` (what the judge sends, tokenized)."""
    if mode == "single_pass":
        return sum(len(single_pass_prompt(tokenizer, single_pass_conversation(q, s, judge))[0]) for q, s in items if s)
    return sum(
        len(tokenizer.apply_chat_template(list(c), tokenize=True, add_generation_prompt=True, return_dict=False))
        for q, s in items
        for c in judge_conversations(q, s, judge)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", default="data/grading/pool/attempts.parquet")
    parser.add_argument("--questions", default="data/pool/questions.parquet")
    parser.add_argument("--model", default="models/base", help="the judge's weights (prm.model: base)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prompts", default=None, help="prompt YAML (default: prompts/<domain>.yaml)")
    parser.add_argument("--limit", type=int, default=None, help="first N failing attempts only")
    parser.add_argument("--max-steps", type=int, default=None, help="steps scored per attempt (default prm.max_steps)")
    parser.add_argument(
        "--max-step-chars", type=int, default=None, help="characters kept per step (default prm.max_step_chars)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="alternating per-step / single-pass rounds")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument(
        "--single-pass-backend",
        choices=("stage", "transformers"),
        default="stage",
        help="engine for the single-pass mode: stage = what score_failures opens (open_verdict_reader: vLLM's "
        "pooling runner when vLLM is the backend), transformers = the transformers backend",
    )
    parser.add_argument(
        "--solutions",
        default=None,
        help="JSONL of worked solutions ({problem, solution}, e.g. data/benchmarks/math500.jsonl) judged as "
        "attempts instead of the graded pool: long chains (speed and step agreement only; no levels)",
    )
    parser.add_argument("--min-steps", type=int, default=8, help="--solutions: keep solutions with this many steps")
    parser.add_argument(
        "--per-step-block-size",
        type=int,
        default=None,
        help="the per-step judge's engine.block_size (default: the engine's, as the single pass): 128 = vLLM's "
        "CPU default, how the per-step judge ran before engine.block_size existed",
    )
    parser.add_argument("--max-model-len", type=int, default=None, help="engine.max_model_len (long chains)")
    args = parser.parse_args()

    params = load_params(Path(args.params))
    prm = params.prm
    overrides = {"max_steps": args.max_steps, "max_step_chars": args.max_step_chars}
    prm = prm.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    judge_wording = load_prompts(args.prompts or f"prompts/{params.domain}.yaml", params.domain).judge
    if args.solutions:
        items = _solution_items(Path(args.solutions), prm.max_steps, prm.max_step_chars, args.min_steps, args.limit)
        questions = attempts = None
        print(f"{len(items)} worked solutions from {args.solutions} with >= {args.min_steps} steps, judged as attempts")
    else:
        questions = read_table(Path(args.questions), QUESTIONS)
        attempts = read_table(Path(args.attempts), ATTEMPTS)
        failed = failing_attempts(attempts, prm.max_attempts)
        if args.limit:
            failed = failed.head(args.limit)
            attempts = attempts.join(failed.select("question_id").unique(), on="question_id")
            questions = questions.join(failed.select("question_id").unique(), on="question_id")
        text_of = dict(zip(questions["question_id"], questions["question"], strict=True))
        splitter = split_code_steps if params.domain == "code" else split_steps
        items = [
            (text_of[q], splitter(t or "", prm.max_steps, prm.max_step_chars))
            for q, t in zip(failed["question_id"], failed["attempt"], strict=True)
        ]
        print(f"{len(items)} failing attempts, {failed['question_id'].n_unique()} questions")
    steps = sum(len(s) for _, s in items)
    print(f"{steps} steps")
    print(f"prm.max_steps {prm.max_steps}, max_step_chars {prm.max_step_chars}, engine.dtype {params.engine.dtype}")

    engine = params.role_engine("prm")
    if args.max_model_len:
        engine = engine.model_copy(update={"max_model_len": args.max_model_len})
    per_step_engine = engine
    if args.per_step_block_size:
        per_step_engine = engine.model_copy(update={"block_size": args.per_step_block_size})
    model: Any = open_local_model(Path(args.model), per_step_engine, params.seed)
    models: dict[str, Any] = {"per_step": model}
    try:
        if args.single_pass_backend == "stage":
            models["single_pass"] = open_verdict_reader(Path(args.model), engine, params.seed)
        else:
            transformers = engine.model_copy(update={"backend": "transformers", "data_parallel_size": 1})
            models["single_pass"] = open_local_model(Path(args.model), transformers, params.seed)
        tokenizer = model.tokenizer
        # Warm the engine (first-call allocations) on one attempt in both modes, outside the timing.
        warm = [next(i for i in items if i[1])]
        for mode in ("per_step", "single_pass"):
            GenerativeJudge(models[mode], mode=mode, judge=judge_wording).score(warm)
        seconds: dict[str, list[float]] = {"per_step": [], "single_pass": []}
        scores: dict[str, list[list[float]]] = {}
        grader: dict[str, str] = {}
        for _ in range(args.repeats):
            for mode in ("per_step", "single_pass"):
                judge = GenerativeJudge(
                    models[mode], mode=mode, judge=judge_wording, batch_requests=params.engine.batch_requests
                )
                # Each timed run starts without the previous round's KV blocks (vLLM's prefix cache would
                # answer a repeated prompt almost free); within a run both modes read it.
                reset = getattr(getattr(models[mode], "_llm", None), "reset_prefix_cache", None)
                if reset is not None:
                    reset()
                start = time.perf_counter()
                scores[mode] = judge.score(items)
                seconds[mode].append(time.perf_counter() - start)
                grader[mode] = judge.grader_id
        tokens = {mode: _prompt_tokens(tokenizer, mode, items, judge_wording) for mode in seconds}
    finally:
        for opened in {id(m): m for m in models.values()}.values():
            opened.close()

    figures: dict[str, Any] = {"attempts": len(items), "steps": steps, "modes": {}}
    figures["settings"] = {
        "max_steps": prm.max_steps,
        "max_step_chars": prm.max_step_chars,
        "block_size": {"per_step": per_step_engine.block_size, "single_pass": engine.block_size},
        "max_model_len": engine.max_model_len,
    }
    figures["settings"]["dtype"] = getattr(model, "dtype", params.engine.dtype)
    figures["backends"] = {mode: type(m).__name__ for mode, m in models.items()}
    for mode in ("per_step", "single_pass"):
        best = min(seconds[mode])
        figures["modes"][mode] = {
            "prompts": len(items) if mode == "single_pass" else steps,
            "prompt_tokens": tokens[mode],
            "wall_s": round(best, 3),
            "prompt_tok_per_s": round(tokens[mode] / best, 1),
        }
        flat = [v for row in scores[mode] for v in row]
        # 0.5: neither yes nor no among the top 20 tokens; 0 or 1: only one of them (read as certain).
        figures["modes"][mode]["slots_undecided_or_one_sided"] = {
            "0.5": flat.count(0.5),
            "0_or_1": sum(v in (0.0, 1.0) for v in flat),
            "mean_score": round(sum(flat) / max(len(flat), 1), 4),
        }
    ratio = min(seconds["per_step"]) / min(seconds["single_pass"])
    figures["speedup"] = round(ratio, 2)
    figures["prompt_token_ratio"] = round(tokens["per_step"] / max(tokens["single_pass"], 1), 2)

    step_pairs = pl.DataFrame(
        {"a": [v for r in scores["per_step"] for v in r], "b": [v for r in scores["single_pass"] for v in r]}
    )
    figures["spearman"] = {"steps": round(float(step_pairs.select(pl.corr("a", "b", method="spearman")).item()), 4)}
    if questions is not None and attempts is not None:
        _agreement(figures, questions, attempts, scores, grader, prm, params)
    _report(figures, ratio)
    if args.json:
        figures["step_scores"] = scores  # per attempt, in failing_attempts order: to recompute agreement
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


def _solution_items(
    path: Path, max_steps: int, max_step_chars: int, min_steps: int, limit: int | None
) -> list[tuple[str, list[str]]]:
    """Worked solutions as attempts to judge: (problem, steps) for those with at least ``min_steps`` steps."""
    items = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        steps = split_steps(row["solution"], max_steps, max_step_chars)
        if len(steps) >= min_steps:
            items.append((row["problem"], steps))
    return items[:limit] if limit else items


def _agreement(
    figures: dict[str, Any],
    questions: pl.DataFrame,
    attempts: pl.DataFrame,
    scores: dict[str, list[list[float]]],
    grader: dict[str, str],
    prm: Any,
    params: Any,
) -> None:
    """Attempt and question agreement, and level changes, as score_failures and build_database see them."""
    levels = params.levels
    tables = {
        mode: score_failures(questions, attempts, _Fixed(grader[mode], scores[mode]), prm, params.domain)[0]
        for mode in scores
    }
    per_attempt = attempt_scores(tables["per_step"], levels.aggregate).join(
        attempt_scores(tables["single_pass"], levels.aggregate), on=["question_id", "sample_index"], suffix="_single"
    )
    per_question = question_scores(tables["per_step"], levels.aggregate, levels.score_attempt).join(
        question_scores(tables["single_pass"], levels.aggregate, levels.score_attempt), on="question_id", suffix="_1"
    )
    spearman = {
        "attempts": per_attempt.select(pl.corr("attempt_score", "attempt_score_single", method="spearman")).item(),
        "questions": per_question.select(pl.corr("prm_score", "prm_score_1", method="spearman")).item(),
    }
    figures["spearman"].update({k: round(float(v), 4) for k, v in spearman.items()})
    # A soundness proxy with no gold steps at hand: among failing questions, a higher pass rate means the
    # student was nearer, so a sound judge's question score should rise with it (Spearman, per mode).
    pass_rate = attempts.group_by("question_id").agg(pass_rate=(pl.col("status") == "correct").mean())
    figures["spearman_with_pass_rate"] = {
        mode: round(
            float(
                question_scores(tables[mode], levels.aggregate, levels.score_attempt)
                .join(pass_rate, on="question_id")
                .filter(pl.col("pass_rate") < levels.solved_pass_rate)
                .select(pl.corr("prm_score", "pass_rate", method="spearman"))
                .item()
            ),
            4,
        )
        for mode in tables
    }
    db = {mode: assign_levels(questions, attempts, levels, tables[mode])[0] for mode in tables}
    joined = (
        db["per_step"]
        .select("question_id", "level")
        .join(db["single_pass"].select("question_id", "level"), on="question_id", suffix="_single")
    )
    failing = joined.filter(pl.col("level") != "easy")
    moved = failing.filter(pl.col("level") != pl.col("level_single"))
    figures["levels"] = {
        "failing_questions": failing.height,
        "changed": moved.height,
        "histogram_per_step": dict(sorted(db["per_step"]["level"].value_counts().iter_rows())),
        "histogram_single_pass": dict(sorted(db["single_pass"]["level"].value_counts().iter_rows())),
        "moved_by_more_than_one_level": _far_moves(moved),
    }


def _report(figures: dict[str, Any], ratio: float) -> None:
    print("| mode | prompts | prompt tokens | wall s | prompt tok/s |")
    print("|---|---|---|---|---|")
    for mode, row in figures["modes"].items():
        print(f"| {mode} | {row['prompts']} | {row['prompt_tokens']} | {row['wall_s']} | {row['prompt_tok_per_s']} |")
    for mode, row in figures["modes"].items():
        print(f"{mode} slot scores: {row['slots_undecided_or_one_sided']}")
    print(f"speed-up single_pass vs per_step: {ratio:.2f}x (prompt tokens {figures['prompt_token_ratio']}x fewer)")
    print(f"Spearman per step / attempt / question: {figures['spearman']}")
    if "levels" not in figures:
        return
    print(f"Spearman of failing questions' score with their pass rate: {figures['spearman_with_pass_rate']}")
    lv = figures["levels"]
    print(f"levels: {lv['changed']} of {lv['failing_questions']} failing questions change level "
          f"({lv['moved_by_more_than_one_level']} by more than one)")  # fmt: skip
    print(f"  per_step:    {lv['histogram_per_step']}\n  single_pass: {lv['histogram_single_pass']}")


def _far_moves(moved: pl.DataFrame) -> int:
    order = list(LEVELS)
    return sum(
        abs(order.index(a) - order.index(b)) > 1 for a, b in zip(moved["level"], moved["level_single"], strict=True)
    )


if __name__ == "__main__":
    main()
