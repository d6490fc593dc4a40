"""A team's pipeline, as the README's "Working as a team" blocks say, against a real S3 server on loopback.

Clone A runs the tiny profile (its teacher a loopback server that counts every answer it delivers),
adds the S3 remote (moto's standalone server, tests/s3_server.py), and pushes outputs, run-cache and its
paid answers. A fresh clone B pulls and `dvc repro` runs 0 stages; after `adacot cache-pull` its teacher
stage pays 0 calls for A's questions. A fresh clone C's `dvc repro --pull` fetches every stage's outputs
without running one, and its `dvc exp run --pull` of an experiment A ran restores each stage from the
run-cache. Before pushing, A runs two queued experiments with overlapping samples with
`dvc queue start -j 2`: together they pay exactly once per distinct new (question, sample), and the
answers stay in A's cache. `dvc exp push` / `pull` move an experiment from A to B. Drills: a remote that
refuses writes, and one that goes away mid-push, give a clear error, leave the local caches intact, and a
retry completes. Each README block runs as written (bash) with the variables it names set.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import ROOT
from dvc_project import TINY, make_project, merge, ran_stages
from openai_fake_server import FakeOpenAIServer
from s3_server import CREDENTIALS, FlakyProxy, MotoS3
from test_dvc_pipeline import ALL_STAGES

pytestmark = pytest.mark.slow

SECRET = "sk-adacot-team-3c9d1e77a0"
PROFILE = merge(
    TINY,
    {"teacher": {"backend": "openai", "model": "fake-teacher"}, "api": {"api_key_env": "ADACOT_TEAM_TEST_KEY"}},
)
README = (ROOT / "README.md").read_text()


def readme_bash(name: str) -> str:
    match = re.search(rf"<!-- readme-test: {name} -->\n```bash\n(.*?)```", README, re.S)
    assert match, f"README has no block marked readme-test: {name}"
    return match.group(1)


def bash(script: str, cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )
    if check:
        assert done.returncode == 0, f"{script}\nfailed:\n{(done.stdout + done.stderr)[-6000:]}"
    return done


def out(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def sample_ids(repo: Path) -> set[str]:
    return set(pl.read_parquet(repo / "data/sample/questions.parquet")["question_id"].to_list())


def sample_for(repo: Path, overrides: dict[str, float]) -> set[str]:
    """The sample `dvc exp run -S dist.<k>=<v>` draws on this repo's database (the same library call)."""
    from adacot.config import DistParams
    from adacot.sampling import sample_questions
    from adacot.schemas import DATABASE, read_table

    params = yaml.safe_load((repo / "params.yaml").read_text())
    database = read_table(repo / "data/database/questions.parquet", DATABASE)
    shares = DistParams.model_validate({**params["dist"], **overrides}).shares()
    sample, _ = sample_questions(
        database, shares, params["sample"]["size"], params["seed"], params["sample"]["shortage"]
    )
    return set(sample["question_id"].to_list())


def wait_for_queue(repo: Path, env: dict[str, str], timeout_s: float = 1500) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = out(bash("dvc queue status", repo, env))
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(5)


def cache_rows(repo: Path) -> int:
    from adacot.llm import ResponseCache

    cache = ResponseCache(repo / ".adacot" / "cache")
    held = len(cache)
    cache.close()
    return held


@pytest.fixture(scope="module")
def s3() -> MotoS3:
    with MotoS3() as server:
        yield server


@pytest.fixture(scope="module")
def teacher() -> FakeOpenAIServer:
    with FakeOpenAIServer(api_key=SECRET, latency_s=0.05) as server:
        yield server


