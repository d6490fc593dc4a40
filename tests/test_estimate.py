"""`adacot estimate`: the pipeline's projection on a fresh project (no outputs, counts from params) and on one
whose response cache already holds a stage's answers, and the README's block run exactly as written.

A "fresh project" is what a clone holds (params.yaml, prompts, the shipped sources) copied to a temporary
folder; the commands run as the installed console script in it. No model is called or loaded.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FakeChatModel
from test_readme_runs import README, params_after, readme_block

from adacot.config import in_domain, load_params
from adacot.llm import ResponseCache, cached_complete
from adacot.llm.roles import sampling_from
from adacot.sources import load_source
from adacot.stageio import load_prompts

ROOT = Path(__file__).resolve().parents[1]


def fresh_project(tmp_path: Path, update: dict[str, Any] | None = None) -> Path:
    """A clone's files without any pipeline output; ``update`` merged into params.yaml section by section."""
    repo = tmp_path / "clone"
    repo.mkdir()
    for name in ("prompts", "data/pools", "data/benchmarks"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).symlink_to(ROOT / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in (update or {}).items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def adacot(repo: Path, *args: str) -> str:
    """The console script in ``repo``; fails the test with its output when it fails."""
    exe = Path(sys.executable).parent / "adacot"
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "adacot.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p.endswith("src"))}
    done = subprocess.run([*command, *args], cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _stages(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["stage"]: row for row in doc["stages"]}


def _pool_questions(repo: Path) -> tuple[list[str], dict[str, list[str]]]:
    params = load_params(repo / "params.yaml")

    def read(spec: Any, split: str) -> list[str]:
        spec = spec.model_copy(update={"path": str(repo / spec.path)}) if spec.path else spec
        return load_source(spec, params.seed, split).questions["question"].to_list()

    pool = [q for s in in_domain(params.pool.sources, params.domain) for q in read(s, "pool")]
    bench = {b.name: read(b, "test") for b in in_domain(params.benchmarks, params.domain)}
    return pool, bench


def test_estimate_on_a_fresh_project_counts_from_params(tmp_path: Path) -> None:
    repo = fresh_project(tmp_path)
    doc = json.loads(adacot(repo, "estimate", "--json"))
    params = load_params(repo / "params.yaml")
    pool, bench = _pool_questions(repo)
    stages = _stages(doc)
    assert list(stages) == [
        "grade_questions@pool",
        "grade_questions@eval",
        "score_failures@pool",
        "score_failures@eval",
        "generate_solutions",
        "evaluate@base",
        "evaluate@student",
    ]
    grade = stages["grade_questions@pool"]
    assert grade["answers"] == grade["requests_to_send"] == len(pool) * params.grade.attempts
    assert grade["completion_tokens"] == grade["answers"] * params.grade.max_tokens  # no history: the bound
    assert grade["cached"] is None  # models/base is not prepared: its cache identity is unknown
    evals = sum(len(q) for q in bench.values())
    assert stages["grade_questions@eval"]["answers"] == evals * params.grade.attempts
    # The single-pass judge asks once per failing attempt; per step, once per step.
    per_attempt = 1 if params.prm.judge == "single_pass" else params.prm.max_steps
    judge = params.prm.max_attempts * per_attempt
    assert stages["score_failures@pool"]["answers"] == len(pool) * judge
    teacher = stages["generate_solutions"]
    assert teacher["answers"] == params.sample.size * params.teacher.attempts
    assert stages["evaluate@base"]["answers"] == evals * params.evaluate.samples
    assert doc["total"]["usd"] == 0.0  # every role local
    assert doc["total"]["answers"] == sum(r["answers"] for r in stages.values())
    assert not (repo / ".adacot").exists() and not (repo / "data/pool").exists()  # nothing written


def test_estimate_with_a_warm_cache_counts_hits_and_uses_history(tmp_path: Path) -> None:
    served = {"backend": "openai", "served_model": "srv", "api": {}}
    repo = fresh_project(tmp_path, {"student": served, "prices": {"srv": {"input": 1.0, "output": 3.0}}})
    cold = _stages(json.loads(adacot(repo, "estimate", "--json")))
    params = load_params(repo / "params.yaml")
    prompts = load_prompts(repo / "prompts/math.yaml", "math")
    pool, _ = _pool_questions(repo)
    attempts = params.grade.attempts
    assert cold["grade_questions@pool"]["cached"] == 0
    assert cold["grade_questions@pool"]["usd"] == pytest.approx(
        (cold["grade_questions@pool"]["prompt_tokens"] * 1.0 + len(pool) * attempts * params.grade.max_tokens * 3.0)
        / 1e6
    )
    # The student answers the pool (as grade_questions does: same prompts, sampling and cache keys).
    cache = ResponseCache(repo / ".adacot/cache")
    student = FakeChatModel(lambda user, i: f"two words {i}", model_id="openai:srv")
    conversations = [prompts.render("student", q) for q in pool]
    cached_complete(student, conversations, sampling_from(params.grade, params.seed), attempts, cache, progress=False)
    cache.close()

    warm = _stages(json.loads(adacot(repo, "estimate", "--json")))
    grade = warm["grade_questions@pool"]
    assert (grade["cached"], grade["requests_to_send"], grade["usd"]) == (len(pool) * attempts, 0, 0.0)
    # The eval set is not cached, but is now projected at the student's own history (the fake bills 3 words + 1).
    evals = warm["grade_questions@eval"]
    assert evals["cached"] == 0 and evals["basis"].startswith(f"history of {len(pool) * attempts} cached answers")
    assert evals["completion_tokens"] == 4 * evals["requests_to_send"]
    table = adacot(repo, "estimate")
    assert re.search(rf"grade_questions@pool\s+student\s+srv\s+openai\s+{len(pool) * attempts:,}\s+", table)


def test_a_cap_on_an_unpriced_model_fails_estimate_at_params_load(tmp_path: Path) -> None:
    repo = fresh_project(tmp_path)
    exe = [sys.executable, "-m", "adacot.cli", "estimate", "-S", "teacher.backend=openai", "-S", "teacher.model=x"]
    done = subprocess.run([*exe, "-S", "api.max_spend_usd=3"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 2
    assert "api.max_spend_usd=3 caps teacher's spend but prices has no entry for its served model 'x'" in done.stdout


def test_the_readme_estimate_block_runs_as_written(tmp_path: Path) -> None:
    repo = fresh_project(tmp_path)
    plain, paper, as_json, experiment = readme_block("estimate")
    assert plain == ["adacot", "estimate"] and as_json[:3] == ["adacot", "estimate", "--json"]
    assert "generate_solutions" in adacot(repo, *plain[1:])
    assert json.loads(adacot(repo, *as_json[1:]))["total"]["answers"] > 0
    # The printout the README shows is what the command prints on a fresh clone.
    printed = adacot(repo, *paper[1:]).rstrip("\n")
    shown = README.split("printed on a fresh clone:\n\n```\n", 1)[1].split("\n```", 1)[0]
    assert printed == shown
    teacher = next(line for line in printed.splitlines() if line.startswith("generate_solutions"))
    assert "16,000" in teacher and "524,288,000" in teacher and "deepseek-reasoner" in teacher
    # The dvc exp run line gives valid params: a capped teacher at its listed price.
    params = params_after(experiment, tmp_path)
    assert params.role_api("teacher").max_spend_usd == 20 and "deepseek-reasoner" in params.prices
    assert shlex.join(paper).startswith("adacot estimate -S sample.size=2000")
    shutil.rmtree(repo)
