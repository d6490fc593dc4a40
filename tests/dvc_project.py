"""Temporary DVC projects for the slow tests: this repo's pipeline copied into a fresh git repository.

``make_project`` copies what a clone holds (dvc.yaml, stage scripts, library, prompts, shipped data),
writes params.yaml (the real one with a profile merged in, e.g. ``TINY``), optionally links the
virtualenv as ``.venv`` (README commands name ``.venv/bin/python``), and runs ``git init``, ``dvc init`` and a first
commit with a test identity and config dirs of its own. ``run`` runs a command in it and fails the test
with the output's tail when the command fails. Not fixtures: each test module wraps these in its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("dvc.yaml", "stages", "src", "prompts", "configs", "data/pools", "data/benchmarks")

# The whole pipeline in a few minutes on 2 cores: a pool of 17 questions, 7 benchmark questions, short
# answers, one SFT epoch. The student runs through transformers (no engine start-up per stage).
TINY: dict[str, Any] = {
    "pool": {
        "sources": [
            {"name": "gsm8k", "path": "data/pools/gsm8k_train.jsonl", "split": "train", "gold": "gsm8k", "limit": 2},
            {"name": "synthetic", "kind": "synthetic", "split": "pool", "per_tier": 3},
        ]
    },
    "benchmarks": [
        {
            "name": "gsm8k_test",
            "path": "data/benchmarks/gsm8k_test.jsonl",
            "split": "test",
            "gold": "gsm8k",
            "limit": 2,
        },
        {"name": "synthetic_heldout", "kind": "synthetic", "split": "heldout", "per_tier": 1},
    ],
    "engine": {"backend": "transformers"},
    "grade": {"attempts": 2, "max_tokens": 24},
    "prm": {"max_steps": 2, "max_attempts": 1},
    "sample": {"size": 5, "shortage": "fewer"},  # "fewer": a weight change always moves the tiny sample
    "teacher": {"attempts": 3, "max_tokens": 64, "keep_unverified": True},
    "api": {"max_concurrency": 4},
    "verify": {"workers": 1},
    "sft": {"epochs": 1, "batch_size": 2, "max_length": 256},
    "evaluate": {"samples": 1, "max_tokens": 24},
}


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, section by section (a dict value merges, anything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def ran_stages(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def make_project(
    repo: Path, home: Path, profile: dict[str, Any], extra_env: dict[str, str] | None = None, *, link_venv: bool = False
) -> tuple[Path, dict[str, str]]:
    """A committed git + DVC repo at ``repo`` running this checkout's pipeline with params.yaml + ``profile``.

    Returns the repo and the environment to run commands in (venv first on PATH, no DVC analytics, git
    identity and config under ``home``).
    """
    repo.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), profile)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if link_venv:
        (repo / ".venv").symlink_to(Path(sys.executable).parents[1])
    (repo / ".gitignore").write_text(".adacot/\n__pycache__/\n.venv\n")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_AUTHOR_NAME": "adacot-test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "adacot-test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
        **(extra_env or {}),
    }
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "tiny profile"],
    ):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    return repo, env


def run(project: tuple[Path, dict[str, str]], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in the project; with ``check``, a non-zero exit fails the test with the output's tail."""
    repo, env = project
    done = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True)
    if check:
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{(done.stdout + done.stderr)[-6000:]}"
    return done