def test_a_team_shares_outputs_run_cache_experiments_and_paid_answers(
    tmp_path_factory: pytest.TempPathFactory, s3: MotoS3, teacher: FakeOpenAIServer
) -> None:
    work = tmp_path_factory.mktemp("team")
    origin = work / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    profile = merge(PROFILE, {"api": {"base_urls": [teacher.base_url]}})
    extra = {**CREDENTIALS, "ADACOT_TEAM_TEST_KEY": SECRET, "BUCKET": s3.bucket, "S3_ENDPOINT": s3.endpoint}
    a, env = make_project(work / "adacot-a", work / "home", profile, {**extra, "REPO": str(origin)})
    bash('git remote add origin "$REPO" && git push -q -u origin main', a, env)

    # Clone A runs the pipeline and shares it.
    assert ran_stages(out(bash("dvc repro", a, env))) == ALL_STAGES
    first_sample = sample_ids(a)
    bash(readme_bash("team-remote"), a, env)
    started = time.monotonic()
    pushed = bash(readme_bash("team-push"), a, env)
    push_s = time.monotonic() - started
    assert re.search(r"pushed \d+ new response\(s\) in 1 snapshot", out(pushed)), out(pushed)
    keys = s3.keys()
    assert any(k.startswith("adacot/files/md5/") for k in keys)  # outputs
    assert any(k.startswith("adacot/runs/") for k in keys)  # run-cache
    assert "output object(s) its entries name" in out(pushed)
    assert any(k.startswith("adacot/adacot/responses/responses-") for k in keys)  # paid answers

    # Clone B: pull, then nothing to run; after cache-pull its teacher pays nothing for A's questions.
    started = time.monotonic()
    pulled = bash(readme_bash("team-pull"), work, env)
    pull_s = time.monotonic() - started
    b = work / "adacot-b"
    assert ran_stages(out(pulled)) == set() and "Data and pipelines are up to date." in out(pulled), out(pulled)
    assert re.search(r"pulled 1 snapshot\(s\) from s3://", out(pulled)), out(pulled)
    assert (b / "data/sft/train.jsonl").read_text() == (a / "data/sft/train.jsonl").read_text()
    before = teacher.answered
    forced = bash("dvc repro -f -s generate_solutions", b, env)
    assert ran_stages(out(forced)) == {"generate_solutions"}
    assert teacher.answered == before, "B paid for answers A had bought"
    metrics = json.loads((b / "metrics/generate_solutions.json").read_text())
    assert metrics["cache"]["misses"] == 0 and metrics["cache"]["hits"] == metrics["solutions"] > 0

    # Clone C: `dvc repro --pull` fetches every stage's outputs from the remote, running none.
    restored = bash('git clone -q "$REPO" adacot-c && cd adacot-c && dvc repro --pull', work, env)
    c = work / "adacot-c"
    assert ran_stages(out(restored)) == set(), out(restored)[-3000:]
    assert (c / "data/sft/train.jsonl").read_text() == (a / "data/sft/train.jsonl").read_text()
    assert (c / "models/student").is_dir() and (c / "data/evaluate/student/responses.parquet").is_file()

    # A sweep of two queued experiments with two workers: one payment per distinct new (question, sample).
    expected = {
        "hard": sample_for(a, {"hard": 0.5}),
        "easy": sample_for(a, {"easy": 0.05}),
    }
    new_questions = (expected["hard"] | expected["easy"]) - first_sample
    assert new_questions, "the README's sweep values should change the tiny sample"
    before, held_before = teacher.answered, cache_rows(a)
    started = time.monotonic()
    bash(readme_bash("team-queue"), a, env)
    status = wait_for_queue(a, env)
    queue_s = time.monotonic() - started
    assert status.count("Success") == 2, status
    assert teacher.repeated_answers() == {}
    paid = teacher.answered - before  # one request per question (n natively), each for all its attempts
    assert paid == len(new_questions), (paid, len(new_questions))
    attempts = PROFILE["teacher"]["attempts"]
    # The answers outlived the experiments' temporary copies: they are in A's cache.
    assert cache_rows(a) - held_before >= len(new_questions) * attempts
    assert not list((a / ".dvc" / "tmp" / "exps").glob("*/.adacot"))

    # A shares the sweep's run-cache; C's run of one of its experiments is restored stage by stage from it.
    bash("adacot push-run-cache", a, env)
    before = teacher.answered
    replayed = bash("dvc exp run --pull -S dist.hard=0.5", c, env)
    assert ran_stages(out(replayed)) == set(), out(replayed)[-3000:]
    assert out(replayed).count("is cached - skipping run") >= 5, out(replayed)[-3000:]
    assert teacher.answered == before
    assert sample_ids(c) == expected["hard"]
    # `dvc exp push` from A, `dvc exp pull` in B.
    names = out(bash("dvc exp list --name-only", a, env)).split()
    assert len(names) == 2, names
    push_line, pull_line = [line for line in readme_bash("team-exp").splitlines() if line.strip()]
    bash(push_line, a, {**env, "EXP": names[0]})
    bash(pull_line, b, {**env, "EXP": names[0]})
    assert names[0] in out(bash("dvc exp list --name-only", b, env))

    print(
        json.dumps(
            {
                "push_s (the team-push block: git push, dvc push, adacot push-run-cache, adacot cache-push)": round(
                    push_s, 1
                ),
                "pull_s (the team-pull block: git clone, dvc pull, dvc repro, adacot cache-pull)": round(pull_s, 1),
                "queue_s (2 experiments, -j 2)": round(queue_s, 1),
                "queued sweep: calls paid": paid,
                "queued sweep: distinct new questions": len(new_questions),
                "ratio": paid / len(new_questions),
                "remote objects": len(s3.keys()),
            }
        )
    )


