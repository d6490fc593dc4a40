"""Team answers through the DVC remote: push and pull snapshots of the response cache.

``adacot cache-push`` writes the responses this cache holds that the remote does not yet have into one
SQLite snapshot and uploads it under ``<remote>/adacot/responses/``; ``adacot cache-pull`` downloads the
snapshots this cache has not merged yet and adds their answers (existing keys win). The remote is the
repository's DVC remote, opened with DVC's own configuration and credentials (``dvc remote add`` /
``modify``; S3 through the ``s3`` extra), so there is nothing more to set up and no secret passes through
adacot. What each cache has sent to or taken from a remote is recorded in the cache (tables ``synced``
and ``snapshots``), so a push sends only new answers, a pull fetches only new snapshots, and either one
that fails half-way (a remote that refuses writes, a network that goes away) leaves the local cache as it
was and is simply run again. Snapshots live outside DVC's ``files/`` layout, so ``dvc gc --cloud`` does
not touch them. The SQLite file itself is never put on a shared disk (its locks are not safe on NFS).

This module moves answers; it does not decide what to ask (stages) and does not open models.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adacot.llm.cache import ResponseCache

PREFIX = "adacot/responses"


class RemoteError(RuntimeError):
    """The remote could not be reached, read or written; the local cache is unchanged."""


@dataclass(frozen=True)
class SyncResult:
    """What one push or pull moved."""

    remote: str
    snapshots: int
    responses: int
    held: int  # responses in the local cache afterwards


def open_remote(repo_root: Path | None = None, name: str | None = None) -> tuple[Any, str, str]:
    """(filesystem, snapshot folder on it, remote URL for messages) of a DVC remote of the repo.

    ``name`` None is the default remote (``dvc remote add -d``). Credentials and endpoints come from DVC's
    config and the environment, exactly as for ``dvc push``.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(repo_root) if repo_root else None)
        remote = repo.cloud.get_remote(name)
    except DvcException as error:
        raise RemoteError(f"no usable DVC remote: {error}") from None
    url = str(repo.config["remote"][remote.name]["url"]) if getattr(remote, "name", None) else remote.path
    return remote.fs, remote.fs.join(remote.path, PREFIX), url


def _ensure_tables(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS synced (remote TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (remote, key))")
    db.execute(
        "CREATE TABLE IF NOT EXISTS snapshots (remote TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (remote, name))"
    )
    db.commit()


def push(cache: ResponseCache, fs: Any, folder: str, remote: str) -> SyncResult:
    """Upload the responses ``remote`` does not have yet as one snapshot; record them as synced after it landed."""
    db = cache._db
    _ensure_tables(db)
    rows = db.execute(
        "SELECT key, value FROM responses WHERE key NOT IN (SELECT key FROM synced WHERE remote = ?) ORDER BY key",
        (remote,),
    ).fetchall()
    if not rows:
        return SyncResult(remote, 0, 0, len(cache))
    name = "responses-" + hashlib.sha256("\n".join(k for k, _ in rows).encode()).hexdigest()[:32] + ".sqlite"
    with tempfile.TemporaryDirectory(prefix="adacot-push-") as work:
        local = Path(work) / name
        snapshot = sqlite3.connect(local)
        snapshot.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        snapshot.executemany("INSERT INTO responses (key, value) VALUES (?, ?)", rows)
        snapshot.commit()
        snapshot.close()
        try:
            fs.makedirs(folder, exist_ok=True)
            fs.put_file(str(local), fs.join(folder, name))
        except Exception as error:  # any transport or permission error: nothing is recorded
            raise RemoteError(f"upload to {remote} failed: {_reason(error)}") from None
    with db:
        db.executemany("INSERT OR IGNORE INTO synced (remote, key) VALUES (?, ?)", [(remote, k) for k, _ in rows])
        db.execute("INSERT OR IGNORE INTO snapshots (remote, name) VALUES (?, ?)", (remote, name))
    return SyncResult(remote, 1, len(rows), len(cache))


def pull(cache: ResponseCache, fs: Any, folder: str, remote: str) -> SyncResult:
    """Merge every snapshot on ``remote`` this cache has not merged yet (existing keys win)."""
    db = cache._db
    _ensure_tables(db)
    try:
        listed = fs.ls(folder, detail=False) if fs.exists(folder) else []
    except Exception as error:
        raise RemoteError(f"listing {remote} failed: {_reason(error)}") from None
    names = sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in listed)
    done = {n for (n,) in db.execute("SELECT name FROM snapshots WHERE remote = ?", (remote,))}
    todo = [n for n in names if n.startswith("responses-") and n.endswith(".sqlite") and n not in done]
    before = len(cache)
    for name in todo:
        with tempfile.TemporaryDirectory(prefix="adacot-pull-") as work:
            local = Path(work) / name
            try:
                fs.get_file(fs.join(folder, name), str(local))
            except Exception as error:
                raise RemoteError(f"download of {name} from {remote} failed: {_reason(error)}") from None
            try:
                with db:
                    db.execute("ATTACH DATABASE ? AS snap", (str(local),))
                    db.execute("INSERT OR IGNORE INTO responses SELECT key, value FROM snap.responses")
                    db.execute(
                        "INSERT OR IGNORE INTO synced (remote, key) SELECT ?, key FROM snap.responses", (remote,)
                    )
                    db.execute("INSERT OR IGNORE INTO snapshots (remote, name) VALUES (?, ?)", (remote, name))
            except sqlite3.DatabaseError as error:
                raise RemoteError(f"snapshot {name} on {remote} is not a response cache: {error}") from None
            finally:
                if _attached(db):
                    db.execute("DETACH DATABASE snap")
    return SyncResult(remote, len(todo), len(cache) - before, len(cache))


def _attached(db: sqlite3.Connection) -> bool:
    return any(row[1] == "snap" for row in db.execute("PRAGMA database_list"))


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def push_run_cache(repo_root: Path | None = None, remote: str | None = None) -> tuple[int, int]:
    """``dvc push --run-cache`` plus the outputs every run-cache entry names: (entries, objects sent).

    DVC pushes the run-cache's entries but not its copies of ``cache: false`` outputs (the metrics files
    here), so a clone restoring a stage from the run-cache alone (``dvc exp run --pull`` of an experiment a
    teammate already ran) found them missing and ran the stage again. This pushes, through DVC's own
    transfer, every object the local run-cache entries name that the local cache holds.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(repo_root) if repo_root else None)
        repo.push(run_cache=True, remote=remote)
        stage_cache = repo.stage_cache
        runs = [(f.parent.name, f.name) for f in Path(stage_cache.cache_dir).glob("*/*/*") if f.is_file()]
        objects: set[Any] = set()
        for used in stage_cache.get_used_objs(runs).values():
            objects.update(h for h in used if h.value and repo.cache.local.exists(h.value))
        result = repo.cloud.push(objects, remote=remote)
    except DvcException as error:
        raise RemoteError(f"run-cache push failed: {_reason(error)}") from None
    if result.failed:
        raise RemoteError(f"run-cache push: {len(result.failed)} object(s) failed to upload")
    return len(runs), len(result.transferred)
