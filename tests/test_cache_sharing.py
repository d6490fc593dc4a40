"""One response cache for every run of a repository, shared safely by runs at the same time.

Where the cache is (``resolve_cache_dir``: ``$ADACOT_CACHE_DIR``, else ``dvc.yaml``'s path under
``$DVC_ROOT``, which DVC points at the parent repository inside a queued experiment's temporary copy),
how runs claim the keys they ask for (``ResponseCache.claim``), and two drills with the real teacher stage
script run in two "experiment copies" of one repository against a loopback server that counts every
answer it delivers: run at once with overlapping samples, they pay once per distinct (question, sample);
one of them SIGKILLed mid-stage and rerun, nothing is lost and nothing is paid twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, write_teacher_sample
from openai_fake_server import FakeOpenAIServer

from adacot.llm import Completion, ResponseCache, resolve_cache_dir
from adacot.pools import generate_synthetic
from adacot.schemas import SOLUTIONS, read_table


def test_the_cache_lives_under_dvc_root_unless_the_environment_moves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADACOT_CACHE_DIR", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_cache_dir(".adacot/cache") == tmp_path / ".adacot/cache"
    assert resolve_cache_dir() == tmp_path / ".adacot/cache"
    # Inside a queued experiment DVC runs the stage in a temporary copy with DVC_ROOT = the parent repo.
    parent = tmp_path / "repo"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(parent))
    assert resolve_cache_dir(".adacot/cache") == parent / ".adacot/cache"
    assert resolve_cache_dir("/elsewhere/cache") == Path("/elsewhere/cache")
    monkeypatch.setenv("ADACOT_CACHE_DIR", "/shared/adacot-cache")
    assert resolve_cache_dir(".adacot/cache") == Path("/shared/adacot-cache")
    monkeypatch.setenv("ADACOT_CACHE_DIR", "team-cache")  # relative: under DVC_ROOT as well
    assert resolve_cache_dir(".adacot/cache") == parent / "team-cache"


def _answer(text: str) -> Completion:
    return Completion(text=text, finish_reason="stop", prompt_tokens=3, completion_tokens=5, model_id="m")


def test_a_key_claimed_by_a_live_run_is_left_to_it_until_answered_or_released(tmp_path: Path) -> None:
    first, second = ResponseCache(tmp_path), ResponseCache(tmp_path)
    assert first.claim(["a", "b"]) == ({"a", "b"}, set())
    assert second.claim(["b", "c"]) == ({"c"}, {"b"})
    assert first.claim(["b"]) == ({"b"}, set())  # a run's own claim stays its own
    first.put_many([("b", _answer("B"))])  # an answer lands: its claim goes with it, and nobody claims it again
    assert second.claim(["b"]) == (set(), {"b"})
    assert first.claim(["b"]) == (set(), {"b"})
    assert first.claim(["a", "c"]) == ({"a"}, {"c"})
    second.release()
    assert first.claim(["c"]) == ({"c"}, set())
    first.release(["a"])
    assert second.claim(["a"]) == ({"a"}, set())
    first.close()
    second.close()


def test_claims_of_a_killed_process_are_taken_over(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from adacot.llm import ResponseCache\n"
        "cache = ResponseCache(Path(sys.argv[1]))\n"
        "print(sorted(cache.claim(['x', 'y'])[0]), flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "['x', 'y']"
        cache = ResponseCache(tmp_path)
        assert cache.claim(["x", "z"]) == ({"z"}, {"x"})  # alive: its claims hold
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert cache.claim(["x", "y"]) == ({"x", "y"}, set())  # gone: taken over
        cache.close()
    finally:
        holder.kill()
        holder.wait()


# -- the teacher stage in two experiment copies of one repository ---------------------------------------

ATTEMPTS = 2
SECRET = "sk-adacot-sharing-drill-7a41c0e2"


def _write_sample(path: Path, ids: range) -> None:
    write_teacher_sample(path, generate_synthetic(8, seed=0, split="pool")[list(ids)])


def _copy(repo: Path, name: str, params_raw: dict[str, Any], url: str, ids: range) -> Path:
    """A queued experiment's temporary copy of ``repo`` (where DVC puts them), with its own sample."""
    copy = repo / ".dvc" / "tmp" / "exps" / name
    copy.mkdir(parents=True)
    params = {
        **params_raw,
        "teacher": {**params_raw["teacher"], "backend": "openai", "model": "fake-teacher", "attempts": ATTEMPTS},
        "api": {**params_raw["api"], "base_urls": [url], "api_key_env": "ADACOT_DRILL_KEY", "max_concurrency": 4},
    }
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _write_sample(copy / "sample.parquet", ids)
    return copy


