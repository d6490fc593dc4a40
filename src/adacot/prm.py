"""Process-reward grading of the student's failed attempts: split into steps, score each step, level.

This is the paper's second grading pass: a question the student does not solve is placed among the
failing levels by how sound its failed reasoning was, as a process reward model (PRM) judges it step by
step. Two graders produce step scores in [0, 1] (``StepScorer``):

- a *generative judge* (``kind: generative``): a chat model is asked whether each step is correct; the
  step's score is P("Yes") / (P("Yes") + P("No")) of the verdict token (the arithmetic is
  ``llm/logprobs.py``). ``prm.judge`` picks how it is asked:

  - ``single_pass`` (default, local engines): one prompt per attempt, the problem in the user turn and
    every step in the assistant turn, each followed by a fixed verdict slot (``Correct? Yes``); the
    distribution at every slot is read in one forward pass (``yes_probability_at``: on vLLM its pooling
    runner with the yes/no rows of the LM head as a token classifier, prefix cache read; on transformers
    the logits at the slots). Prompt work grows linearly with the steps. A causal model's
    verdict at slot i depends only on the tokens before it: the problem, steps 1..i and the earlier
    slots (each filled with "Yes", so the judge reads each step as following sound ones);
  - ``per_step``: one prompt per step showing the problem, the steps before it and the step, asking "Is
    the next step correct?" (``yes_probability`` on local engines; over an OpenAI-compatible server the
    first token's ``top_logprobs``, the only way a served judge is asked: chat servers return no
    prompt logprobs). The prompt tokens sent grow with the square of the steps; vLLM's prefix cache
    computes the head the prompts of one attempt share once.

  Either way the answers go through the response cache (one entry per attempt in a single pass, one per
  step otherwise; the keys differ by mode), so a rerun never judges anything twice;
- a *discriminative PRM* (``kind: discriminative``): a reward model run through vLLM's pooling runner with
  the ``token_classify`` task (e.g. Qwen2.5-Math-PRM-7B), read at the last token of each step.

``score_failures`` produces the step scores (a DVC stage of its own, so changing how scores are combined
never rescores); ``levels.py`` combines them as ``levels.aggregate`` and ``levels.score_attempt`` say, in
build_database. This module does not decide levels.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from adacot.config import Params, PrmParams
from adacot.errors import StageFailure
from adacot.llm.base import Completion, Conversation, Sampling
from adacot.llm.cache import CacheStats, Price, ResponseCache, cached_complete
from adacot.llm.logprobs import yes_share_of_top
from adacot.llm.spend import spend_block
from adacot.schemas import ATTEMPTS, PRM_SCORES, QUESTIONS, conform
from adacot.verify.extract import strip_reasoning

log = logging.getLogger(__name__)

JUDGE_SYSTEM = "You check math solutions one step at a time. Answer with Yes or No only."
JUDGE_USER = (
    "Problem:\n{question}\n\nSolution so far:\n{previous}\n\nNext step:\n{step}\n\n"
    "Is the next step correct? Answer Yes or No."
)
# The single-pass judge's wording: the user turn (system = the prompt set's judge system), then per step in
# the assistant turn "Step i:\n<step>\nCorrect?" and the verdict slot. Changing any of it changes
# SINGLE_PASS_VERSION, which is part of every single-pass cache key.
# The instructions come before the problem, so every prompt starts with the same tokens: an engine with a
# prefix cache (vLLM, in blocks of engine.block_size tokens) computes that head once for all attempts.
SINGLE_PASS_USER = (
    "Check the solution below one step at a time. After each step, say whether that step is correct: Yes or "
    "No.\n\nProblem:\n{question}"
)
SINGLE_PASS_STEP = "Step {number}:\n{step}\nCorrect?"
SINGLE_PASS_FILL = " Yes"  # what each slot holds for the steps after it
SINGLE_PASS_GAP = "\n\n"
SINGLE_PASS_VERSION = "single_pass-v2"


class StepScorer(Protocol):
    """Anything that scores the steps of a solution to a question, each in [0, 1]."""

    @property
    def grader_id(self) -> str:
        """The scorer's identity (kind and model), recorded with every score."""
        ...

    def score(self, items: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        """Step scores for each (question, steps), in order."""
        ...


def split_steps(text: str, max_steps: int, max_step_chars: int) -> list[str]:
    """The reasoning steps of a response: paragraphs, else lines, else sentences; the last ``max_steps``.

    A failed attempt usually goes wrong late, so the last steps are kept; a step longer than
    ``max_step_chars`` keeps its last characters. An empty response has no steps.
    """
    body = strip_reasoning(text) or text.replace("<think>", " ").replace("</think>", " ")
    body = body.strip()
    if not body:
        return []
    parts = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    if len(parts) == 1:
        parts = [p.strip() for p in body.splitlines() if p.strip()]
    if len(parts) == 1:
        parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\\$])", body) if p.strip()]
    return [p if len(p) <= max_step_chars else "..." + p[-max_step_chars:] for p in parts[-max_steps:]]


