"""The evaluate stage with `evaluate.backend: openai`: base and tuned each behind an OpenAI-compatible server
(a real HTTP server on loopback, tests/openai_fake_server.py), through the stage script as DVC runs it, with
the response cache, the cost ledger and the protocol's figures per benchmark."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import yaml
from conftest import PARAMS_PATH, PROMPTS_PATH, ROOT
from openai_fake_server import FakeOpenAIServer

from adacot.schemas import BENCHMARK, conform

QUESTIONS = [("What is 2 + 3?", "5"), ("What is 4 + 4?", "8"), ("What is 9 - 7?", "2")]


def _answer(user: str, sample: int) -> str:
    """A served model that is right on its even samples: per question pass@1 = 0.5 over n = 4."""
    gold = next(g for q, g in QUESTIONS if q in user)
    return f"Adding up. The answer is \\boxed{{{gold if sample % 2 == 0 else 0}}}."


def _run_stage(tmp_path: Path, server: FakeOpenAIServer, which: str, **api: object) -> subprocess.CompletedProcess[str]:
    params = yaml.safe_load(PARAMS_PATH.read_text())
    params["evaluate"].update(
        {
            "backend": "openai",
            "served_models": {"base": "fake-teacher", "student": "tuned-on-server"},
            "api": {"base_urls": [server.base_url], **api},
            "samples": 4,
            "k": [1, 2, 4],
        }
    )
    params["prices"] = {"fake-teacher": {"input": 1.0, "output": 2.0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rows = [
        {"benchmark": "synthetic_heldout", "question_id": f"q{i}", "source": "s", "question": q, "gold": g}
        for i, (q, g) in enumerate(QUESTIONS)
    ]
    conform(pl.DataFrame(rows).with_columns(generator_tier=None, solution=None), BENCHMARK, "b").write_parquet(
        tmp_path / "benchmarks.parquet"
    )
    command = [
        sys.executable,
        str(ROOT / "stages/evaluate.py"),
        *("--params", str(tmp_path / "params.yaml"), "--benchmarks", str(tmp_path / "benchmarks.parquet")),
        *("--which", which, "--model", str(tmp_path / "no-local-model"), "--prompts", str(PROMPTS_PATH)),
        *("--cache-dir", str(tmp_path / "cache"), "--responses", str(tmp_path / f"{which}.parquet")),
        *("--metrics", str(tmp_path / f"{which}.json")),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_served_base_is_evaluated_with_the_protocol(tmp_path: Path) -> None:
    with FakeOpenAIServer(answer=_answer, record_bodies=True) as server:
        done = _run_stage(tmp_path, server, "base")
        assert done.returncode == 0, done.stderr[-3000:]
        assert {b["model"] for b in server.bodies} == {"fake-teacher"}
        metrics = json.loads((tmp_path / "base.json").read_text())
        figures = metrics["benchmarks"]["synthetic_heldout"]
        assert figures["samples"] == 4 and figures["questions"] == 3
        assert figures["pass@1"] == 0.5  # two of four right on every question
        assert figures["pass@2"] == 1 - 1 / 6  # 1 - C(2,2)/C(4,2)
        assert figures["pass@4"] == 1.0
        assert figures["cons@4"] == 1.0  # 2-2 tie: the group answered first (sample 0, right) wins
        assert figures["cons@1"] == 1.0
        assert metrics["cache"]["misses"] == 12 and metrics["cache"]["dollars_spent"] > 0
        sent = server.requests
        # A rerun answers from the response cache: nothing is asked of the server again.
        again = _run_stage(tmp_path, server, "base")
        assert again.returncode == 0, again.stderr[-3000:]
        assert server.requests == sent
        assert json.loads((tmp_path / "base.json").read_text())["cache"]["hits"] == 12


def test_the_tuned_model_is_asked_by_its_own_served_name(tmp_path: Path) -> None:
    with FakeOpenAIServer(answer=_answer, record_bodies=True, model="tuned-on-server") as server:
        done = _run_stage(tmp_path, server, "student")
        assert done.returncode == 0, done.stderr[-3000:]
        assert {b["model"] for b in server.bodies} == {"tuned-on-server"}


def test_a_dead_server_fails_the_stage_in_one_line(tmp_path: Path) -> None:
    with FakeOpenAIServer(answer=_answer, die_after=0) as server:
        done = _run_stage(tmp_path, server, "base", max_retries=0)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert re.match(r"error: .*failed", last), done.stderr[-2000:]
    assert not (tmp_path / "base.json").exists()  # no metrics: DVC records no lock for a failed evaluation