def _stage(copy: Path, repo: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(ROOT / "stages" / "generate_solutions.py"), "--sample", "sample.parquet"]
    cmd += ["--base-model", "unused", "--prompts", str(ROOT / "prompts" / "math.yaml"), "--cache-dir", ".adacot/cache"]
    cmd += ["--solutions", "out/solutions.parquet", "--metrics", "out/metrics.json"]
    env = {k: v for k, v in os.environ.items() if k != "ADACOT_CACHE_DIR"}
    env.update({"ADACOT_DRILL_KEY": SECRET, "DVC_ROOT": str(repo)})
    return subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str]) -> None:
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output[-3000:]


def _metrics(copy: Path) -> dict[str, Any]:
    return json.loads((copy / "out" / "metrics.json").read_text())


@pytest.mark.slow
def test_two_runs_at_once_pay_once_per_distinct_question_and_sample(tmp_path: Path, params_raw: dict) -> None:
    with FakeOpenAIServer(latency_s=0.2, api_key=SECRET) as server:
        a = _copy(tmp_path, "exp-a", params_raw, server.base_url, range(0, 30))
        b = _copy(tmp_path, "exp-b", params_raw, server.base_url, range(10, 40))  # 20 questions shared
        runs = [_stage(a, tmp_path), _stage(b, tmp_path)]
        for proc in runs:
            _finish(proc)
    distinct = 40 * ATTEMPTS
    paid = _metrics(a)["cache"]["misses"] + _metrics(b)["cache"]["misses"]
    assert server.repeated_answers() == {}
    assert server.answered == 40  # n = 2 natively: one request per distinct question, each delivered once
    assert paid == distinct, (paid, distinct)
    assert _metrics(a)["cache"]["hits"] + _metrics(b)["cache"]["hits"] == 20 * ATTEMPTS
    for copy in (a, b):
        assert read_table(copy / "out" / "solutions.parquet", SOLUTIONS).height == 30 * ATTEMPTS
    # The answers live in the parent repository's cache, not in the copies DVC deletes after a queued run.
    assert not (a / ".adacot").exists() and not (b / ".adacot").exists()
    cache = ResponseCache(tmp_path / ".adacot" / "cache")
    assert len(cache) == distinct
    cache.close()


@pytest.mark.slow
def test_a_run_killed_mid_stage_loses_nothing_and_its_rerun_pays_nothing_twice(
    tmp_path: Path, params_raw: dict
) -> None:
    with FakeOpenAIServer(latency_s=0.2, api_key=SECRET) as server:
        a = _copy(tmp_path, "exp-a", params_raw, server.base_url, range(0, 30))
        b = _copy(tmp_path, "exp-b", params_raw, server.base_url, range(10, 40))
        run_a, run_b = _stage(a, tmp_path), _stage(b, tmp_path)
        deadline = time.monotonic() + 120
        while server.answered < 12 and run_b.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert run_b.poll() is None, run_b.communicate()[0][-3000:]
        time.sleep(0.1)  # mid-way through a latency window: B has requests in flight and claims it holds
        run_b.send_signal(signal.SIGKILL)
        run_b.wait()
        _finish(run_a)  # A takes over whatever B claimed and never answered
        rerun_b = _stage(b, tmp_path)
        _finish(rerun_b)
    assert server.repeated_answers() == {}
    assert server.answered == 40
    assert _metrics(b)["cache"]["misses"] + _metrics(a)["cache"]["misses"] <= 40 * ATTEMPTS
    assert _metrics(b)["cache"]["hits"] + _metrics(b)["cache"]["misses"] == 30 * ATTEMPTS
    for copy in (a, b):
        solutions = read_table(copy / "out" / "solutions.parquet", SOLUTIONS)
        assert solutions.height == 30 * ATTEMPTS
        assert solutions["error"].null_count() == solutions.height
