"""DVC behaviour on a tiny profile: the real pipeline and bundled model in a temporary git repo.

(a) `dvc repro` runs every stage; (b) `dvc exp run -S dist.hard=…` reruns sample_questions and what
follows, never grading; (c) a second `dvc repro` is a no-op; (d) `dvc metrics diff` shows changed keys.
The tiny profile runs the local models through the transformers backend so the whole module takes a few
minutes; the vLLM engine itself is exercised by tests/test_vllm_backend.py and by `make repro`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ALL_STAGES = {
    "prepare_pool", "prepare_model", "grade_questions", "build_database", "sample_questions",
    "generate_solutions", "verify_solutions", "train_student", "evaluate@base", "evaluate@student",
}
AFTER_SAMPLING = {"sample_questions", "generate_solutions", "verify_solutions", "train_student", "evaluate@student"}

TINY = {
    "pool": {"gsm8k_limit": 2, "synthetic_per_tier": 3, "heldout_per_tier": 1, "gsm8k_test_limit": 2},
    "engine": {"backend": "transformers"},
    "grade": {"attempts": 2, "max_tokens": 24},
    "sample": {"size": 5, "shortage": "fewer"},  # "fewer": a weight change always moves the tiny sample
    "teacher": {"attempts": 3, "max_tokens": 64, "keep_unverified": True},
    "verify": {"workers": 1},
    "sft": {"epochs": 1, "batch_size": 2, "max_length": 256},
    "evaluate": {"samples": 1, "max_tokens": 24},
}


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) else value
    return out


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    repo = tmp_path_factory.mktemp("adacot-dvc")
    for name in ("dvc.yaml", "stages", "src", "prompts", "data/pools", "data/benchmarks"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, repo / name)
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text(".adacot/\n__pycache__/\n")
    home = tmp_path_factory.mktemp("home")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_AUTHOR_NAME": "adacot-test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "adacot-test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    for cmd in (["git", "init", "-q", "-b", "main"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "tiny profile"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    return repo, env


def hard_weight_that_changes_sample(repo: Path) -> float:
    """A `dist.hard` value whose sample differs most from the current one on this run's database.

    Levels come from the real model's attempts, so which value moves the sample is only known after
    grading; an unchanged sample would (rightly) leave training and evaluation untouched.
    """
    from adacot.config import DistParams
    from adacot.sampling import sample_questions
    from adacot.schemas import DATABASE, read_table

    params = yaml.safe_load((repo / "params.yaml").read_text())
    database = read_table(repo / "data/database/questions.parquet", DATABASE)

    def ids(hard: float) -> set[str]:
        shares = DistParams.model_validate({**params["dist"], "hard": hard}).shares()
        sample, _ = sample_questions(database, shares, params["sample"]["size"], params["seed"],
                                     params["sample"]["shortage"])
        return set(sample["question_id"].to_list())

    current = ids(params["dist"]["hard"])
    best = max([0.0, 0.05, 0.5, 0.9, 5.0, 50.0], key=lambda h: len(ids(h) ^ current))
    histogram = database["level"].value_counts().sort("level").rows()
    assert ids(best) != current, f"no dist.hard value changes the sample; levels: {histogram}"
    return best


def run(project: tuple[Path, dict[str, str]], *args: str) -> str:
    repo, env = project
    done = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def test_pipeline_behaviour(project: tuple[Path, dict[str, str]]) -> None:
    repo, _ = project
    # (a) the first repro runs every stage and writes every metrics file.
    first = run(project, "dvc", "repro")
    assert ran_stages(first) == ALL_STAGES
    for name in ("prepare_pool", "grade_questions", "build_database", "sample_questions", "generate_solutions",
                 "verify_solutions", "train_student", "evaluate_base", "evaluate_student"):
        assert (repo / "metrics" / f"{name}.json").is_file(), name
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "first repro")

    # (c) a second repro is a no-op.
    again = run(project, "dvc", "repro")
    assert ran_stages(again) == set()

    # (b) changing only the distribution reruns sampling and everything after it, never grading.
    train_before = (repo / "data/sft/train.jsonl").read_text()
    hard = hard_weight_that_changes_sample(repo)
    exp = run(project, "dvc", "exp", "run", "-S", f"dist.hard={hard}")
    assert ran_stages(exp) == AFTER_SAMPLING, exp[-3000:]
    assert (repo / "data/sft/train.jsonl").read_text() != train_before

    # (d) metrics diff shows the changed keys against the committed baseline.
    diff = run(project, "dvc", "metrics", "diff", "--all")
    assert "requested_distribution.hard" in diff
    assert "metrics/sample_questions.json" in diff
    show = run(project, "dvc", "exp", "show", "--no-pager", "--csv")
    assert "dist.hard" in show
