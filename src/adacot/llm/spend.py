"""Spend before you spend: what a stage is about to pay a served model for, and a cap it never passes.

A served role's model carries one ``SpendBudget`` for the whole stage run (``budget_for`` makes it from
the role's ``api.max_spend_usd`` and its ``prices`` entry). Three moments use it:

- before asking, ``cached_complete`` has it ``plan`` the requests it is about to send: the answers needed
  minus those the response cache already holds (exact: the stage's own keys are looked up), times the
  tokens this model's own cached answers used on average (``token_history``), or, with no history,
  ``max_tokens`` per answer (an upper bound) and prompt characters / 4 per request; the projection is
  logged as one block and kept for the stage's metrics;
- the OpenAI backend ``reserve``s each request's worst case before sending it (a prompt bound of one
  token per UTF-8 byte plus a chat-template allowance, and ``max_tokens x n``, at the price) and
  ``settle``s it with the usage the server reports; a request whose reservation would pass the cap is
  never sent, and from then on none is;
- after the answers that did arrive are committed to the response cache, ``check`` fails the stage in
  one line (``StageFailure``) when the cap stopped requests. A rerun gets a fresh per-run budget and
  answers what was cached from the cache, so nothing is paid twice.

``as_metrics`` is the stage's ``spend`` block: projected vs actual. This module does not send requests
(backends do), does not cache answers (``cache.py``) and does not estimate a whole pipeline
(``adacot.estimate``, behind ``adacot estimate``). A request that failed for good is settled at 0: a
server that cut a stream off may still bill for it without reporting usage, which no client can see.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adacot.errors import StageFailure
from adacot.llm.base import Conversation, Sampling

if TYPE_CHECKING:  # cache.py imports this module; the price type is only needed for annotations here
    from adacot.config import ApiParams
    from adacot.llm.cache import Price

logger = logging.getLogger(__name__)

# Tokens a chat template may add around each message (role markers, separators) and once per request
# (the assistant header): generous for ChatML, Llama 3 and DeepSeek templates, which add 3 to 6.
TEMPLATE_TOKENS = 16
CAP_KEY = "api.max_spend_usd"


def prompt_chars_estimate(conversation: Conversation) -> int:
    """The usual estimate of a prompt's tokens: its characters / 4 (what the tokens-per-minute limit uses)."""
    return sum(len(m.get("content", "")) for m in conversation) // 4


def prompt_tokens_bound(conversation: Conversation) -> int:
    """An upper bound on a prompt's tokens: byte-level BPE tokenizers (GPT, Llama 3, Qwen, DeepSeek) never
    make a token of less than one UTF-8 byte; the template allowance covers the markers around messages."""
    return sum(len(m.get("content", "").encode()) + TEMPLATE_TOKENS for m in conversation) + TEMPLATE_TOKENS


@dataclass(frozen=True)
class TokenHistory:
    """What a model's answers already in the response cache used: the basis of a projection."""

    answers: int = 0
    prompt_tokens_per_request: float | None = None  # mean over answers that carried their request's prompt
    completion_tokens_per_answer: float | None = None

    def describe(self, max_tokens: int) -> str:
        if not self.answers:
            return f"no history: max_tokens={max_tokens} per answer (upper bound), prompt chars / 4"
        return f"history of {self.answers} cached answers (completion capped at max_tokens={max_tokens})"


def token_history(cache_file: Path | None, model_id: str) -> TokenHistory:
    """Mean prompt tokens per request and completion tokens per answer of ``model_id``'s cached answers.

    With native ``n`` a request's prompt is recorded on its first answer only (the others carry 0), so the
    prompt mean is over answers with prompt tokens. Reads the SQLite file directly (one scan in SQLite's
    JSON functions); a missing file is no history and is not created.
    """
    if cache_file is None or not cache_file.is_file():
        return TokenHistory()
    with closing(sqlite3.connect(cache_file, timeout=600)) as db:
        row = db.execute(
            "SELECT COUNT(*), SUM(ct), SUM(pt > 0), SUM(CASE WHEN pt > 0 THEN pt ELSE 0 END) FROM ("
            "SELECT json_extract(value, '$.prompt_tokens') AS pt, json_extract(value, '$.completion_tokens') AS ct "
            "FROM responses WHERE json_extract(value, '$.model_id') = ?)",
            (model_id,),
        ).fetchone()
    answers, completion, with_prompt, prompt = (int(v or 0) for v in row)
    if not answers:
        return TokenHistory()
    return TokenHistory(answers, prompt / with_prompt if with_prompt else None, completion / answers)


