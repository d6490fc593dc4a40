"""Data-parallel vLLM: ``engine.data_parallel_size`` engine replicas behind one ``ChatModel``.

This follows vLLM's own offline data-parallel pattern (``examples/features/data_parallel/
data_parallel_offline.py``): one process per data-parallel rank, each holding its own ``vllm.LLM`` and
answering its share of the requests. ``vllm.LLM(data_parallel_size>1)`` in one process raises,
so the replicas are processes, started once per stage and kept for every engine call:

- a dense model's ranks are independent engines (vLLM itself reconfigures them as DP=1), so each replica
  gets its own devices: on GPU ``tensor_parallel_size x pipeline_parallel_size`` of the visible GPUs
  (``CUDA_VISIBLE_DEVICES``), on CPU its share of ``engine.cpu_threads``;
- a mixture-of-experts model's ranks step together (expert layers are synchronised across them), so each
  rank gets vLLM's ``VLLM_DP_*`` variables and vLLM places the devices; every rank is sent at least one
  request per call, as vLLM's example does, and the padding answers are dropped.

The response cache stays in the calling process (``cached_complete``): only uncached requests are split
over the replicas, and their answers are committed there, so the cache is filled once whatever the number
of replicas. Not for several nodes: there, run vLLM's OpenAI server with its own ``--data-parallel-size``
(and ``--data-parallel-backend ray``) on each node and list the servers in ``api.base_urls`` (README
"Scaling out").
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from adacot.config import EngineParams
from adacot.llm.base import Completion, Conversation, Sampling

logger = logging.getLogger(__name__)

_READY = "ready"
# What a replica runs: a chat engine (generation, the per-step judge) or the single-pass judge's reader.
REPLICA_KINDS = {"chat": "VllmChatModel", "verdicts": "VllmVerdictReader"}


def shard_indices(count: int, ranks: int) -> list[range]:
    """Which of ``count`` items each of ``ranks`` replicas answers: every ``ranks``-th item from its rank on.

    Strided rather than vLLM's example's contiguous blocks: pools and benchmarks come sorted (by source,
    tier, length), and a contiguous split would give one replica all the long questions.
    """
    return [range(rank, count, ranks) for rank in range(ranks)]


def is_moe_model(path: Path) -> bool:
    """Whether vLLM counts the model at ``path`` as mixture-of-experts (its ranks must then step together)."""
    from vllm.config import ModelConfig

    return bool(ModelConfig(model=str(path)).is_moe)


def replica_environments(engine: EngineParams, on_cpu: bool, moe: bool, master_port: int) -> list[dict[str, str]]:
    """The environment each replica process starts with: its devices (dense) or vLLM's DP rank (MoE).

    Raises ``ValueError`` when the machine cannot hold ``data_parallel_size`` replicas.
    """
    size = engine.data_parallel_size
    per_replica = engine.tensor_parallel_size * engine.pipeline_parallel_size
    envs: list[dict[str, str]] = [{} for _ in range(size)]
    if on_cpu:
        if per_replica > 1:
            raise ValueError("engine.tensor_parallel_size / pipeline_parallel_size > 1 need GPUs; on CPU set both to 1")
        threads = engine.cpu_threads // size
        if threads < 1:
            raise ValueError(
                f"engine.data_parallel_size={size} replicas need at least one of engine.cpu_threads each "
                f"(cpu_threads={engine.cpu_threads}): raise cpu_threads or lower data_parallel_size"
            )
        for env in envs:
            env["OMP_NUM_THREADS"] = str(threads)
    elif not moe:
        visible = _visible_gpus()
        if len(visible) < size * per_replica:
            raise ValueError(
                f"engine.data_parallel_size={size} x tensor_parallel_size={engine.tensor_parallel_size} x "
                f"pipeline_parallel_size={engine.pipeline_parallel_size} needs {size * per_replica} GPUs; "
                f"{len(visible)} visible"
            )
        for rank, env in enumerate(envs):
            env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[rank * per_replica : (rank + 1) * per_replica])
    if moe:
        for rank, env in enumerate(envs):
            env.update(
                VLLM_DP_RANK=str(rank),
                VLLM_DP_RANK_LOCAL=str(rank),
                VLLM_DP_SIZE=str(size),
                VLLM_DP_MASTER_IP="127.0.0.1",
                VLLM_DP_MASTER_PORT=str(master_port),
            )
    return envs


def _visible_gpus() -> list[str]:
    import torch

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _exit_with_parent(parent_pid: int) -> None:
    """End this replica when the stage process is gone (killed mid-call), instead of finishing its share."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="adacot-parent-watch", daemon=True).start()


def _replica_main(
    conn: Connection,
    env: dict[str, str],
    path: str,
    model_id: str,
    engine: dict[str, Any],
    seed: int,
    parent_pid: int,
    kind: str = "chat",
) -> None:
    """One replica: set its environment, open its engine (``REPLICA_KINDS``), answer calls until told to close."""
    _exit_with_parent(parent_pid)
    os.environ.update(env)
    try:
        from adacot.llm import vllm_backend

        opener = getattr(vllm_backend, REPLICA_KINDS[kind])
        model = opener(Path(path), model_id, EngineParams.model_validate(engine), seed)
    except BaseException:  # reported to the parent, which raises it as the stage's error
        conn.send(("error", traceback.format_exc()))
        return
    conn.send((_READY, None))
    try:
        while True:
            try:
                method, args = conn.recv()
            except EOFError:  # the stage process is gone: nothing more will be asked
                break
            if method == "close":
                break
            try:
                conn.send(("ok", getattr(model, method)(*args)))
            except BaseException:  # the parent raises it; the replica stays up for the next call
                conn.send(("error", traceback.format_exc()))
    finally:
        model.close()


