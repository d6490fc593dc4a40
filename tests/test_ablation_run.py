"""The README's ablation command for real (slow, a few minutes): `make ablation` in a fresh tiny project.

Two arms x two seeds of `dvc exp run --queue`, run by `dvc queue start` and read back through `dvc exp show`:
in a project whose committed dvc.lock names outputs its cache lacks (a fresh clone); the table lands in
metrics/ablation.json with every arm's runs, grading runs in exactly one experiment (the
others restore it from DVC's run-cache), every experiment trains its own student, and running the command
again queues nothing and writes the same table.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from dvc_project import ROOT, TINY, make_project, merge, ran_stages, run

from adacot.ablation import experiments, load_plan

pytestmark = pytest.mark.slow

PLAN = {
    "prefix": "t",
    "jobs": 1,
    "seeds": [0, 1],
    "params": {"teacher.backend": "reference", "sample.size": 4},
    "arms": {
        "adaptive_pc": {"sample.strategy": "adaptive", "dist.from": "weights"},
        "random": {"sample.strategy": "random"},
    },
}
GSM8K = {"fields": {"question": "question", "answer": "answer", "solution": "answer"}}


def readme_command() -> str:
    match = re.search(r"<!-- readme-test: ablation -->\n```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert match, "README has no block marked readme-test: ablation"
    (line,) = [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]
    return line.split("#")[0].strip()


def test_make_ablation_runs_every_arm_and_seed_grading_once(tmp_path: Path) -> None:
    command = readme_command()
    assert command == "make ablation"
    sources = [merge(TINY["pool"]["sources"][0], GSM8K), TINY["pool"]["sources"][1]]
    profile = merge(TINY, {"pool": {"sources": sources}})
    repo, env = make_project(tmp_path / "repo", tmp_path / "home", profile, link_venv=True)
    project = (repo, env)
    for name in ("Makefile", "pyproject.toml"):  # copy2 keeps their times: the venv's stamp stays newer
        shutil.copy2(ROOT / name, repo / name)
    (repo / "plan.yaml").write_text(yaml.safe_dump(PLAN))
    # As in a fresh clone: the committed dvc.lock names outputs this clone's DVC cache has never held
    # (experiments restored from the run-cache must not trip over them).
    shutil.copy2(ROOT / "dvc.lock", repo / "dvc.lock")
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "make and the plan")

    # The README's command, with the tiny plan; -o: the linked venv is installed already (never reinstall).
    harness = ["ABLATION_PLAN=plan.yaml", "-o", ".venv/.adacot-installed"]
    first = run(project, *command.split(), *harness)
    names = [e.name for e in experiments(load_plan(repo / "plan.yaml"))]
    table = json.loads((repo / "metrics/ablation.json").read_text())
    assert table["experiments"] == names
    for arm in PLAN["arms"]:
        cell = table["arms"][arm]["benchmarks"]["all"]["pass@1"]
        assert cell["runs"] == 2 and len(cell["values"]) == 2 and 0.0 <= cell["mean"] <= 1.0
        assert table["arms"][arm]["train_rows"] > 0
    assert "| adaptive_pc |" in first.stdout and "| random |" in first.stdout
    plot = json.loads((repo / "metrics/plots/ablation_by_level.json").read_text())
    assert plot and all({"level", "base"} <= set(row) for row in plot)
    assert (repo / "docs/ablation.png").read_bytes()[:4] == b"\x89PNG"

    # Grading ran in exactly one experiment; each trained its own student.
    ran = {name: ran_stages(run(project, "dvc", "queue", "logs", name).stdout) for name in names}
    graders = [name for name, stages in ran.items() if "grade_questions@pool" in stages]
    assert len(graders) == 1, ran
    assert all("train_student" in stages for stages in ran.values()), ran
    assert sum("evaluate@base" in stages for stages in ran.values()) == 1, ran

    # Again: every experiment has its result, nothing is queued, the same table is written.
    second = run(project, *command.split(), *harness)
    assert "0 to run" in second.stderr, second.stderr[-2000:]
    assert json.loads((repo / "metrics/ablation.json").read_text()) == table