def held_keys(cache_file: Path | None, keys: Sequence[str]) -> set[str]:
    """The ``keys`` the response cache file holds (none when there is no file; the file is not created)."""
    if cache_file is None or not cache_file.is_file() or not keys:
        return set()
    from adacot.llm.cache import rows_for_keys

    with closing(sqlite3.connect(cache_file, timeout=600)) as db:
        return {k for (k,) in rows_for_keys(db, "SELECT key FROM responses WHERE key IN ({marks})", keys)}


@dataclass(frozen=True)
class Projection:
    """What one batch of a stage is about to ask: requests, expected tokens and dollars, and on what basis."""

    desc: str
    model_id: str
    answers_needed: int
    cache_hits: int
    requests_to_send: int  # answers to ask for (a native-n request carries several)
    prompt_tokens: int
    completion_tokens: int
    usd: float
    basis: str
    input_per_mtok: float
    output_per_mtok: float

    def block(self, cap_usd: float | None) -> str:
        """The projection as the one block a stage logs before it asks."""
        cap = f"${cap_usd:,.2f} per stage run ({CAP_KEY})" if cap_usd is not None else f"none ({CAP_KEY}: null)"
        return "\n".join(
            [
                f"spend projection: {self.desc} ({self.model_id}, ${self.input_per_mtok:g} / "
                f"${self.output_per_mtok:g} per M input / output tokens)",
                f"  answers needed     {self.answers_needed:>14,}",
                f"  in the cache       {self.cache_hits:>14,}  (free)",
                f"  requests to send   {self.requests_to_send:>14,}",
                f"  prompt tokens      {self.prompt_tokens:>14,}",
                f"  completion tokens  {self.completion_tokens:>14,}  ({self.basis})",
                f"  projected          ${self.usd:>13,.4f}",
                f"  cap                {cap}",
            ]
        )


def project(
    desc: str,
    model_id: str,
    pending: Sequence[tuple[Conversation, int]],
    cache_hits: int,
    sampling: Sampling,
    price: Price,
    history: TokenHistory,
    *,
    prompt_once: bool = True,
) -> Projection:
    """The projection of asking ``missing`` answers of each ``(conversation, missing)`` in ``pending``.

    Expected tokens per answer are the model's own history (``token_history``) where there is one, the
    completion capped at ``max_tokens``; else ``max_tokens`` (an upper bound) and prompt chars / 4. With
    ``prompt_once`` (native ``n``) a conversation's prompt is paid once for its missing answers, else once
    per answer (one request each).
    """
    per_answer = float(sampling.max_tokens)
    if history.completion_tokens_per_answer is not None:
        per_answer = min(per_answer, history.completion_tokens_per_answer)
    prompt_tokens = 0.0
    to_send = 0
    for conversation, missing in pending:
        if missing <= 0:
            continue  # every answer of it is cached: no request, no prompt
        to_send += missing
        per_request = history.prompt_tokens_per_request
        prompt = per_request if per_request is not None else float(prompt_chars_estimate(conversation))
        prompt_tokens += prompt * (1 if prompt_once else missing)
    completion_tokens = per_answer * to_send
    return Projection(
        desc=desc,
        model_id=model_id,
        answers_needed=to_send + cache_hits,
        cache_hits=cache_hits,
        requests_to_send=to_send,
        prompt_tokens=round(prompt_tokens),
        completion_tokens=round(completion_tokens),
        usd=price.dollars(round(prompt_tokens), round(completion_tokens)),
        basis=history.describe(sampling.max_tokens),
        input_per_mtok=price.input_per_mtok,
        output_per_mtok=price.output_per_mtok,
    )


