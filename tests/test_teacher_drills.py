"""Crash drill for the teacher stage over an OpenAI-compatible server: SIGKILL it midway, rerun it.

The real stage script (stages/generate_solutions.py) runs as a subprocess with the teacher pointed at a
loopback server (tests/openai_fake_server.py) by params alone; the server counts every answer it
delivers. After the kill, a rerun must finish with every response, and the server must never have
delivered the same request twice: nothing answered was lost, nothing answered was paid for again.
"""

from __future__ import annotations

import json
import os
import shutil
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

from adacot.pools import generate_synthetic
from adacot.schemas import SOLUTIONS, read_table

pytestmark = pytest.mark.slow

QUESTIONS = 40
ATTEMPTS = 2
SECRET = "sk-adacot-crash-drill-0f3c9a71"


def _sample(path: Path) -> None:
    write_teacher_sample(path, generate_synthetic(8, seed=0, split="pool").head(QUESTIONS))


def _project(tmp_path: Path, params_raw: dict[str, Any], url: str) -> Path:
    params = {
        **params_raw,
        "teacher": {**params_raw["teacher"], "backend": "openai", "model": "fake-teacher", "attempts": ATTEMPTS},
        "api": {**params_raw["api"], "base_urls": [url], "api_key_env": "ADACOT_DRILL_KEY", "max_concurrency": 4},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _sample(tmp_path / "sample.parquet")
    return tmp_path


def _stage(project: Path) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        str(ROOT / "stages" / "generate_solutions.py"),
        "--sample",
        "sample.parquet",
        "--base-model",
        "unused",
        "--prompts",
        str(ROOT / "prompts" / "math.yaml"),
        "--cache-dir",
        "cache",
        "--solutions",
        "out/solutions.parquet",
        "--metrics",
        "out/metrics.json",
    ]
    env = {**os.environ, "ADACOT_DRILL_KEY": SECRET}
    return subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_midway_then_rerun_loses_nothing_and_repeats_nothing(tmp_path: Path, params_raw: dict) -> None:
    with FakeOpenAIServer(latency_s=0.15, api_key=SECRET) as server:
        project = _project(tmp_path, params_raw, server.base_url)
        proc = _stage(project)
        deadline = time.monotonic() + 120
        while server.answered < QUESTIONS // 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"stage ended before the kill:\n{proc.communicate()[0][-3000:]}"
        # Kill mid-way through the next latency window: answers already delivered have been committed (the
        # client commits each within milliseconds), the 4 requests in flight have not been answered yet.
        # (An answer caught on the wire at the instant of a SIGKILL cannot be saved by any client.)
        time.sleep(0.075)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        answered_before_kill = server.answered
        assert 0 < answered_before_kill < QUESTIONS
        assert not (project / "out" / "solutions.parquet").exists()

        rerun = _stage(project)
        output = rerun.communicate(timeout=300)[0]
        assert rerun.returncode == 0, output[-3000:]

    solutions = read_table(project / "out" / "solutions.parquet", SOLUTIONS)
    assert solutions.height == QUESTIONS * ATTEMPTS
    assert solutions["error"].null_count() == solutions.height
    # Nothing answered before the kill was asked again; nothing was lost.
    assert server.repeated_answers() == {}
    assert server.answered == QUESTIONS  # n=2 natively: one request per question, each delivered once
    rerun_metrics = json.loads((project / "out" / "metrics.json").read_text())
    assert rerun_metrics["cache"]["hits"] == ATTEMPTS * answered_before_kill
    # The key reached the server as a bearer token and nowhere on disk.
    assert server.seen_auth == {f"Bearer {SECRET}"}
    for path in project.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    shutil.rmtree(project / "cache")