def test_a_remote_that_refuses_writes_or_goes_away_loses_nothing_and_a_retry_completes(
    tmp_path_factory: pytest.TempPathFactory, s3: MotoS3, teacher: FakeOpenAIServer
) -> None:
    work = tmp_path_factory.mktemp("flaky")
    profile = merge(PROFILE, {"api": {"base_urls": [teacher.base_url]}})
    # Fewer SDK retries than the default: each refused or dropped write fails in seconds, not minutes.
    drill_env = {**CREDENTIALS, "ADACOT_TEAM_TEST_KEY": SECRET, "AWS_MAX_ATTEMPTS": "2"}
    a, env = make_project(work / "adacot", work / "home", profile, drill_env)
    bash("dvc repro prepare_pool", a, env)  # a few outputs to push
    from adacot.llm import Completion, ResponseCache

    cache = ResponseCache(a / ".adacot" / "cache")
    cache.put_many([(f"key-{i}", Completion(f"answer {i}", "stop", 3, 5, model_id="m")) for i in range(50)])
    cache.close()
    with FlakyProxy(s3.port) as proxy:
        bash(
            f"dvc remote add -d flaky s3://{s3.bucket}/flaky && dvc remote modify flaky endpointurl {proxy.endpoint}",
            a,
            env,
        )

        proxy.set("refuse_writes")
        refused = bash("dvc push", a, env, check=False)
        assert refused.returncode != 0 and "failed to push data to the cloud" in out(refused), out(refused)
        assert "AccessDenied" in out(refused) or "Access Denied" in out(refused)
        refused = bash("adacot cache-push", a, env, check=False)
        assert refused.returncode == 1, out(refused)
        assert "error: cache-push: upload to s3://" in out(refused) and "is unchanged" in out(refused), out(refused)

        proxy.set("drop_after", budget=2)  # two writes land, then the remote goes away
        dropped = bash("dvc push", a, env, check=False)
        assert dropped.returncode != 0 and "failed to push data to the cloud" in out(dropped), out(dropped)
        assert proxy.writes >= 2 and proxy.refused > 0
        dropped = bash("adacot cache-push", a, env, check=False)
        assert dropped.returncode == 1 and "error: cache-push" in out(dropped), out(dropped)

        # Nothing local was lost: the workspace and DVC cache are intact, the response cache holds every row.
        assert "Data and pipelines are up to date." in out(bash("dvc status prepare_pool", a, env))
        assert cache_rows(a) == 50

        proxy.set("pass")
        bash("dvc push", a, env)
        assert "Cache and remote 'flaky' are in sync." in out(bash("dvc status --cloud", a, env))
        retried = bash("adacot cache-push", a, env)
        assert "pushed 50 new response(s) in 1 snapshot" in out(retried), out(retried)
        assert "pushed 0 new response(s)" in out(bash("adacot cache-push", a, env))
    assert len([k for k in s3.keys("flaky/adacot/responses/")]) == 1