class SpendBudget:
    """One stage run's spend with one served model: projections, reservations, the cap, the actual spend."""

    def __init__(self, cap_usd: float | None, price: Price, *, prompt_once: bool = True) -> None:
        self.cap_usd = cap_usd
        self.price = price
        self.prompt_once = prompt_once
        self.projections: list[Projection] = []
        self.spent_usd = 0.0
        self.prompt_tokens_spent = 0
        self.completion_tokens_spent = 0
        self.reserved_usd = 0.0
        self.refused = 0  # requests the cap kept from being sent
        self.stopped = False

    def plan(
        self,
        desc: str,
        model_id: str,
        pending: Sequence[tuple[Conversation, int]],
        cache_hits: int,
        sampling: Sampling,
        cache_file: Path | None,
    ) -> Projection:
        """Project what is about to be asked (``project``), log it as one block and keep it for metrics."""
        history = token_history(cache_file, model_id) if pending else TokenHistory()
        projection = project(
            desc, model_id, pending, cache_hits, sampling, self.price, history, prompt_once=self.prompt_once
        )
        self.projections.append(projection)
        logger.info("%s", projection.block(self.cap_usd))
        return projection

    def reserve(self, conversation: Conversation, completion_tokens: int) -> float | None:
        """Hold the worst case of one request about to be sent; ``None``: it could pass the cap, do not send.

        Once one request is refused every later one is too: the stage stops rather than filling the rest
        of the budget with whichever requests happen to be cheaper.
        """
        worst = self.price.dollars(prompt_tokens_bound(conversation), completion_tokens)
        if self.cap_usd is not None and (
            self.stopped or self.spent_usd + self.reserved_usd + worst > self.cap_usd * (1 + 1e-12)
        ):
            self.stopped = True
            self.refused += 1
            return None
        self.reserved_usd += worst
        return worst

    def settle(self, reserved: float, prompt_tokens: int, completion_tokens: int) -> None:
        """Replace a reservation by what the server reported the request used (0 for a request that failed)."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved)
        self.prompt_tokens_spent += prompt_tokens
        self.completion_tokens_spent += completion_tokens
        self.spent_usd += self.price.dollars(prompt_tokens, completion_tokens)

    def check(self, desc: str, arrived: int, not_asked: int) -> None:
        """Fail the stage in one line when the cap kept requests from being sent (after arrivals are cached)."""
        if not self.stopped or self.cap_usd is None:
            return
        raise StageFailure(
            f"{desc}: stopped before passing the spend cap: spent ${self.spent_usd:.4f} of {CAP_KEY}="
            f"${self.cap_usd:g} in this run; {arrived} answer(s) that arrived are in the response cache, "
            f"{not_asked} not asked; rerun with a higher {CAP_KEY} (a role's api can set its own), or as is "
            "to continue with a fresh per-run budget: cached answers are not paid again"
        )

    def as_metrics(self) -> dict[str, Any]:
        """The stage's ``spend`` block: what was projected before asking, and what was spent."""
        return {
            "requests_to_send": sum(p.requests_to_send for p in self.projections),
            "cache_hits": sum(p.cache_hits for p in self.projections),
            "projected_prompt_tokens": sum(p.prompt_tokens for p in self.projections),
            "projected_completion_tokens": sum(p.completion_tokens for p in self.projections),
            "projected_usd": round(sum(p.usd for p in self.projections), 6),
            "projection_basis": sorted({p.basis for p in self.projections}),
            "actual_prompt_tokens": self.prompt_tokens_spent,
            "actual_completion_tokens": self.completion_tokens_spent,
            "actual_usd": round(self.spent_usd, 6),
            "cap_usd": self.cap_usd,
            "requests_refused_by_cap": self.refused,
        }


def budget_for(api: ApiParams, price: Price) -> SpendBudget:
    """The per-run budget of a role served by ``api`` at ``price``."""
    return SpendBudget(api.max_spend_usd, price, prompt_once=api.native_n)


def spend_of(model: object) -> SpendBudget | None:
    """The budget a model carries (served models do; local engines cost nothing and carry none)."""
    budget = getattr(model, "spend", None)
    return budget if isinstance(budget, SpendBudget) else None


def spend_block(model: object) -> dict[str, Any]:
    """``{"spend": ...}`` for a stage's metrics when ``model`` carries a budget, else nothing."""
    budget = spend_of(model)
    return {"spend": budget.as_metrics()} if budget is not None else {}
