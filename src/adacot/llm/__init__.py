"""Model access: the ``ChatModel`` protocol, local backends (vLLM, transformers) and the response cache.

``open_local_model`` picks the backend named in params (``auto`` = vLLM when importable, else
transformers). Importing this package imports no engine.
"""

from __future__ import annotations

from pathlib import Path

from adacot.config import EngineParams
from adacot.llm.base import ChatModel, Completion, Conversation, Message, Sampling
from adacot.llm.cache import CacheStats, ResponseCache, cache_key, cached_complete

__all__ = [
    "CacheStats",
    "ChatModel",
    "Completion",
    "Conversation",
    "Message",
    "ResponseCache",
    "Sampling",
    "cache_key",
    "cached_complete",
    "open_local_model",
    "resolve_backend",
]


def resolve_backend(engine: EngineParams) -> str:
    """The backend that ``engine.backend`` means on this machine, with a clear error if it is absent."""
    from adacot.llm.vllm_backend import vllm_importable

    if engine.backend == "auto":
        return "vllm" if vllm_importable() else "transformers"
    if engine.backend == "vllm" and not vllm_importable():
        raise RuntimeError("engine.backend=vllm but vllm is not installed: install the cpu or gpu extra")
    return engine.backend


def open_local_model(path: Path, engine: EngineParams, seed: int) -> ChatModel:
    """Load the HF folder at ``path`` with the configured backend."""
    from adacot.models import read_model_info

    model_id = read_model_info(path).model_id
    if resolve_backend(engine) == "vllm":
        from adacot.llm.vllm_backend import VllmChatModel

        return VllmChatModel(path, model_id, engine, seed)
    from adacot.llm.transformers_backend import TransformersChatModel

    return TransformersChatModel(path, model_id, engine, seed)
