"""cache-push / cache-pull through a DVC remote: only new answers go up, only new snapshots come down.

A local-folder DVC remote keeps this fast; tests/test_dvc_team.py runs the same commands against a real
S3 server (moto) with a remote that refuses writes and one that goes away mid-push.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adacot.cli import main
from adacot.llm import Completion, ResponseCache
from adacot.llm.sync import RemoteError, open_remote, pull, push


def _answers(cache: ResponseCache, start: int, stop: int) -> None:
    cache.put_many([(f"k{i}", Completion(f"answer {i}", "stop", 3, 5, model_id="m")) for i in range(start, stop)])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--no-scm"], cwd=root, check=True)
    subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "add", "-q", "-d", "team", str(tmp_path / "remote")],
        cwd=root,
        check=True,
    )
    return root


def test_push_sends_only_new_answers_and_pull_only_new_snapshots(repo: Path, tmp_path: Path) -> None:
    fs, folder, url = open_remote(repo)
    mine, theirs = ResponseCache(tmp_path / "mine"), ResponseCache(tmp_path / "theirs")
    _answers(mine, 0, 30)
    assert push(mine, fs, folder, url).responses == 30
    assert push(mine, fs, folder, url).responses == 0  # nothing new
    _answers(theirs, 20, 40)  # a teammate holds 10 of the same answers and 10 more
    pulled = pull(theirs, fs, folder, url)
    assert (pulled.snapshots, pulled.responses, pulled.held) == (1, 20, 40)  # k0..k19 were new
    assert pull(theirs, fs, folder, url).snapshots == 0
    # What the remote holds (k0..k29, pulled) is never sent back; only the teammate's own k30..k39 go up.
    assert push(theirs, fs, folder, url).responses == 10
    assert pull(mine, fs, folder, url).responses == 10
    assert sorted(mine.get_many([f"k{i}" for i in range(40)])) == sorted(f"k{i}" for i in range(40))
    # Existing keys win: a pulled snapshot never overwrites an answer held.
    assert mine.get_many(["k25"])["k25"].text == "answer 25"
    mine.close()
    theirs.close()


def test_a_snapshot_that_is_not_a_cache_is_a_clear_error_and_changes_nothing(repo: Path, tmp_path: Path) -> None:
    fs, folder, url = open_remote(repo)
    fs.makedirs(folder, exist_ok=True)
    (Path(folder) / "responses-garbage.sqlite").write_bytes(b"not sqlite at all" * 100)
    cache = ResponseCache(tmp_path / "c")
    _answers(cache, 0, 3)
    with pytest.raises(RemoteError, match=r"responses-garbage\.sqlite .* is not a response cache"):
        pull(cache, fs, folder, url)
    assert len(cache) == 3
    cache.close()


def test_the_commands_use_the_repos_default_remote(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    monkeypatch.delenv("ADACOT_CACHE_DIR", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    cache = ResponseCache(repo / ".adacot" / "cache")
    _answers(cache, 0, 4)
    cache.close()
    assert main(["cache-push"]) == 0
    assert "pushed 4 new response(s) in 1 snapshot(s)" in capsys.readouterr().out
    assert main(["cache-pull", "--cache", str(tmp_path / "other")]) == 0
    assert "pulled 1 snapshot(s)" in capsys.readouterr().out
    assert main(["cache-push", "-r", "nosuch"]) == 1
    assert "error: cache-push: no usable DVC remote" in capsys.readouterr().out


def test_push_run_cache_lets_a_clone_restore_a_stage_with_an_uncached_metrics_file(tmp_path: Path) -> None:
    """`dvc push --run-cache` leaves out the run-cache's copy of a `cache: false` output; without it a clone
    restoring from the run-cache alone runs the stage again. `adacot push-run-cache` pushes it too."""
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.update({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x.invalid", "GIT_COMMITTER_NAME": "t"})
    env["GIT_COMMITTER_EMAIL"] = "t@x.invalid"
    a = tmp_path / "a"
    a.mkdir()
    (a / "gen.py").write_text('open("out.txt", "w").write("hi")\nopen("m.json", "w").write("{\\"x\\": 1}")\n')
    (a / "dvc.yaml").write_text(
        "stages:\n  one:\n    cmd: python gen.py\n    deps: [gen.py]\n    outs: [out.txt]\n"
        "    metrics:\n      - m.json:\n          cache: false\n"
    )

    def sh(script: str, cwd: Path) -> str:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    sh(f"git init -q && dvc init -q && dvc remote add -q -d r {tmp_path / 'remote'} && dvc repro -q", a)
    sh("git add -A && git commit -qm run && adacot push-run-cache", a)
    # The gap, shown: DVC's own push to a second remote, and a clone restoring from that one runs the stage.
    sh(f"dvc remote add -q plain {tmp_path / 'plain'} && git commit -qam plain && dvc push -q --run-cache -r plain", a)
    sh(f"git clone -q {a} {tmp_path / 'c'}", tmp_path)
    rerun = sh("dvc remote default plain && git rm -q dvc.lock && dvc repro --pull", tmp_path / "c")
    assert "Running stage 'one'" in rerun, rerun
    sh(f"git clone -q {a} {tmp_path / 'b'}", tmp_path)
    restored = sh("git rm -q dvc.lock && dvc repro --pull", tmp_path / "b")
    assert "Stage 'one' is cached - skipping run, checking out outputs" in restored, restored
    assert "Running stage" not in restored
    assert (tmp_path / "b" / "m.json").read_text() == '{"x": 1}'
