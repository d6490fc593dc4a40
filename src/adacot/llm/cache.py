"""The LLM response cache: never pay twice for the same answer.

Responses are stored in one SQLite file (WAL mode) under a directory that lives *outside* DVC stage
outputs, because DVC deletes outputs before rerunning a stage. A key is the sha256 of (model id, rendered
messages, sampling params, sample index), so a question shared by two ``dvc exp run`` experiments is
answered once. Each batch is committed as soon as it returns, so a SIGKILL loses at most the batch in
flight; SQLite's locking makes concurrent writers (queued experiments) safe. The secret-free key material
is the only thing hashed: API keys never reach this module.

This module does not decide what to ask (stages do) and does not talk to models (backends do); the
``cached_complete`` helper only routes misses to a ``ChatModel`` in batches with a progress bar.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adacot.llm.base import ChatModel, Completion, Conversation, Sampling


def cache_key(model_id: str, conversation: Conversation, sampling: Sampling, sample_index: int) -> str:
    """Stable hash of everything that determines a response."""
    material = json.dumps(
        {"model": model_id, "messages": list(conversation), "sampling": sampling.as_key(), "index": sample_index},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class CacheStats:
    """Hits, misses and what the hits saved, for stage metrics."""

    hits: int = 0
    misses: int = 0
    prompt_tokens_saved: int = 0
    completion_tokens_saved: int = 0
    prompt_tokens_spent: int = 0
    completion_tokens_spent: int = 0

    def as_metrics(self) -> dict[str, int]:
        return asdict(self)


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
        rows = [(key, json.dumps({**asdict(c), "cached": False})) for key, c in items]
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
) -> tuple[list[list[Completion]], CacheStats]:
    """``n`` completions per conversation, answering from ``cache`` first and asking ``model`` for the rest.

    Misses go to the model in batches of ``batch_requests`` conversations, each batch committed to the cache
    before the next starts, so an interrupted run resumes where it stopped.
    """
    from tqdm.auto import tqdm

    stats = CacheStats()
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
                stats.hits += 1
                stats.prompt_tokens_saved += hits[key].prompt_tokens
                stats.completion_tokens_saved += hits[key].completion_tokens
            else:
                todo.slots.append((row, index, key))
        if todo.slots:
            pending.append(todo)
    # Group by how many samples are missing so each engine call asks n_missing of every conversation in it.
    by_missing: dict[int, list[_Pending]] = {}
    for todo in pending:
        by_missing.setdefault(len(todo.slots), []).append(todo)
    total = sum(len(t.slots) for t in pending)
    with tqdm(total=total, desc=desc, unit="req", disable=not progress or total == 0) as bar:
        for missing, group in sorted(by_missing.items()):
            for start in range(0, len(group), batch_requests):
                batch = group[start : start + batch_requests]
                answers = model.complete([t.conversation for t in batch], sampling, missing)
                fresh: list[tuple[str, Completion]] = []
                for todo, completions in zip(batch, answers, strict=True):
                    for (row, _index, key), completion in zip(todo.slots, completions, strict=True):
                        results[row][_index] = completion
                        fresh.append((key, completion))
                        stats.misses += 1
                        stats.prompt_tokens_spent += completion.prompt_tokens
                        stats.completion_tokens_spent += completion.completion_tokens
                if cache is not None:
                    cache.put_many(fresh)
                bar.update(len(fresh))
                bar.set_postfix(tokens=stats.completion_tokens_spent, hits=stats.hits)
    return [[c for c in row if c is not None] for row in results], stats
