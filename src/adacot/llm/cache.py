"""The LLM response cache: never pay twice for the same answer.

Responses are stored in one SQLite file (WAL mode) under a directory that lives *outside* DVC stage
outputs, because DVC deletes outputs before rerunning a stage. A key is the sha256 of (model id, rendered
messages, sampling params, sample index), so a question shared by two ``dvc exp run`` experiments is
answered once. Each batch is committed as soon as it returns, so a SIGKILL loses at most the batch in
flight; SQLite's locking makes concurrent writers (queued experiments) safe. The secret-free key material
is the only thing hashed: API keys never reach this module.

This module does not decide what to ask (stages do) and does not talk to models (backends do); the
``cached_complete`` helper only routes misses to a ``ChatModel`` in batches with a progress bar and, when
asked, fails the stage once too many of them came back as failed requests (``check_failed_requests``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adacot.errors import StageFailure
from adacot.llm.base import ChatModel, Completion, Conversation, Sampling, StreamingChatModel
from adacot.llm.spend import spend_of


def cache_key(model_id: str, conversation: Conversation, sampling: Sampling, sample_index: int) -> str:
    """Stable hash of everything that determines a response."""
    material = json.dumps(
        {"model": model_id, "messages": list(conversation), "sampling": sampling.as_key(), "index": sample_index},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class Price:
    """US dollars per million input (prompt) and output (completion) tokens of one model."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def dollars(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


@dataclass
class CacheStats:
    """Hits, misses, failed requests, and the tokens and dollars spent and saved, for stage metrics."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    prompt_tokens_saved: int = 0
    completion_tokens_saved: int = 0
    prompt_tokens_spent: int = 0
    completion_tokens_spent: int = 0
    reasoning_tokens_spent: int = 0
    price: Price = field(default_factory=Price)

    @property
    def dollars_spent(self) -> float:
        return self.price.dollars(self.prompt_tokens_spent, self.completion_tokens_spent)

    @property
    def dollars_saved(self) -> float:
        return self.price.dollars(self.prompt_tokens_saved, self.completion_tokens_saved)

    def count_hit(self, completion: Completion) -> None:
        self.hits += 1
        self.prompt_tokens_saved += completion.prompt_tokens
        self.completion_tokens_saved += completion.completion_tokens

    def count_answer(self, completion: Completion) -> None:
        # A failed request may still have used tokens (a cut-off stream): they were paid for all the same.
        if completion.failed:
            self.errors += 1
        else:
            self.misses += 1
        self.prompt_tokens_spent += completion.prompt_tokens
        self.completion_tokens_spent += completion.completion_tokens
        self.reasoning_tokens_spent += completion.reasoning_tokens

    def as_metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "price"}
        metrics["usd_per_mtok"] = {"input": self.price.input_per_mtok, "output": self.price.output_per_mtok}
        metrics["dollars_spent"] = round(self.dollars_spent, 6)
        metrics["dollars_saved"] = round(self.dollars_saved, 6)
        return metrics


class ResponseCache:
    """A key → Completion store in SQLite, safe across processes and crashes."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "responses.sqlite"
        # A generous busy timeout lets queued experiments wait for each other's commits instead of failing.
        self._db = sqlite3.connect(self.path, timeout=600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk)
            for key, value in rows:
                found[key] = Completion(**{**json.loads(value), "cached": True})
        return found

    def put_many(self, items: Sequence[tuple[str, Completion]]) -> None:
        # vars() of the flat dataclass: asdict's deep copy cost as much as the SQLite commit.
        rows = [(key, json.dumps({**vars(c), "cached": False})) for key, c in items if not c.failed]
        if not rows:
            return
        with self._db:  # one transaction per batch: all of it lands, or none of it
            self._db.executemany("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", rows)

    def merge_from(self, other: Path) -> int:
        """Copy entries of another cache file into this one (existing keys win); returns rows added."""
        before = len(self)
        with self._db:
            self._db.execute("ATTACH DATABASE ? AS other", (str(other),))
            self._db.execute("INSERT OR IGNORE INTO responses SELECT key, value FROM other.responses")
        self._db.execute("DETACH DATABASE other")
        return len(self) - before

    def summary(self) -> dict[str, dict[str, int]]:
        """Responses and tokens held, by model id (what ``adacot cache-stats`` prints)."""
        out: dict[str, dict[str, int]] = {}
        for (value,) in self._db.execute("SELECT value FROM responses"):
            row = json.loads(value)
            entry = out.setdefault(row["model_id"], {"responses": 0, "prompt_tokens": 0, "completion_tokens": 0})
            entry["responses"] += 1
            entry["prompt_tokens"] += int(row.get("prompt_tokens", 0))
            entry["completion_tokens"] += int(row.get("completion_tokens", 0))
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()


@dataclass
class _Pending:
    conversation: Conversation
    slots: list[tuple[int, int, str]] = field(default_factory=list)  # (row, sample_index, key)


