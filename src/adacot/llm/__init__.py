"""Model access: the ``ChatModel`` protocol, its backends, the response cache and the cost ledger.

``open_student_model`` / ``open_teacher_model`` open what params ask for a role: a local engine
(``open_local_model``: vLLM when importable, else transformers) or OpenAI-compatible servers
(``OpenAIChatModel``, key from the environment variable that params name). Importing this package
imports no engine and no HTTP client.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adacot.config import ApiParams, EngineParams, Params, PriceParams
from adacot.llm.base import ChatModel, Completion, Conversation, Message, Sampling, StreamingChatModel
from adacot.llm.cache import (
    CacheStats,
    Price,
    ResponseCache,
    cache_key,
    cached_complete,
    check_failed_requests,
    failure_budget,
    resolve_cache_dir,
)

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
    "check_failed_requests",
    "cpu_has_native_bf16",
    "failure_budget",
    "on_cpu",
    "open_local_model",
    "open_model",
    "open_student_model",
    "open_teacher_model",
    "open_verdict_reader",
    "price_of",
    "resolve_backend",
    "resolve_cache_dir",
    "resolve_dtype",
]


def resolve_backend(engine: EngineParams) -> str:
    """The backend that ``engine.backend`` means on this machine, with a clear error if it is absent."""
    from adacot.llm.vllm_backend import vllm_importable

    if engine.backend == "auto":
        return "vllm" if vllm_importable() else "transformers"
    if engine.backend == "vllm" and not vllm_importable():
        raise RuntimeError("engine.backend=vllm but vllm is not installed: install the cpu or gpu extra")
    return engine.backend


def on_cpu() -> bool:
    """True when local models run on the CPU (no CUDA device visible)."""
    import torch

    return not torch.cuda.is_available()


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), by torch's own CPUID check."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_dtype(dtype: str, on_cpu: bool) -> str:
    """What ``engine.dtype`` means on this machine: an explicit dtype as it is; ``auto`` on a GPU is the
    model's own (``auto``, which vLLM and transformers read from its config), on a CPU ``bfloat16`` where
    the CPU computes it natively (``cpu_has_native_bf16``) and ``float32`` elsewhere.

    Measured with vLLM on SmolLM2-135M (2 cores): with AVX512-BF16/AMX, bfloat16 decodes 430 tok/s and
    prefills 1,974 tok/s against float32's 217 and 928; without them, bfloat16 is emulated, 21 tok/s
    against 102. The dtype is not part of the response cache key (the same weights answer), so answers
    cached in one dtype are reused in the other.
    """
    if dtype != "auto":
        return dtype
    if not on_cpu:
        return "auto"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def open_local_model(path: Path, engine: EngineParams, seed: int) -> ChatModel:
    """Load the model ``path`` names (an HF folder, or a reference record such as ``models/base``, resolved
    by ``adacot.models.resolve_weights``) with the configured backend."""
    model: ChatModel = _open_local(path, engine, seed, "chat")
    return model


def open_verdict_reader(path: Path, engine: EngineParams, seed: int) -> Any:
    """The single-pass judge's engine for the model ``path`` names: something with ``yes_probability_at``,
    ``tokenizer``, ``model_id`` and ``close``. vLLM: its pooling runner reading the verdict rows of the LM
    head (``VllmVerdictReader``, in ``data_parallel_size`` replicas when > 1); transformers: the chat model,
    which reads the slots itself."""
    return _open_local(path, engine, seed, "verdicts")


def _open_local(path: Path, engine: EngineParams, seed: int, kind: str) -> Any:
    """``kind`` ``chat`` (``VllmChatModel``) or ``verdicts`` (``VllmVerdictReader``) on vLLM, in
    ``data_parallel_size`` replicas when > 1; on transformers the chat model, which does both."""
    from adacot.models import read_model_info, resolve_weights

    model_id = read_model_info(path).model_id
    weights = resolve_weights(path)
    if resolve_backend(engine) == "vllm":
        if engine.data_parallel_size > 1:
            from adacot.llm.vllm_dp import DataParallelVllmChatModel

            return DataParallelVllmChatModel(weights, model_id, engine, seed, kind=kind)
        from adacot.llm import vllm_backend
        from adacot.llm.vllm_dp import REPLICA_KINDS

        return getattr(vllm_backend, REPLICA_KINDS[kind])(weights, model_id, engine, seed)
    if engine.data_parallel_size > 1:
        raise RuntimeError(
            "engine.data_parallel_size > 1 runs vLLM replicas but vllm is not installed: install "
            "the cpu or gpu extra, or set data_parallel_size: 1"
        )
    from adacot.llm.transformers_backend import TransformersChatModel

    return TransformersChatModel(weights, model_id, engine, seed)


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


def price_of(prices: dict[str, PriceParams], model_name: str) -> Price:
    """The price of ``model_name`` from the ``prices`` section (free when unlisted: local models cost nothing)."""
    entry = prices.get(model_name)
    return Price(entry.input, entry.output) if entry else Price()


def open_model(
    backend: str,
    name: str,
    api: ApiParams,
    local_path: Path,
    engine: EngineParams,
    seed: int,
    prices: dict[str, PriceParams],
) -> tuple[ChatModel, Price]:
    """A role's model and its price: OpenAI-compatible servers (``backend == "openai"``, ``name`` = the
    served model; the key is checked before anything is sent; the model carries this run's spend budget
    under ``api.max_spend_usd``) or the local weights at ``local_path``."""
    if backend == "openai":
        from adacot.llm.openai_backend import OpenAIChatModel
        from adacot.llm.spend import budget_for

        price = price_of(prices, name)
        return OpenAIChatModel(name, api, api_key_from_env(api), seed=seed, spend=budget_for(api, price)), price
    model = open_local_model(local_path, engine, seed)
    return model, price_of(prices, model.model_id.split("@")[0])


def open_student_model(params: Params, local_path: Path) -> tuple[ChatModel, Price]:
    """The student as params choose it: the prepared weights at ``local_path``, or ``student.served_model``
    on the ``student.api`` servers."""
    student = params.student
    return open_model(
        student.backend,
        student.served_model or "",
        params.role_api("student"),
        local_path,
        params.role_engine("student"),
        params.seed,
        params.prices,
    )


def open_teacher_model(params: Params, base_path: Path) -> tuple[ChatModel, Price]:
    """The teacher as params choose it: ``teacher.model`` on the ``teacher.api`` servers, a local folder, or
    ``base`` (the prepared student base at ``base_path``, the only model offline)."""
    teacher = params.teacher
    if teacher.backend == "reference":  # a caller's bug: the reference teacher is data, not a model
        raise ValueError("teacher.backend=reference has no model to open; use generation.reference_solutions")
    local_path = base_path if teacher.model == "base" else Path(teacher.model)
    return open_model(
        teacher.backend,
        teacher.model,
        params.role_api("teacher"),
        local_path,
        params.role_engine("teacher"),
        params.seed,
        params.prices,
    )
