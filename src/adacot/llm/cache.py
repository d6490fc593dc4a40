"""The LLM response cache: never pay twice for the same answer.

Responses are stored in one SQLite file (WAL mode) under a directory that lives *outside* DVC stage
outputs, because DVC deletes outputs before rerunning a stage, and outside the temporary copies DVC runs
queued experiments in: ``resolve_cache_dir`` puts a relative cache path under the repository DVC runs the
stage for (``$DVC_ROOT``, which DVC points at the parent repository inside a queue executor), and the
``ADACOT_CACHE_DIR`` environment variable moves it anywhere. A key is the sha256 of (model id, rendered
messages, sampling params, sample index), so a question shared by two ``dvc exp run`` experiments is
answered once. Each batch is committed as soon as it returns, so a SIGKILL loses at most the batch in
flight. Runs that share the cache at the same time (``dvc queue start -j 2``) *claim* the keys they are
about to ask for (``ResponseCache.claim``): a key another live process has claimed is waited for and
read from the cache instead of being paid for twice; claims of a process that died (SIGKILL) are taken
over. The secret-free key material is the only thing hashed: API keys never reach this module.

This module does not decide what to ask (stages do) and does not talk to models (backends do); the
``cached_complete`` helper only routes misses to a ``ChatModel`` in batches with a progress bar and, when
asked, fails the stage once too many of them came back as failed requests (``check_failed_requests``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adacot.errors import StageFailure
from adacot.llm.base import ChatModel, Completion, Conversation, Sampling, StreamingChatModel
from adacot.llm.spend import spend_of

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "ADACOT_CACHE_DIR"
DEFAULT_CACHE_DIR = Path(".adacot/cache")


def resolve_cache_dir(path: str | Path | None = None) -> Path:
    """The response cache folder every run of a repository shares.

    ``$ADACOT_CACHE_DIR`` wins (a team machine's shared disk, another checkout's cache); otherwise
    ``path`` (``dvc.yaml``'s ``cache_dir``, default ``.adacot/cache``). A relative path is taken from
    ``$DVC_ROOT``: DVC sets it for every stage command, and inside a queued experiment's temporary copy
    (``dvc exp run --queue``, ``--temp``) it names the parent repository, so queued runs read and fill the
    workspace's cache and their answers outlive the copy. Outside DVC it is taken from the current folder.
    """
    chosen = os.environ.get(CACHE_DIR_ENV, "").strip() or str(path or DEFAULT_CACHE_DIR)
    folder = Path(chosen).expanduser()
    if not folder.is_absolute():
        folder = Path(os.environ.get("DVC_ROOT") or ".").resolve() / folder
    return folder


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


def rows_for_keys(db: sqlite3.Connection, query: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` (whose ``{marks}`` is a key list) for every key, 500 keys per statement."""
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        yield from db.execute(query.format(marks=",".join("?" * len(chunk))), chunk)


class ResponseCache:
    """A key → Completion store in SQLite, safe across processes and crashes."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "responses.sqlite"
        # A generous busy timeout lets queued experiments wait for each other's commits instead of failing.
        self._db = sqlite3.connect(self.path, timeout=600)
        # Switching a new file to WAL takes a lock SQLite's busy timeout does not wait for: two runs opening
        # the cache at the same instant would see "database is locked". Retry for a while instead.
        for attempt in range(200):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == 199:
                    raise
                time.sleep(0.05)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, "
            "pid INTEGER NOT NULL, started TEXT NOT NULL, claimed_at REAL NOT NULL)"
        )
        self._db.commit()
        self.owner = uuid.uuid4().hex
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._started = _process_start(self._pid)

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        for key, value in rows_for_keys(self._db, "SELECT key, value FROM responses WHERE key IN ({marks})", keys):
            found[key] = Completion(**{**json.loads(value), "cached": True})
        return found

    def put_many(self, items: Sequence[tuple[str, Completion]]) -> None:
        # vars() of the flat dataclass: asdict's deep copy cost as much as the SQLite commit.
        rows = [(key, json.dumps({**vars(c), "cached": False})) for key, c in items if not c.failed]
        if not rows:
            return
        with self._db:  # one transaction per batch: all of it lands, or none of it
            self._db.executemany("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", rows)
            self._db.executemany("DELETE FROM claims WHERE key = ?", [(key,) for key, _ in rows])

    def claim(self, keys: Sequence[str], stale_after_s: float = 6 * 3600) -> tuple[set[str], set[str]]:
        """Claim ``keys`` for this process before asking a model for them: (claimed by us, held by others).

        A key another *live* process has claimed (a concurrent run asking for it right now) is left to it:
        wait for its answer (``get_many``) and claim again only if it gives up. A key answered since the
        caller last looked is never claimed either (it is among the others: read it). Claims of a process that
        is gone are taken over: on this host a pid that no longer runs (or runs another program), on
        another host a claim older than ``stale_after_s``. One IMMEDIATE transaction, so two processes
        never both get a key.
        """
        if not keys:
            return set(), set()
        now = time.time()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            held: dict[str, tuple[str, str, int, str, float]] = {}
            query = "SELECT key, owner, host, pid, started, claimed_at FROM claims WHERE key IN ({marks})"
            for key, owner, host, pid, started, at in rows_for_keys(self._db, query, keys):
                held[key] = (owner, host, pid, started, at)
            alive: dict[tuple[str, int, str], bool] = {}
            others: set[str] = set()
            others.update(
                k for (k,) in rows_for_keys(self._db, "SELECT key FROM responses WHERE key IN ({marks})", keys)
            )
            for key, (owner, host, pid, started, at) in held.items():
                if owner == self.owner:
                    continue
                if host == self._host:
                    if (host, pid, started) not in alive:
                        alive[(host, pid, started)] = _process_start(pid) == started
                    live = alive[(host, pid, started)]
                else:
                    live = now - at < stale_after_s
                if live:
                    others.add(key)
            mine = [k for k in keys if k not in others]
            self._db.executemany(
                "INSERT OR REPLACE INTO claims (key, owner, host, pid, started, claimed_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(k, self.owner, self._host, self._pid, self._started, now) for k in mine],
            )
        return set(mine), others

    def release(self, keys: Sequence[str] | None = None) -> None:
        """Drop this process's claims on ``keys`` (all of them when None): answered, failed, or given up."""
        with self._db:
            if keys is None:
                self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
                return
            self._db.executemany("DELETE FROM claims WHERE key = ? AND owner = ?", [(k, self.owner) for k in keys])

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


def _process_start(pid: int) -> str:
    """When process ``pid`` started (``/proc/<pid>/stat`` field 22), or "" if it does not run.

    A claim records it next to the pid, so a pid reused by another program does not keep a dead claim alive.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        if not Path("/proc/self/stat").exists():  # no procfs: the pid alone says whether it runs
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return ""
            except PermissionError:
                return "?"
            return "?"
        return ""


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
    # Where each distinct key's answer goes (a repeated conversation shares its answers: asked once).
    slots: dict[str, list[tuple[int, int]]] = {}
    for row, row_keys in enumerate(keys):
        for index, key in enumerate(row_keys):
            slots.setdefault(key, []).append((row, index))
    missing = fill_from_cache(cache, list(slots), slots, results, stats)
    budget = spend_of(model)  # a served model's per-run spend: projected here, capped by its backend
    if budget is not None:
        per_row: dict[int, int] = {}
        for key in missing:
            per_row[slots[key][0][0]] = per_row.get(slots[key][0][0], 0) + 1
        pending_asks = [(conversations[row], count) for row, count in per_row.items()]
        budget.plan(desc, model_id, pending_asks, stats.hits, sampling, cache.path if cache is not None else None)
    streaming = model if isinstance(model, StreamingChatModel) else None
    with tqdm(total=len(missing), desc=desc, unit="req", disable=not progress or not missing) as bar:

        def record(batch: list[_Pending], answered: list[tuple[int, int, Completion]]) -> None:
            """Keep answers that arrived together and commit them in one transaction."""
            fresh: list[tuple[str, Completion]] = []
            for position, offset, completion in answered:
                _, _, key = batch[position].slots[offset]
                first, *repeats = slots[key]
                results[first[0]][first[1]] = completion
                fresh.append((key, completion))
                stats.count_answer(completion)
                for row, index in repeats:  # the same request elsewhere in the batch: answered for free
                    results[row][index] = completion
                    if not completion.failed:
                        stats.count_hit(completion)
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

        def ask(todo_keys: list[str]) -> None:
            """Ask the model for ``todo_keys`` (claimed by this process), grouped by conversation."""
            by_row: dict[int, _Pending] = {}
            for key in todo_keys:
                row, index = slots[key][0]
                by_row.setdefault(row, _Pending(conversations[row])).slots.append((row, index, key))
            # Group by which samples are missing so each call asks the same samples of every conversation
            # (a served model seeds sample i with seed + i: a resumed sample 1 must not be sample 0 again).
            by_missing: dict[tuple[int, ...], list[_Pending]] = {}
            for todo in by_row.values():
                todo.slots.sort()
                by_missing.setdefault(tuple(index for _, index, _ in todo.slots), []).append(todo)
            for samples, group in sorted(by_missing.items(), key=lambda item: (len(item[0]), item[0])):
                count = len(samples)
                step = len(group) if streaming is not None else batch_requests
                for start in range(0, len(group), step):
                    batch = group[start : start + step]
                    conversations_in_batch = [t.conversation for t in batch]
                    if streaming is not None:
                        streaming.complete_streaming(
                            conversations_in_batch, sampling, count, functools.partial(record, batch), samples=samples
                        )
                        continue
                    answers = model.complete(conversations_in_batch, sampling, count)
                    if len(answers) != len(batch):
                        raise RuntimeError(f"{model_id} answered {len(answers)} of {len(batch)} conversations")
                    for completions in answers:
                        if len(completions) != count:
                            raise RuntimeError(f"{model_id} gave {len(completions)} samples, {count} were asked")
                    record(
                        batch,
                        [
                            (position, offset, c)
                            for position, completions in enumerate(answers)
                            for offset, c in enumerate(completions)
                        ],
                    )

        try:
            waits = 0
            while missing:
                if cache is None:
                    ask(missing)
                    break
                mine, others = cache.claim(missing)
                ask([k for k in missing if k in mine])
                cache.release([k for k in missing if k in mine])
                if not others:
                    break
                # Answered meanwhile, or being asked by another live run right now: read its answers as they
                # land, and take over whatever it gives up (failed requests, a killed process) by claiming again.
                before = stats.hits
                missing = fill_from_cache(cache, [k for k in slots if k in others], slots, results, stats)
                if not bar.disable and stats.hits > before:
                    bar.update(stats.hits - before)
                    bar.set_postfix(tokens=stats.completion_tokens_spent, hits=stats.hits, errors=stats.errors)
                if missing and stats.hits == before:
                    if not waits:
                        log.info("%s: %d answer(s) are being fetched by another run; waiting", desc, len(missing))
                    waits += 1
                    time.sleep(min(2.0, 0.2 * waits))
        finally:
            if cache is not None:
                cache.release()
    unanswered = sum(1 for row in results for c in row if c is None)
    if budget is not None:  # the cap kept requests unsent: fail now that every arrival is committed
        budget.check(desc, arrived=stats.misses, not_asked=unanswered)
    if unanswered:
        raise RuntimeError(f"{model_id} left {unanswered} requested sample(s) unanswered")
    answered = [[c for c in row if c is not None] for row in results]
    if max_failed_fraction is not None:
        check_failed_requests(answered, max_failed_fraction, desc)
    return answered, stats


def fill_from_cache(
    cache: ResponseCache | None,
    keys: list[str],
    slots: dict[str, list[tuple[int, int]]],
    results: list[list[Completion | None]],
    stats: CacheStats,
) -> list[str]:
    """Put the cached answers of ``keys`` into ``results`` (counted as hits); return the keys still missing."""
    hits = cache.get_many(keys) if cache is not None else {}
    missing = []
    for key in keys:
        if key in hits:
            for row, index in slots[key]:
                results[row][index] = hits[key]
                stats.count_hit(hits[key])
        else:
            missing.append(key)
    return missing


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
