"""The code sandbox, one test per property, and real HumanEval/MBPP reference solutions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from adacot.verify.code import Limits, run_program, run_programs

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap not installed (make setup installs it)"
)

CODE = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "code"
FAST = Limits(wall_s=5.0, cpu_s=3, memory_mb=512, output_bytes=16 * 1024, total_wall_s=20.0)


def test_stdio_pass_and_fail_names_test() -> None:
    program = "a, b = map(int, input().split())\nprint(a + b)\n"
    ok = run_program(program, [{"kind": "stdio", "input": "1 2\n", "output": "3\n"}], FAST)
    assert ok.status == "pass"
    bad = run_program(
        program,
        [{"kind": "stdio", "input": "1 2", "output": "3"}, {"kind": "stdio", "input": "2 2", "output": "5"}],
        FAST,
    )
    assert (bad.status, bad.failed_test, bad.expected, bad.got.strip()) == ("fail", 1, "5", "4")


def test_infinite_loop_killed() -> None:
    verdict = run_program("while True:\n    pass\n", [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert verdict.status == "timeout"


def test_fork_bomb_contained() -> None:
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    verdict = run_program(program, [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert verdict.status == "timeout"
    assert run_program("print(1)", [{"kind": "stdio", "input": "", "output": "1"}], FAST).status == "pass"


def test_memory_hog_killed() -> None:
    verdict = run_program("x = bytearray(4 * 1024 ** 3)\n", [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert verdict.status == "memory"


def test_network_refused() -> None:
    program = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 80), timeout=2)\n    print('connected')\n"
        "except OSError as e:\n    print('refused')\n"
    )
    assert run_program(program, [{"kind": "stdio", "input": "", "output": "refused"}], FAST).status == "pass"


def test_writes_outside_temp_dir_fail(tmp_path: Path) -> None:
    # Only the host's /usr is visible (read-only), the sandbox's root and /dev are read-only, and the host's
    # /tmp is replaced by a private tmpfs: every write outside the sandbox's own dir fails.
    targets = [
        Path("/etc/adacot-sandbox-escape.txt"),
        Path(__file__).resolve().parent / "sandbox-escape.txt",
        tmp_path / "escape.txt",
    ]
    for target in targets:
        program = f"open({str(target)!r}, 'w').write('x')\n"
        verdict = run_program(program, [{"kind": "stdio", "input": "", "output": ""}], FAST)
        assert verdict.status == "runtime_error", (target, verdict)
        assert any(word in verdict.reason for word in ("Permission", "Read-only", "No such file")), verdict.reason
        assert not target.exists()
    etc = run_program("open('/etc/adacot-x', 'w')", [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert any(word in etc.reason for word in ("Permission", "Read-only", "No such file")), etc.reason
    inside = "open('ok.txt', 'w').write('x')\nprint(open('ok.txt').read())\n"
    assert run_program(inside, [{"kind": "stdio", "input": "", "output": "x"}], FAST).status == "pass"


def test_environment_secrets_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADACOT_TEST_SECRET", "sk-do-not-leak")
    program = "import os\nprint('ADACOT_TEST_SECRET' in os.environ, 'sk-do-not-leak' in str(os.environ))\n"
    assert run_program(program, [{"kind": "stdio", "input": "", "output": "False False"}], FAST).status == "pass"
    assert os.environ["ADACOT_TEST_SECRET"] == "sk-do-not-leak"


def test_huge_output_capped() -> None:
    verdict = run_program("while True:\n    print('x' * 1000)\n", [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert verdict.status == "fail" and verdict.truncated


def _humaneval() -> list[dict]:
    return [json.loads(line) for line in (CODE / "humaneval.jsonl").read_text().splitlines()]


def _he_tests(task: dict) -> list[dict]:
    return [{"kind": "assert", "code": f"{task['test']}\ncheck({task['entry_point']})\n"}]


def test_humaneval_correct_passes_wrong_fails() -> None:
    task = _humaneval()[0]
    good = run_program(task["prompt"] + task["canonical_solution"], _he_tests(task), FAST)
    assert good.status == "pass"
    wrong = run_program(task["prompt"] + "    return False\n", _he_tests(task), FAST)
    assert wrong.status == "fail" and wrong.failed_test == 0 and "assertion failed" in wrong.reason


@pytest.mark.slow
def test_all_humaneval_canonical_solutions_pass() -> None:
    tasks = _humaneval()
    verdicts = run_programs([(t["prompt"] + t["canonical_solution"], _he_tests(t)) for t in tasks], FAST, workers=2)
    failed = [(t["task_id"], v.reason) for t, v in zip(tasks, verdicts, strict=True) if v.status != "pass"]
    assert failed == [], failed


@pytest.mark.slow
def test_all_mbpp_reference_solutions_pass() -> None:
    tasks = [json.loads(line) for line in (CODE / "mbpp.jsonl").read_text().splitlines()]
    items = [
        (t["code"], [{"kind": "assert", "code": f"{t['test_setup_code']}\n" + "\n".join(t["test_list"])}])
        for t in tasks
    ]
    # Task 123's reference solution is quadratic and needs ~4.3 s of CPU for its tests on this machine
    # (a timeout under FAST's 3 s); the reference run uses a 10 s CPU limit so it is judged, not starved.
    generous = Limits(wall_s=30.0, cpu_s=10, memory_mb=1024, total_wall_s=60.0)
    verdicts = run_programs(items, generous, workers=2)
    failed = [(t["task_id"], v.status, v.reason) for t, v in zip(tasks, verdicts, strict=True) if v.status != "pass"]
    assert failed == [], failed


def test_cli_verify_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adacot.cli import main as cli_main

    rows = [
        {"program": "print(int(input()) * 2)", "tests": [{"kind": "stdio", "input": "4", "output": "8"}]},
        {"program": "print(0)", "tests": [{"kind": "stdio", "input": "4", "output": "8"}]},
        {"program": "print(1)"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert cli_main(["verify-code", str(src), str(out), "--workers", "1", "--timeout-s", "5"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["status"] for g in got] == ["pass", "fail", "sandbox_error"]
    assert got[1]["failed_test"] == 0 and "expected '8'" in got[1]["reason"]
