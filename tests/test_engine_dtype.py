"""`engine.dtype: auto` and `engine.block_size: auto`: what they resolve to on CPUs (with and without native
bfloat16) and on GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adacot.llm import cpu_has_native_bf16, resolve_dtype


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("on_cpu", [True, False])
def test_an_explicit_dtype_is_kept_everywhere(dtype: str, on_cpu: bool) -> None:
    assert resolve_dtype(dtype, on_cpu) == dtype


def test_auto_on_a_gpu_is_the_models_own_dtype() -> None:
    assert resolve_dtype("auto", on_cpu=False) == "auto"


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, "float32"), (True, False, "bfloat16"), (False, True, "bfloat16"), (True, True, "bfloat16")],
)
def test_auto_on_a_cpu_is_bfloat16_only_where_the_cpu_computes_it(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_dtype("auto", on_cpu=True) == expected


def test_a_torch_without_the_checks_means_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert not cpu_has_native_bf16()
    assert resolve_dtype("auto", on_cpu=True) == "float32"


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the Linux CPU flags")
def test_the_check_agrees_with_the_cpu_flags_the_kernel_reports() -> None:
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    assert cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})


@pytest.mark.parametrize(("block_size", "on_cpu", "expected"), [
    ("auto", True, {"block_size": 32}),   # vLLM's CPU default (128) shares no prefix shorter than 128 tokens
    ("auto", False, {}),                  # GPU: vLLM's own (16)
    (64, True, {"block_size": 64}),
    (16, False, {"block_size": 16}),
])  # fmt: skip
def test_block_size_auto_is_32_on_a_cpu_and_vllms_own_on_a_gpu(
    block_size: object, on_cpu: bool, expected: dict[str, int]
) -> None:
    from conftest import engine_params

    from adacot.llm.vllm_backend import _cache_kwargs

    engine = engine_params("vllm").model_copy(update={"block_size": block_size})
    assert _cache_kwargs(engine, on_cpu) == expected


@pytest.mark.parametrize("bad", [0, 24, -32, "large"])
def test_a_block_size_vllm_cannot_take_fails_when_params_load(params_raw: dict, bad: object) -> None:
    from adacot.config import ParamsError, parse_params

    params_raw["engine"]["block_size"] = bad
    with pytest.raises(ParamsError, match="block_size"):
        parse_params(params_raw)


def test_a_block_size_the_cpu_attention_cannot_take_fails_before_the_engine_starts() -> None:
    from conftest import engine_params

    from adacot.llm.vllm_backend import _cache_kwargs

    engine = engine_params("vllm").model_copy(update={"block_size": 48})
    with pytest.raises(ValueError, match="multiple of 32 on a CPU"):
        _cache_kwargs(engine, cpu=True)
    assert _cache_kwargs(engine, cpu=False) == {"block_size": 48}
