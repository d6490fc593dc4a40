"""Model access: the ``ChatModel`` protocol, its backends, the response cache and the cost ledger.

``open_role_model`` opens what params ask for a role: a local engine (``open_local_model``: vLLM when
importable, else transformers) or OpenAI-compatible servers (``OpenAIChatModel``, key from the environment
variable that params name). Importing this package imports no engine and no HTTP client.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from adacot.config import ApiParams, EngineParams, Params
from adacot.llm.base import ChatModel, Completion, Conversation, Message, Sampling, StreamingChatModel
from adacot.llm.cache import CacheStats, Price, ResponseCache, cache_key, cached_complete

__all__ = [
    "ApiKeyMissing",
    "CacheStats",
    "ChatModel",
    "Completion",
    "Conversation",
    "Message",
    "Price",
    "ResponseCache",
    "Sampling",
    "StreamingChatModel",
    "api_key_from_env",
    "cache_key",
    "cached_complete",
    "open_local_model",
    "open_role_model",
    "price_for",
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


class ApiKeyMissing(RuntimeError):
    """``api.api_key_env`` names an environment variable that is not set."""


def api_key_from_env(api: ApiParams) -> str | None:
    """The API key from the variable that ``api.api_key_env`` names (``None`` when it names none)."""
    if api.api_key_env is None:
        return None
    value = os.environ.get(api.api_key_env, "").strip()
    if not value:
        raise ApiKeyMissing(
            f"api.api_key_env is {api.api_key_env!r} but that environment variable is not set: "
            f"`export {api.api_key_env}=...` (the key never goes in params), or set api.api_key_env: null "
            "for servers that need no key"
        )
    return value


def price_for(params: Params, model_name: str) -> Price:
    """The price of ``model_name`` from ``params.prices`` (free when unlisted: local models cost nothing)."""
    entry = params.prices.get(model_name)
    return Price(entry.input, entry.output) if entry else Price()


Role = Literal["student", "teacher"]


def open_role_model(role: Role, params: Params, local_path: Path) -> tuple[ChatModel, Price]:
    """The model a role runs on under ``params``, and its price.

    ``local_path`` is the prepared weights the role uses when local (the student's, or the teacher's when
    ``teacher.model`` is ``base``). An ``openai`` role checks its key before anything is sent.
    """
    if role == "teacher":
        backend, name = params.teacher.backend, params.teacher.model
        if backend == "local" and name != "base":
            local_path = Path(name)
    else:
        backend, name = params.student.backend, params.student.served_model or ""
    if backend == "openai":
        from adacot.llm.openai_backend import OpenAIChatModel

        api = params.role_api(role)
        return OpenAIChatModel(name, api, api_key_from_env(api), seed=params.seed), price_for(params, name)
    model = open_local_model(local_path, params.engine, params.seed)
    return model, price_for(params, model.model_id.split("@")[0])
