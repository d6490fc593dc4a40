"""The code domain through DVC on a tiny profile: the real pipeline, bundled student and sandbox in a temp repo.

(a) `dvc repro` runs every stage on MBPP and HumanEval questions; (b) `dvc exp run -S dist.hard=…` reruns
sample_questions and what follows only; (c) a second `dvc repro` is a no-op; (d) `dvc metrics diff` shows
pass@1 per benchmark. The teacher is a loopback OpenAI-compatible server answering each MBPP question
first with a wrong program and then with MBPP's own reference: the stage keeps only the one that passes
every test. The student runs through transformers so the module takes a few minutes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from dvc_project import TINY, make_project, merge, ran_stages
from dvc_project import run as run_in
from openai_fake_server import FakeOpenAIServer
from test_dvc_pipeline import AFTER_SAMPLING, ALL_STAGES, hard_weight_that_changes_sample

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MBPP = "data/benchmarks/code/mbpp.jsonl"
MBPP_FIELDS = {
    "id": "task_id",
    "question": "text",
    "tests": "test_list",
    "setup": "test_setup_code",
    "solution": "code",
}

CODE_TINY = merge(
    TINY,
    {
        "domain": "code",
        "pool": {
            "sources": [
                {
                    "name": "mbpp",
                    "path": MBPP,
                    "fields": MBPP_FIELDS,
                    "gold": "code",
                    "id_range": [601, 974],
                    "limit": 8,
                }
            ]
        },
        "benchmarks": [
            {
                "name": "humaneval",
                "path": "data/benchmarks/code/humaneval.jsonl",
                "fields": {"id": "task_id", "question": "prompt", "tests": "test", "entry_point": "entry_point"},
                "gold": "code",
                "limit": 2,
            },
            {
                "name": "mbpp_test",
                "path": MBPP,
                "fields": MBPP_FIELDS,
                "gold": "code",
                "id_range": [11, 510],
                "limit": 2,
            },
        ],
        "grade": {"attempts": 2, "max_tokens": 64},
        "teacher": {"backend": "openai", "model": "fake-teacher", "attempts": 2, "keep_unverified": False},
        "sample": {"size": 4, "shortage": "fewer"},
        "evaluate": {"samples": 2, "k": [1, 2], "max_tokens": 64},
        "verify": {"sandbox": {"wall_s": 5, "cpu_s": 3, "total_wall_s": 20}},
    },
)


def mbpp_references() -> dict[str, str]:
    rows = [json.loads(line) for line in (ROOT / MBPP).read_text().splitlines()]
    return {row["text"]: row["code"] for row in rows}


def teacher_answer(user: str, sample: int) -> str:
    """Sample 0: a program that defines nothing useful (fails); sample 1: MBPP's reference (passes)."""
    matches = [text for text in REFERENCES if text in user]
    if sample == 0 or not matches:
        return "I think this is easy.\n\n```python\ndef unrelated():\n    return None\n```\n"
    code = REFERENCES[max(matches, key=len)]  # the longest: one MBPP text can be part of another
    return f"Let me reason about it step by step.\n\nHere is the program.\n\n```python\n{code}\n```\n"


REFERENCES = mbpp_references()


@pytest.fixture(scope="module")
def teacher_server() -> FakeOpenAIServer:
    with FakeOpenAIServer(answer=teacher_answer) as server:
        yield server


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, teacher_server: FakeOpenAIServer) -> tuple[Path, dict[str, str]]:
    profile = merge(CODE_TINY, {"api": {"base_urls": [teacher_server.base_url]}})
    return make_project(tmp_path_factory.mktemp("adacot-code"), tmp_path_factory.mktemp("home"), profile)


def run(project: tuple[Path, dict[str, str]], *args: str) -> str:
    done = run_in(project, *args)
    return done.stdout + done.stderr


def test_code_pipeline_through_dvc(project: tuple[Path, dict[str, str]]) -> None:
    repo, _ = project
    # (a) every stage runs on code questions.
    first = run(project, "dvc", "repro")
    assert ran_stages(first) == ALL_STAGES
    assert "prompts/code.yaml" in (repo / "dvc.lock").read_text()
    pool = json.loads((repo / "metrics/prepare_pool.json").read_text())
    assert pool["pool_by_source"] == {"mbpp": 8} and pool["benchmark_questions"] == {"humaneval": 2, "mbpp_test": 2}
    grade = json.loads((repo / "metrics/grade_pool.json").read_text())
    assert grade["attempts"] == 16 and "mean_tests_passed_share" in grade
    verified = json.loads((repo / "metrics/verify_solutions.json").read_text())
    # Every sampled question got the wrong program and the reference: exactly the references are kept.
    assert verified["kept"] == verified["questions"] > 0
    assert verified["by_status"]["correct"] == verified["kept"]
    # The wrong program defines nothing the tests call: a NameError, so a runtime_error per question.
    assert verified["by_status"].get("runtime_error", 0) == verified["kept"]
    train = [json.loads(line) for line in (repo / "data/sft/train.jsonl").read_text().splitlines()]
    assert all("```python" in row["completion"][0]["content"] for row in train)
    for which in ("base", "student"):
        evaluated = json.loads((repo / f"metrics/evaluate_{which}.json").read_text())["benchmarks"]
        assert set(evaluated) == {"humaneval", "mbpp_test"}
        for figures in evaluated.values():
            assert {"pass@1", "pass@2", "stderr", "mean_tests_passed_share"} <= set(figures)
            assert not any(k.startswith("cons@") for k in figures)
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "code repro")

    # (c) a second repro is a no-op.
    assert ran_stages(run(project, "dvc", "repro")) == set()

    # (b) a distribution change reruns sampling onward only.
    hard = hard_weight_that_changes_sample(repo)
    exp = run(project, "dvc", "exp", "run", "-S", f"dist.hard={hard}")
    assert ran_stages(exp) == AFTER_SAMPLING, exp[-3000:]

    # (d) metrics diff shows pass@1 per benchmark.
    diff = run(project, "dvc", "metrics", "diff", "--all")
    for name in ("humaneval", "mbpp_test"):
        assert re.search(rf"metrics/evaluate_student\.json\s+benchmarks\.{name}\.pass@1", diff), diff[-3000:]
    assert yaml.safe_load((repo / "params.yaml").read_text())["domain"] == "code"
