"""DVC behaviour on a tiny profile: the real pipeline and bundled model in a temporary git repo.

(a) `dvc repro` runs every stage; (b) `dvc exp run -S dist.hard=…` reruns sample_questions and what
follows, never grading; (c) a second `dvc repro` is a no-op; (d) `dvc metrics diff` shows changed keys.
The teacher is an OpenAI-compatible server on loopback (tests/openai_fake_server.py) chosen by params,
with its key in an environment variable, which gives two more drills: (e) the sweep drill, where the
experiment's teacher requests are exactly the questions new to its sample, and (f) the secrets drill,
where the key appears in no file the pipeline wrote. The student runs through the transformers backend
so the whole module takes a few minutes; the vLLM engine itself is exercised by tests/test_vllm_backend.py,
tests/test_vllm_openai_server.py and `make repro`.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from dvc_project import TINY, make_project, merge, ran_stages
from dvc_project import run as run_in
from openai_fake_server import FakeOpenAIServer

pytestmark = pytest.mark.slow

ALL_STAGES = {
    "prepare_pool",
    "prepare_model",
    "grade_questions@pool",
    "grade_questions@eval",
    "score_failures@pool",
    "score_failures@eval",
    "build_database",
    "sample_questions",
    "generate_solutions",
    "verify_solutions",
    "train_student",
    "evaluate@base",
    "evaluate@student",
    "breakdown",
}
# A level-rule change reruns build_database (and what follows only if the levels it writes change).
AFTER_LEVELLING = {"build_database"}
AFTER_SAMPLING = {
    "sample_questions",
    "generate_solutions",
    "verify_solutions",
    "train_student",
    "evaluate@student",
    "breakdown",
}

# The tiny profile with the teacher on a loopback server whose key is in an environment variable.
PROFILE = merge(
    TINY,
    {
        "teacher": {"backend": "openai", "model": "fake-teacher"},
        "api": {"api_key_env": "ADACOT_PIPELINE_TEST_KEY"},
    },
)

SECRET = "sk-adacot-pipeline-5b8e1d2c9f"


def hydra(value: object) -> str:
    """``value`` in the override syntax of `dvc exp run -S` (Hydra's): how a user writes a list of entries."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {hydra(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(hydra(v) for v in value) + "]"
    if value is None:
        return "null"
    return (
        str(value)
        if isinstance(value, (int, float))
        or str(value).replace("/", "").replace(".", "").replace("_", "").replace("-", "").isalnum()
        else repr(str(value))
    )


@pytest.fixture(scope="module")
def teacher_server() -> FakeOpenAIServer:
    with FakeOpenAIServer(api_key=SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, teacher_server: FakeOpenAIServer) -> tuple[Path, dict[str, str]]:
    profile = merge(PROFILE, {"api": {"base_urls": [teacher_server.base_url]}})
    return make_project(
        tmp_path_factory.mktemp("adacot-dvc"),
        tmp_path_factory.mktemp("home"),
        profile,
        {"ADACOT_PIPELINE_TEST_KEY": SECRET},
    )


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
        sample, _ = sample_questions(
            database, shares, params["sample"]["size"], params["seed"], params["sample"]["shortage"]
        )
        return set(sample["question_id"].to_list())

    current = ids(params["dist"]["hard"])
    best = max([0.0, 0.05, 0.5, 0.9, 5.0, 50.0], key=lambda h: len(ids(h) ^ current))
    histogram = database["level"].value_counts().sort("level").rows()
    assert ids(best) != current, f"no dist.hard value changes the sample; levels: {histogram}"
    return best


def run(project: tuple[Path, dict[str, str]], *args: str) -> str:
    done = run_in(project, *args)
    return done.stdout + done.stderr


def sample_ids(repo: Path) -> set[str]:
    return set(pl.read_parquet(repo / "data/sample/questions.parquet")["question_id"].to_list())


def test_pipeline_behaviour(project: tuple[Path, dict[str, str]], teacher_server: FakeOpenAIServer) -> None:
    repo, _ = project
    # (a) the first repro runs every stage and writes every metrics file.
    first = run(project, "dvc", "repro")
    assert ran_stages(first) == ALL_STAGES
    for name in (
        "prepare_pool",
        "grade_pool",
        "grade_eval",
        "score_failures_pool",
        "score_failures_eval",
        "build_database",
        "sample_questions",
        "generate_solutions",
        "verify_solutions",
        "train_student",
        "evaluate_base",
        "evaluate_student",
    ):
        assert (repo / "metrics" / f"{name}.json").is_file(), name
    # The models are referenced, not copied: models/base is a record, models/student the LoRA adapter and
    # its record; the weights live in the machine-local models dir, so the DVC cache stays small.
    assert sorted(p.name for p in (repo / "models/base").iterdir()) == ["adacot_model.json"]
    assert sorted(p.name for p in (repo / "models/student").iterdir()) == [
        "adacot_model.json",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    outs = {
        o["path"]: o["size"]
        for s in yaml.safe_load((repo / "dvc.lock").read_text())["stages"].values()
        for o in s.get("outs", [])
    }
    assert outs["models/base"] < 10_000 and outs["models/student"] < 40_000_000, outs
    cache = sum(p.stat().st_size for p in (repo / ".dvc/cache").rglob("*") if p.is_file())
    print(f"[dvc-pipeline] outs by size: {outs}; .dvc/cache {cache} bytes")
    assert cache < 50_000_000  # the bundled model alone is 269 MB
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "first repro")

    # (c) a second repro is a no-op.
    again = run(project, "dvc", "repro")
    assert ran_stages(again) == set()

    # Changing the level rule (edges, aggregation, attempt choice) would rerun the levelling (and what
    # follows if the levels change), never the student's attempts nor the PRM scoring (checked dry).
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    for key, value in (("aggregate", "mean"), ("edges", "fixed"), ("score_attempt", "first")):
        changed = yaml.safe_load(original)
        changed["levels"][key] = value
        params_path.write_text(yaml.safe_dump(changed, sort_keys=False))
        dry = run(project, "dvc", "repro", "--dry")
        assert ran_stages(dry) == AFTER_LEVELLING, (key, dry[-2000:])
    params_path.write_text(original)
    assert ran_stages(run(project, "dvc", "repro", "--dry")) == set()
    database = json.loads((repo / "metrics/build_database.json").read_text())
    assert database["grader_version"].startswith("prm:") and "generative:" in database["grader_version"]
    assert sum(database["eval"]["level_histogram"].values()) == database["eval"]["questions"] > 0

    # The teacher answered each sampled question in one request (n natively), once.
    first_sample = sample_ids(repo)
    assert teacher_server.answered == len(first_sample) and teacher_server.repeated_answers() == {}

    # (b) changing only the distribution reruns sampling and everything after it, never grading.
    train_before = (repo / "data/sft/train.jsonl").read_text()
    hard = hard_weight_that_changes_sample(repo)
    before = teacher_server.requests
    exp = run(project, "dvc", "exp", "run", "-S", f"dist.hard={hard}")
    assert ran_stages(exp) == AFTER_SAMPLING, exp[-3000:]
    assert (repo / "data/sft/train.jsonl").read_text() != train_before

    # (e) sweep drill: the experiment paid only for questions new to its sample; shared ones came from the cache.
    new_questions = sample_ids(repo) - first_sample
    assert new_questions, "the experiment's sample should hold new questions"
    assert teacher_server.requests - before == len(new_questions)
    assert teacher_server.repeated_answers() == {}
    generate = json.loads((repo / "metrics/generate_solutions.json").read_text())
    assert generate["cache"]["misses"] == 3 * len(new_questions)
    assert generate["cache"]["hits"] == 3 * len(sample_ids(repo) & first_sample)
    assert generate["cache"]["dollars_spent"] == 0.0  # fake-teacher has no price listed

    # (f) secrets drill: the key went to the server as a bearer token and into no file the pipeline wrote.
    assert teacher_server.seen_auth == {f"Bearer {SECRET}"}
    leaked = [p for p in repo.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []

    # (d) metrics diff shows the changed keys against the committed baseline.
    diff = run(project, "dvc", "metrics", "diff", "--all")
    assert "requested_distribution.hard" in diff
    assert "metrics/sample_questions.json" in diff
    show = run(project, "dvc", "exp", "show", "--no-pager", "--csv")
    assert "dist.hard" in show

    # (g) adding a benchmark reruns the eval side (the benchmark set, its grading for P_eval, evaluation),
    # never the pool's grading nor the teacher: the pool's questions are byte-identical.
    benchmarks = yaml.safe_load(params_path.read_text())["benchmarks"]
    amc = {"name": "amc23", "path": "data/benchmarks/amc23.jsonl", "fields": {"id": "id"}, "gold": "number", "limit": 1}
    added = run(project, "dvc", "exp", "run", "-S", f"benchmarks={hydra([*benchmarks, amc])}")
    ran = ran_stages(added)
    assert {"prepare_pool", "grade_questions@eval", "evaluate@base", "evaluate@student"} <= ran, added[-3000:]
    assert not ran & {"grade_questions@pool", "score_failures@pool", "generate_solutions", "train_student"}, ran
    evaluated = json.loads((repo / "metrics/evaluate_base.json").read_text())["benchmarks"]
    assert set(evaluated) == {"gsm8k_test", "synthetic_heldout", "amc23"}
    assert {"pass@1", "cons@1", "truncation_rate", "mean_response_tokens"} <= set(evaluated["amc23"])

    # (h) the source folders are deps: a file edited or added there makes prepare_pool out of date.
    (repo / "data/pools/more_questions.jsonl").write_text('{"question": "What is 1 + 1?", "answer": "#### 2"}\n')
    status = run(project, "dvc", "status", "prepare_pool")
    assert "changed deps" in status and "data/pools" in status, status