class DataParallelVllmChatModel:
    """``data_parallel_size`` replicas of ``VllmChatModel`` (``kind="chat"``, a ``ChatModel``) or of
    ``VllmVerdictReader`` (``kind="verdicts"``: ``yes_probability_at`` and ``tokenizer``) in their own
    processes, one model."""

    def __init__(self, path: Path, model_id: str, engine: EngineParams, seed: int, kind: str = "chat") -> None:
        import multiprocessing

        from vllm.utils.network_utils import get_open_port

        from adacot.llm import on_cpu

        self._moe = is_moe_model(path)
        envs = replica_environments(engine, on_cpu(), self._moe, get_open_port() if self._moe else 0)
        size = engine.data_parallel_size
        # Each replica is one plain engine; on CPU it gets its share of the threads.
        replica = engine.model_copy(
            update={"data_parallel_size": 1, "cpu_threads": max(1, engine.cpu_threads // size)}
        ).model_dump()
        if self._moe:
            # vLLM's DP engine core coordinates MoE ranks from its own process.
            replica["in_process"] = False
        if kind not in REPLICA_KINDS:
            raise ValueError(f"replica kind must be one of {sorted(REPLICA_KINDS)}; got {kind!r}")
        context = multiprocessing.get_context("spawn")  # vLLM and torch do not survive fork
        self._model_id = model_id
        self._path = path
        self._tokenizer: Any = None  # loaded on first use (the single-pass judge's prompts)
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for rank in range(size):
            parent, child = context.Pipe()
            proc = context.Process(
                target=_replica_main,
                args=(child, envs[rank], str(path), model_id, replica, seed, os.getpid(), kind),
                name=f"adacot-vllm-dp{rank}",
                # Not a daemon: a replica starts processes of its own (vLLM's engine core, TP workers).
                # It exits when this process goes away, its pipe then reading end-of-file.
                daemon=False,
            )
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        try:
            for rank in range(size):
                self._receive(rank)
        except BaseException:
            self.close()
            raise
        logger.info("vLLM data parallel: %d replicas of %s ready", size, model_id)

    @property
    def model_id(self) -> str:
        return self._model_id

    def _receive(self, rank: int) -> Any:
        try:
            status, value = self._conns[rank].recv()
        except EOFError:
            self._procs[rank].join(timeout=5)
            raise RuntimeError(
                f"vLLM data-parallel replica {rank} exited (code {self._procs[rank].exitcode}); see its log above"
            ) from None
        if status == "error":
            raise RuntimeError(f"vLLM data-parallel replica {rank} failed:\n{value}")
        return value

    def _scatter(self, method: str, items: Sequence[Any], *rest: Any) -> list[Any]:
        """``method`` on each replica's share of ``items`` (``shard_indices``), answers in the order of ``items``."""
        shares = shard_indices(len(items), len(self._conns))
        asked: list[tuple[int, range]] = []
        for rank, indices in enumerate(shares):
            share = [items[i] for i in indices]
            if not share and self._moe and items:
                share = [items[0]]  # MoE ranks step together: each must take part (answer dropped)
            if share:
                self._conns[rank].send((method, (share, *rest)))
                asked.append((rank, indices))
        out: list[Any] = [None] * len(items)
        failure: RuntimeError | None = None
        for rank, indices in asked:
            try:  # collect every replica's answer before raising, so none is left mid-call
                answers = self._receive(rank)
            except RuntimeError as error:
                failure = failure or error
                continue
            for index, answer in zip(indices, answers, strict=False):  # a MoE pad answer has no index
                out[index] = answer
        if failure is not None:
            raise failure
        return out

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        return self._scatter("complete", conversations, sampling, n)

    def yes_probability(self, conversations: Sequence[Conversation]) -> list[float]:
        """The generative PRM judge's P(Yes), each replica on its share (see ``VllmChatModel``)."""
        return self._scatter("yes_probability", conversations)

    def yes_probability_at(self, prompts: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[list[float]]:
        """The single-pass judge's slot scores (``kind="verdicts"``), each replica on its share."""
        return self._scatter("yes_probability_at", prompts)

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer, loaded in this process (the single-pass judge builds its prompts with it)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self._path)
        return self._tokenizer

    def close(self) -> None:
        for conn, proc in zip(self._conns, self._procs, strict=True):
            if proc.is_alive():
                with contextlib.suppress(BrokenPipeError, OSError):  # the replica is already gone
                    conn.send(("close", ()))
        for proc in self._procs:
            proc.join(timeout=60)
            if proc.is_alive():
                logger.warning("vLLM data-parallel replica %s did not stop; terminating it", proc.name)
                proc.terminate()
                proc.join(timeout=10)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