def split_code_steps(text: str, max_steps: int, max_step_chars: int) -> list[str]:
    """The steps of a code attempt: its reasoning paragraphs (``split_steps``), then its program as the
    last step (the last python block, ``extract_code``); the last ``max_steps`` of them. A response with no
    program is split as prose."""
    from adacot.verify.code import extract_code

    found = extract_code(text)
    program = (found.extracted or "").rstrip()
    if not program:
        return split_steps(text, max_steps, max_step_chars)
    at = text.rfind(program)
    reasoning = re.sub(r"```[\w+#.-]*\s*$", "", text[:at].rstrip()) if at >= 0 else ""
    parts = [*split_steps(reasoning, max_steps, max_step_chars), program]
    return [p if len(p) <= max_step_chars else "..." + p[-max_step_chars:] for p in parts[-max_steps:]]


def judge_conversations(question: str, steps: list[str], judge: dict[str, str] | None = None) -> list[Conversation]:
    """One yes/no judge conversation per step, showing the steps before it, in the prompt set's ``judge``
    wording (``PromptSet.judge``; ``None`` = the built-in math wording)."""
    system = judge.get("system", "") if judge else JUDGE_SYSTEM
    template = judge["user"] if judge else JUDGE_USER
    conversations: list[Conversation] = []
    for i, step in enumerate(steps):
        previous = "\n".join(steps[:i]) or "(nothing yet)"
        user = template.format(question=question, previous=previous, step=step)
        head: tuple[dict[str, str], ...] = ({"role": "system", "content": system},) if system else ()
        conversations.append((*head, {"role": "user", "content": user}))
    return conversations


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer the single-pass judge uses."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


def single_pass_conversation(question: str, steps: list[str], judge: dict[str, str] | None = None) -> Conversation:
    """The cache identity of one attempt's single-pass judgement: system and user turns, then one
    ``{"role": "step"}`` entry per step (structure, not joined text: a step that contains the slot wording
    must not share a key with the steps it looks like)."""
    system = judge.get("system", "") if judge else JUDGE_SYSTEM
    head: tuple[dict[str, str], ...] = ({"role": "system", "content": system},) if system else ()
    user = {"role": "user", "content": SINGLE_PASS_USER.format(question=question)}
    return (*head, user, *({"role": "step", "content": step} for step in steps))


