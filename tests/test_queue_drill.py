"""Drill: two `dvc queue` workers fill one response cache and one is SIGKILLed mid-stage.

A tiny project (its teacher a loopback server that counts every answer it delivers, and to which client
port) runs up to its sample; then two queued experiments of the teacher stage, whose answers are all new
(another temperature) and whose samples overlap, are started with `dvc queue start -j 2`. While both
teacher stages run, with requests in flight, one stage process is killed with SIGKILL. The other
experiment completes; the killed one is reported Failed and run again: nothing is lost (every answer is
in the workspace's cache) and nothing is paid twice except answers the server had sent to the killed
process in the instant before it died (delivered, not yet committed), which the test bounds by the
requests in flight at the kill.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from dvc_project import TINY, make_project, merge, ran_stages
from openai_fake_server import FakeOpenAIServer

pytestmark = pytest.mark.slow

SECRET = "sk-adacot-drill-5b1f0c2e"


def sh(script: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, f"{script}\nfailed:\n{(done.stdout + done.stderr)[-6000:]}"
    return done.stdout + done.stderr


def teacher_stage_pids(repo: Path) -> list[int]:
    """Python processes running the teacher stage inside one of ``repo``'s queued experiment copies (from
    /proc: the interpreter itself, not the shell DVC starts it with, nor another project's stage)."""
    pids = []
    exps = repo / ".dvc" / "tmp" / "exps"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if (
            len(argv) > 1
            and b"python" in Path(os.fsdecode(argv[0])).name.encode()
            and argv[1].endswith(b"stages/generate_solutions.py")
            and cwd.is_relative_to(exps)
        ):
            pids.append(int(proc.name))
    return sorted(pids)


def queue_status(repo: Path, env: dict[str, str], timeout_s: float = 1500) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = sh("dvc queue status", repo, env)
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(3)


def test_a_killed_queue_worker_loses_nothing_and_pays_nothing_twice(tmp_path: Path) -> None:
    with FakeOpenAIServer(api_key=SECRET, latency_s=0.05) as teacher:
        profile = merge(
            TINY,
            {
                "teacher": {"backend": "openai", "model": "fake-teacher"},
                "api": {"api_key_env": "ADACOT_DRILL_KEY", "base_urls": [teacher.base_url], "max_concurrency": 2},
                "sample": {"size": 6},
            },
        )
        repo, env = make_project(tmp_path / "repo", tmp_path / "home", profile, {"ADACOT_DRILL_KEY": SECRET})
        # Up to the sample (grading once); the experiments then run the teacher stage only.
        assert "sample_questions" in ran_stages(sh("dvc repro sample_questions", repo, env))
        sh("git add -A && git commit -q -m 'graded and sampled'", repo, env)

        experiments = ["-S teacher.temperature=0.9", "-S teacher.temperature=0.9 -S dist.hard=0.6"]
        before = len(teacher.deliveries)
        teacher.latency_s = 1.5  # answers take a while: the kill lands with requests in flight
        try:
            for overrides in experiments:
                sh(f"dvc exp run --queue generate_solutions {overrides}", repo, env)
            # Workers hold any pipe they inherit until the queue is done: give them none.
            subprocess.run(
                ["dvc", "queue", "start", "-j", "2"],
                cwd=repo,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=300,
            )
            victim, in_flight_at_kill = None, 0
            deadline = time.monotonic() + 900
            while victim is None and time.monotonic() < deadline:
                pids = teacher_stage_pids(repo)
                if len(pids) == 2 and teacher.in_flight > 0 and len(teacher.deliveries) > before:
                    victim = pids[0]
                    killed_params = yaml.safe_load((Path(f"/proc/{victim}/cwd") / "params.yaml").read_text())
                    in_flight_at_kill = teacher.in_flight
                    os.kill(victim, signal.SIGKILL)
                    killed_at = time.monotonic()
                else:
                    time.sleep(0.02)
            assert victim is not None, "the two teacher stages never ran at once with requests in flight"
            status = queue_status(repo, env)
        finally:
            teacher.latency_s = 0.05
        assert len(re.findall(r"\bFailed\b", status)) == 1 and len(re.findall(r"\bSuccess\b", status)) == 1, status

        # The killed experiment, run again in the workspace: its answers come from the shared cache.
        rerun = next(o for o in experiments if ("dist.hard" in o) == (killed_params["dist"]["hard"] == 0.6))
        assert "generate_solutions" in ran_stages(sh(f"dvc exp run generate_solutions {rerun}", repo, env))
        drill = teacher.deliveries[before:]
        repeats = {k: n for k, n in teacher.repeated_answers().items() if n > 1}
        detail = [
            {"key": key[:10], "at_s_from_kill": round(at - killed_at, 3), "port": port}
            for at, key, port in drill
            if key in repeats
        ]
        print(json.dumps({"deliveries": len(drill), "in_flight_at_kill": in_flight_at_kill, "repeats": detail}))
        # A repeat can only be an answer delivered to the killed process as it died, before it committed it.
        assert len(repeats) <= in_flight_at_kill, detail
        for key in repeats:
            first = min(at for at, k, _ in drill if k == key)
            assert abs(first - killed_at) < 1.0, detail