def cached_complete(
    model: ChatModel,
    conversations: Sequence[Conversation],
    sampling: Sampling,
    n: int,
    cache: ResponseCache | None,
    *,
    batch_requests: int = 256,
    desc: str = "generate",
    progress: bool = True,
    price: Price | None = None,
    max_failed_fraction: float | None = None,
) -> tuple[list[list[Completion]], CacheStats]:
    """``n`` completions per conversation, answering from ``cache`` first and asking ``model`` for the rest.

    A ``StreamingChatModel`` (remote APIs) gets every miss at once and each answer is committed the moment
    it arrives; a local engine gets misses in batches of ``batch_requests`` conversations, each batch
    committed before the next starts. Either way an interrupted run resumes where it stopped, and failed
    requests (``finish_reason == "error"``) are returned but never cached, so a rerun asks only for them.
    The progress bar shows rate, ETA, tokens and the running spend at ``price``. With
    ``max_failed_fraction`` set, more failed answers than that share of all ``n * len(conversations)``
    raise ``StageFailure`` once every answer that did arrive is committed (``check_failed_requests``).
    A model with a ``spend`` budget (served roles, ``adacot.llm.spend``) logs the projected spend of the
    misses before asking, and a cap that kept requests unsent raises ``StageFailure`` the same way.
    """
    from tqdm.auto import tqdm

    stats = CacheStats(price=price or Price())
    results: list[list[Completion | None]] = [[None] * n for _ in conversations]
    model_id = model.model_id
    keys = [[cache_key(model_id, conv, sampling, i) for i in range(n)] for conv in conversations]
    hits = cache.get_many([k for row in keys for k in row]) if cache is not None else {}
    pending: list[_Pending] = []
    for row, conv in enumerate(conversations):
        todo = _Pending(conv)
        for index, key in enumerate(keys[row]):
            if key in hits:
                results[row][index] = hits[key]
                stats.count_hit(hits[key])
            else:
                todo.slots.append((row, index, key))
        if todo.slots:
            pending.append(todo)
    # Group by how many samples are missing so each engine call asks n_missing of every conversation in it.
    by_missing: dict[int, list[_Pending]] = {}
    for todo in pending:
        by_missing.setdefault(len(todo.slots), []).append(todo)
    total = sum(len(t.slots) for t in pending)
    budget = spend_of(model)  # a served model's per-run spend: projected here, capped by its backend
    if budget is not None:
        pending_asks = [(t.conversation, len(t.slots)) for t in pending]
        budget.plan(desc, model_id, pending_asks, stats.hits, sampling, cache.path if cache is not None else None)
    streaming = model if isinstance(model, StreamingChatModel) else None
    with tqdm(total=total, desc=desc, unit="req", disable=not progress or total == 0) as bar:

        def record(batch: list[_Pending], answered: list[tuple[int, int, Completion]]) -> None:
            """Keep answers that arrived together and commit them in one transaction."""
            fresh: list[tuple[str, Completion]] = []
            for position, offset, completion in answered:
                row, index, key = batch[position].slots[offset]
                results[row][index] = completion
                fresh.append((key, completion))
                stats.count_answer(completion)
            if cache is not None:
                cache.put_many(fresh)
            if not bar.disable:
                bar.update(len(fresh))
                bar.set_postfix(
                    tokens=stats.completion_tokens_spent,
                    hits=stats.hits,
                    errors=stats.errors,
                    spend=f"${stats.dollars_spent:.4f}",
                    refresh=False,
                )

        for missing, group in sorted(by_missing.items()):
            step = len(group) if streaming is not None else batch_requests
            for start in range(0, len(group), step):
                batch = group[start : start + step]
                conversations_in_batch = [t.conversation for t in batch]
                if streaming is not None:
                    streaming.complete_streaming(
                        conversations_in_batch, sampling, missing, functools.partial(record, batch)
                    )
                else:
                    answers = model.complete(conversations_in_batch, sampling, missing)
                    if len(answers) != len(batch):
                        raise RuntimeError(f"{model_id} answered {len(answers)} of {len(batch)} conversations")
                    for completions in answers:
                        if len(completions) != missing:
                            raise RuntimeError(f"{model_id} gave {len(completions)} samples, {missing} were asked")
                    record(
                        batch,
                        [
                            (position, offset, c)
                            for position, completions in enumerate(answers)
                            for offset, c in enumerate(completions)
                        ],
                    )
    unanswered = sum(1 for row in results for c in row if c is None)
    if budget is not None:  # the cap kept requests unsent: fail now that every arrival is committed
        budget.check(desc, arrived=stats.misses, not_asked=unanswered)
    if unanswered:
        raise RuntimeError(f"{model_id} left {unanswered} requested sample(s) unanswered")
    answered = [[c for c in row if c is not None] for row in results]
    if max_failed_fraction is not None:
        check_failed_requests(answered, max_failed_fraction, desc)
    return answered, stats


def failure_budget(model: ChatModel) -> float:
    """The share of a stage's answers that may be failed requests when ``model`` answers them.

    A served model carries its role's ``api.max_failed_fraction``; a local engine carries none and gets 0:
    it never fails a request, so a single failure there is already wrong.
    """
    return float(getattr(model, "max_failed_fraction", 0.0))


def check_failed_requests(completions: Sequence[Sequence[Completion]], max_failed_fraction: float, desc: str) -> None:
    """Raise ``StageFailure`` when the failed requests exceed ``max_failed_fraction`` of the answers needed.

    The share is of every answer the stage needs, cached ones included, so a rerun (which only asks for
    the failures) can only lower it and one answer that keeps failing cannot block a large stage. Called
    after the answers that did arrive are committed, so the failed stage leaves no lock behind and a rerun
    pays only for what failed. Fewer failures pass: they are rows with verdict ``request_error`` and
    ``cache.errors`` in the stage's metrics.
    """
    needed = sum(len(row) for row in completions)
    failed = [c for row in completions for c in row if c.failed]
    if not failed or len(failed) <= max_failed_fraction * needed:
        return
    raise StageFailure(
        f"{desc}: {len(failed)} of {needed} requested answers failed, more than api.max_failed_fraction="
        f"{max_failed_fraction:g} allows; first error: {failed[0].error or 'no reason given'}; the "
        f"{needed - len(failed)} answered are in the response cache, so a rerun asks only for the {len(failed)} "
        "that failed"
    )