def single_pass_prompt(tokenizer: Tokenizer, conversation: Conversation) -> tuple[list[int], list[int]]:
    """Token ids of a single-pass judge prompt and the position of each step's verdict slot in them.

    The chat turns (every entry of ``conversation`` but its ``step`` ones) go through the chat template
    with the assistant turn opened; then per step the tokens of ``Step i:\n<step>\nCorrect?``, the slot
    (the position whose next-token distribution is read: P(slot token | everything before it)) holding
    `` Yes``, and a blank line. Each piece is tokenized on its own, so a slot is a token position whatever
    the step's text holds (the slot wording inside a step is just text).
    """
    turns = [m for m in conversation if m["role"] != "step"]
    steps = [m["content"] for m in conversation if m["role"] == "step"]
    text = str(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    fill = list(tokenizer.encode(SINGLE_PASS_FILL, add_special_tokens=False))
    gap = list(tokenizer.encode(SINGLE_PASS_GAP, add_special_tokens=False))
    slots: list[int] = []
    for number, step in enumerate(steps, start=1):
        if number > 1:
            ids.extend(gap)
        ids.extend(tokenizer.encode(SINGLE_PASS_STEP.format(number=number, step=step), add_special_tokens=False))
        slots.append(len(ids))
        ids.extend(fill)
    return ids, slots


class GenerativeJudge:
    """Step scores from a chat model's probabilities of Yes / No, through the response cache.

    ``mode="single_pass"`` (a local engine with ``yes_probability_at``, vLLM or transformers): one prompt
    per attempt (``single_pass_prompt``), every verdict slot read in one forward pass; one cache entry per
    attempt (its text the JSON list of slot scores). ``mode="per_step"``: one prompt per step
    (``judge_conversations``); a local model reports P(Yes) / (P(Yes) + P(No)) itself
    (``yes_probability``), a served one (``OpenAIChatModel``) is asked for the first token's
    ``top_logprobs`` (one ``max_tokens=1`` request per step) and the share is read from them. A served
    judge asked for ``single_pass`` is asked per step (chat servers return no prompt logprobs): ``mode``
    then says ``per_step`` and the stage's metrics record it.

    Every answer is stored in the response cache (local engines per ``batch_requests`` prompts, servers
    as answers arrive), so a crash mid-scoring resumes where it stopped and a rerun that adds attempts
    judges only the new ones. A request that failed for good stops the stage after the others are cached.
    """

    def __init__(
        self,
        model: Any,
        cache: ResponseCache | None = None,
        price: Price | None = None,
        *,
        batch_requests: int = 256,
        top_logprobs: int = 20,
        judge: dict[str, str] | None = None,
        mode: str = "per_step",
    ) -> None:
        if mode not in ("single_pass", "per_step"):
            raise ValueError(f"judge mode must be single_pass or per_step; got {mode!r}")
        if mode == "single_pass" and hasattr(model, "top_logprobs_view"):
            log.warning("prm.judge=single_pass needs prompt logprobs, which chat servers do not return: per step")
            mode = "per_step"
        if mode == "single_pass":
            if not hasattr(model, "yes_probability_at"):
                raise TypeError(
                    f"{type(model).__name__} cannot read verdict slots in one pass (no yes_probability_at); "
                    "use vllm or transformers, or prm.judge: per_step"
                )
            self._asker: Any = _SlotShareModel(model)
            self._read: Any = json.loads
        elif hasattr(model, "top_logprobs_view"):
            self._asker = model.top_logprobs_view(top_logprobs)
            self._read = lambda text: yes_share_of_top(json.loads(text))
        elif hasattr(model, "yes_probability"):
            self._asker = _YesShareModel(model)
            self._read = float
        else:
            raise TypeError(
                f"{type(model).__name__} cannot report next-token probabilities; use vllm, "
                "transformers or an OpenAI-compatible server that returns top_logprobs"
            )
        self.mode = mode
        self._model = model
        self._cache = cache
        self._price = price or Price()
        self._batch_requests = batch_requests
        self._judge = judge
        self.cache_stats: CacheStats | None = None

    @property
    def grader_id(self) -> str:
        # The mode is part of the grader's identity: the two read different prompts, so their scores differ.
        suffix = "|single_pass" if self.mode == "single_pass" else ""
        return f"generative:{self._model.model_id}{suffix}"

    def score(self, items: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        if self.mode == "single_pass":
            conversations = [single_pass_conversation(q, steps, self._judge) for q, steps in items if steps]
        else:
            conversations = [c for question, steps in items for c in judge_conversations(question, steps, self._judge)]
        completions, self.cache_stats = cached_complete(
            self._asker,
            conversations,
            JUDGE_SAMPLING,
            1,
            self._cache,
            batch_requests=self._batch_requests,
            desc="judge",
            price=self._price,
        )
        failed = [row[0].error for row in completions if row[0].failed]
        if failed:
            raise StageFailure(
                f"{len(failed)} of {len(conversations)} judge requests failed for good "
                f"(first: {failed[0]}); the answered ones are cached: rerun to ask only these"
            )
        out: list[list[float]] = []
        if self.mode == "single_pass":
            answers = iter(completions)
            for _, steps in items:
                row = [float(v) for v in self._read(next(answers)[0].text)] if steps else []
                if len(row) != len(steps):
                    raise RuntimeError(f"{self.grader_id} read {len(row)} verdict slots for {len(steps)} steps")
                out.append(row)
            return out
        flat = [self._read(row[0].text) for row in completions]
        at = 0
        for _, steps in items:
            out.append(flat[at : at + len(steps)])
            at += len(steps)
        return out

    def metrics(self) -> dict[str, Any]:
        """The judge mode used; cache hits, misses and spend of the last ``score``; a served judge's counts."""
        out: dict[str, Any] = {
            "judge": self.mode,
            "cache": self.cache_stats.as_metrics() if self.cache_stats else None,
        }
        if hasattr(self._model, "stats"):
            out["api"] = self._model.stats.as_metrics()
        out.update(spend_block(self._model))  # a served judge: projected vs actual spend
        return out

    def close(self) -> None:
        if hasattr(self._model, "close"):
            self._model.close()


class _SlotShareModel:
    """A local judge as a ``ChatModel`` for the cache, single pass: each answer's text is the JSON list of
    an attempt's slot scores (``single_pass_conversation`` in, ``single_pass_prompt`` to the engine)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    @property
    def model_id(self) -> str:
        return f"{self._model.model_id}|yes_share|{SINGLE_PASS_VERSION}"

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        prompts = [single_pass_prompt(self._model.tokenizer, c) for c in conversations]
        shares = self._model.yes_probability_at(prompts)
        return [
            [
                Completion(
                    text=json.dumps([float(v) for v in row]),
                    finish_reason="stop",
                    prompt_tokens=len(ids),
                    completion_tokens=0,
                    model_id=self.model_id,
                )
            ]
            * n
            for (ids, _), row in zip(prompts, shares, strict=True)
        ]

    def close(self) -> None:
        """The judge closes the model."""


class _YesShareModel:
    """A local judge as a ``ChatModel`` for the cache: each answer's text is its yes-share, as a float."""

    def __init__(self, model: Any) -> None:
        self._model = model

    @property
    def model_id(self) -> str:
        return f"{self._model.model_id}|yes_share"

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        shares = self._model.yes_probability(conversations)
        return [
            [
                Completion(
                    text=repr(float(share)),
                    finish_reason="stop",
                    prompt_tokens=0,
                    completion_tokens=0,
                    model_id=self.model_id,
                )
            ]
            * n
            for share in shares
        ]

    def close(self) -> None:
        """The judge closes the model."""


def failing_attempts(attempts: pl.DataFrame, max_attempts: int) -> pl.DataFrame:
    """The first ``max_attempts`` failed attempts of each question (any status but correct)."""
    attempts = conform(attempts, ATTEMPTS, "attempts")
    return (
        attempts.filter(pl.col("status") != "correct")
        .sort("question_id", "sample_index")
        .group_by("question_id", maintain_order=True)
        .head(max_attempts)
    )


def checked_score(value: object, grader: str) -> tuple[float | None, str | None]:
    """(score, None) for a step score that is a number in [0, 1]; (None, reason) for anything else.

    A PRM can return NaN or infinity (an untrained or broken classification head, an overflow in a
    logprob); such a value must never reach the level rule, where a NaN compares false with every edge
    and silently lands the question on some level.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, f"step score {value!r} from {grader} is not a number"
    if not math.isfinite(number):
        return None, f"non-finite step score {number} from {grader}"
    if not 0.0 <= number <= 1.0:
        return None, f"step score {number:.6g} from {grader} is outside [0, 1]"
    return number, None


def score_failures(
    questions: pl.DataFrame, attempts: pl.DataFrame, scorer: StepScorer, prm: PrmParams, domain: str = "math"
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Step scores (one row per scored step) of the failed attempts, and metrics.

    Every question with a failed attempt is scored, whatever the solved threshold: which questions count
    as solved is a levelling choice, made later without rescoring. An attempt with no text gets one row
    with a null step (it aggregates to 0). A step score that is not a number in [0, 1] becomes a row with
    a null score and an ``error`` saying what it was (``checked_score``), counted in the metrics.
    """
    questions = conform(questions, QUESTIONS, "questions")
    text_of = dict(zip(questions["question_id"], questions["question"], strict=True))
    failed = failing_attempts(attempts, prm.max_attempts)
    keys = list(zip(failed["question_id"], failed["sample_index"], strict=True))
    splitter = split_code_steps if domain == "code" else split_steps
    steps = [splitter(t or "", prm.max_steps, prm.max_step_chars) for t in failed["attempt"].to_list()]
    scored = scorer.score([(text_of[q], s) for (q, _), s in zip(keys, steps, strict=True)])
    if len(scored) != len(keys):
        raise RuntimeError(f"{scorer.grader_id} returned {len(scored)} score lists for {len(keys)} attempts")
    rows: list[dict[str, Any]] = []
    for (qid, index), step_list, scores in zip(keys, steps, scored, strict=True):
        if not step_list:
            rows.append(
                {
                    "question_id": qid,
                    "sample_index": index,
                    "step_index": None,
                    "step": None,
                    "step_score": None,
                    "grader": scorer.grader_id,
                    "error": None,
                }
            )
        for i, (step, value) in enumerate(zip(step_list, scores, strict=True)):
            score, error = checked_score(value, scorer.grader_id)
            rows.append(
                {
                    "question_id": qid,
                    "sample_index": index,
                    "step_index": i,
                    "step": step,
                    "step_score": score,
                    "grader": scorer.grader_id,
                    "error": error,
                }
            )
    table = conform(
        pl.DataFrame(rows, schema=PRM_SCORES) if rows else pl.DataFrame(schema=PRM_SCORES), PRM_SCORES, "prm scores"
    )
    values = table["step_score"].drop_nulls()
    invalid = table.filter(pl.col("error").is_not_null())
    metrics = {
        "grader": scorer.grader_id,
        "questions_scored": failed["question_id"].n_unique(),
        "attempts_scored": failed.height,
        "steps_scored": int(values.len()),
        "attempts_without_steps": int(table["step_index"].null_count()),
        "mean_step_score": float(values.mean()) if values.len() else None,  # type: ignore[arg-type]
        "undecided_steps": int((values == 0.5).sum()),
        # Scores that are not a number in [0, 1] (NaN from a broken head, say): kept as error rows, and
        # build_database refuses to level a failing question on them.
        "invalid_step_scores": invalid.height,
        "invalid_examples": [
            f"{r['question_id']}#{r['sample_index']} step {r['step_index']}: {r['error']}"
            for r in invalid.head(3).iter_rows(named=True)
        ],
    }
    if hasattr(scorer, "metrics"):  # a served judge: its cache hits, spend and request counts
        metrics.update(scorer.metrics())
    return table, metrics


JUDGE_SAMPLING = Sampling(max_tokens=1, temperature=0.0, top_p=1.0, seed=0)


def open_scorer(
    params: Params, base_path: Any, cache_dir: Path | None = None, judge: dict[str, str] | None = None
) -> Any:
    """The step scorer ``params.prm`` asks for: local weights (``base`` = the prepared student base) or a
    served judge (``prm.backend: openai``, answered through the response cache in ``cache_dir``), asking
    in the ``judge`` wording of the domain's prompt set (``None`` = the built-in math wording).

    Returns an object with ``score``, ``grader_id`` and ``close``.
    """
    from adacot.models import read_model_info, resolve_weights

    prm, engine, seed = params.prm, params.role_engine("prm"), params.seed
    if prm.backend == "openai":
        from adacot.llm import api_key_from_env, price_of
        from adacot.llm.openai_backend import OpenAIChatModel
        from adacot.llm.spend import budget_for

        api = params.role_api("prm")
        name = prm.served_model or ""
        price = price_of(params.prices, name)
        model = OpenAIChatModel(name, api, api_key_from_env(api), seed=seed, spend=budget_for(api, price))
        return GenerativeJudge(model, _cache(cache_dir), price, judge=judge, mode=prm.judge)
    path = Path(base_path) if prm.model == "base" else Path(prm.model)
    if prm.kind == "discriminative":
        from adacot.llm.vllm_backend import VllmProcessRewardModel, vllm_importable

        if not vllm_importable():
            raise RuntimeError("prm.kind=discriminative needs vLLM (its pooling runner): install the cpu or gpu extra")
        return VllmProcessRewardModel(resolve_weights(path), read_model_info(path).model_id, engine, seed)
    if prm.kind == "generative":
        from adacot.llm import open_local_model, open_verdict_reader

        opener = open_verdict_reader if prm.judge == "single_pass" else open_local_model
        return GenerativeJudge(
            opener(path, engine, seed),
            _cache(cache_dir),
            batch_requests=engine.batch_requests,
            judge=judge,
            mode=prm.judge,
        )
    raise ValueError("prm.kind=none scores nothing; the score_failures stage writes an empty table")


def _cache(cache_dir: Path | None) -> ResponseCache | None:
    return ResponseCache(cache_dir) if cache_dir else None
