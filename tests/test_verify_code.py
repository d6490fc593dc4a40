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
    assert ok.status == "correct"
    bad = run_program(
        program,
        [{"kind": "stdio", "input": "1 2", "output": "3"}, {"kind": "stdio", "input": "2 2", "output": "5"}],
        FAST,
    )
    assert (bad.status, bad.failed_test, bad.expected, bad.got.strip()) == ("wrong", 1, "5", "4")


def test_infinite_loop_killed() -> None:
    verdict = run_program("while True:\n    pass\n", [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert verdict.status == "timeout"


def test_fork_bomb_contained() -> None:
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    verdict = run_program(program, [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert verdict.status == "timeout"
    assert run_program("print(1)", [{"kind": "stdio", "input": "", "output": "1"}], FAST).status == "correct"


def test_memory_hog_killed() -> None:
    verdict = run_program("x = bytearray(4 * 1024 ** 3)\n", [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert verdict.status == "memory"


def test_network_refused() -> None:
    program = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 80), timeout=2)\n    print('connected')\n"
        "except OSError as e:\n    print('refused')\n"
    )
    assert run_program(program, [{"kind": "stdio", "input": "", "output": "refused"}], FAST).status == "correct"


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
    assert run_program(inside, [{"kind": "stdio", "input": "", "output": "x"}], FAST).status == "correct"


def test_environment_secrets_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADACOT_TEST_SECRET", "sk-do-not-leak")
    program = "import os\nprint('ADACOT_TEST_SECRET' in os.environ, 'sk-do-not-leak' in str(os.environ))\n"
    assert run_program(program, [{"kind": "stdio", "input": "", "output": "False False"}], FAST).status == "correct"
    assert os.environ["ADACOT_TEST_SECRET"] == "sk-do-not-leak"


def test_huge_output_capped() -> None:
    verdict = run_program("while True:\n    print('x' * 1000)\n", [{"kind": "stdio", "input": "", "output": ""}], FAST)
    assert verdict.status == "wrong" and verdict.output_truncated


def _humaneval() -> list[dict]:
    return [json.loads(line) for line in (CODE / "humaneval.jsonl").read_text().splitlines()]


def _he_tests(task: dict) -> list[dict]:
    return [{"kind": "assert", "code": f"{task['test']}\ncheck({task['entry_point']})\n"}]


def test_humaneval_correct_passes_wrong_fails() -> None:
    task = _humaneval()[0]
    good = run_program(task["prompt"] + task["canonical_solution"], _he_tests(task), FAST)
    assert good.status == "correct"
    wrong = run_program(task["prompt"] + "    return False\n", _he_tests(task), FAST)
    assert wrong.status == "wrong" and wrong.failed_test == 0 and "assertion failed" in wrong.reason


@pytest.mark.slow
def test_all_humaneval_canonical_solutions_pass() -> None:
    tasks = _humaneval()
    verdicts = run_programs([(t["prompt"] + t["canonical_solution"], _he_tests(t)) for t in tasks], FAST, workers=2)
    failed = [(t["task_id"], v.reason) for t, v in zip(tasks, verdicts, strict=True) if v.status != "correct"]
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
    failed = [(t["task_id"], v.status, v.reason) for t, v in zip(tasks, verdicts, strict=True) if v.status != "correct"]
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
    assert [g["status"] for g in got] == ["correct", "wrong", "sandbox_error"]
    assert got[1]["failed_test"] == 0 and "expected '8'" in got[1]["reason"]


# (id, response, finish_reason, status, program or None): the code a response commits to
EXTRACT_CASES = [
    ("one_block", "Here:\n```python\nprint(1)\n```\nDone.", "stop", "correct", "print(1)\n"),
    ("untagged", "```\nprint(2)\n```", "stop", "correct", "print(2)\n"),
    ("py_tag", "```py\nx = 3\n```", "stop", "correct", "x = 3\n"),
    ("tag_with_info", "```python title=sol.py\nx = 4\n```", "stop", "correct", "x = 4\n"),
    ("several_blocks_last_wins", "```python\nold()\n```\nBetter:\n```python\nnew()\n```", "stop", "correct", "new()\n"),
    (
        "last_python_not_last_block",
        "```python\nsolve()\n```\nRun it with:\n```bash\npython sol.py\n```",
        "stop",
        "correct",
        "solve()\n",
    ),
    (
        "indented_fence",
        "  ```python\n  def f():\n      return 1\n  ```",
        "stop",
        "correct",
        "  def f():\n      return 1\n",
    ),
    (
        "usage_block_after_solution",
        "```python\ndef f(x):\n    return 2 * x\n```\nExample usage:\n```python\nprint(f(2))  # 4\n```",
        "stop",
        "correct",
        "def f(x):\n    return 2 * x\n",
    ),
    (
        "later_solution_replaces_earlier",
        "```python\ndef f(x):\n    return x\n```\nFixed:\n"
        "```python\ndef f(x):\n    return 2 * x\n```\n```python\nf(1)\n```",
        "stop",
        "correct",
        "def f(x):\n    return 2 * x\n",
    ),
    (
        "usage_block_cut_off_after_solution",
        "```python\nclass Solution:\n    pass\n```\nTry:\n```python\nprint(Solution(",
        "length",
        "correct",
        "class Solution:\n    pass\n",
    ),
    ("no_block", "The answer is to loop over the list.", "stop", "no_answer", None),
    ("only_bash_block", "```bash\npip install numpy\n```", "stop", "no_answer", None),
    ("empty_block", "```python\n```", "stop", "no_answer", None),
    (
        "unterminated_cut_off",
        "```python\ndef f(x):\n    return x +",
        "length",
        "truncated",
        "def f(x):\n    return x +",
    ),
    ("cut_before_any_block", "Let me think about the", "length", "truncated", None),
    ("unterminated_but_finished", "```python\nprint(5)\n", "stop", "correct", "print(5)\n"),
    ("closed_block_then_cut", "```python\nprint(6)\n```\nExplanation: the", "length", "correct", "print(6)\n"),
]


@pytest.mark.parametrize(
    ("response", "finish", "status", "program"), [c[1:] for c in EXTRACT_CASES], ids=[c[0] for c in EXTRACT_CASES]
)
def test_extract_code(response: str, finish: str, status: str, program: str | None) -> None:
    from adacot.verify.code import extract_code

    verdict = extract_code(response, finish)
    assert (verdict.status, verdict.extracted) == (status, program), verdict
    assert verdict.reason


def test_code_verdicts_use_the_shared_vocabulary() -> None:
    from adacot.verify import STATUSES, Verdict
    from adacot.verify.code import CODE_STATUSES

    assert set(CODE_STATUSES) <= set(STATUSES)
    ok = run_program("print(1)", [{"kind": "stdio", "input": "", "output": "1"}], FAST)
    assert isinstance(ok, Verdict) and ok.status == "correct" and ok.is_correct
    bad = run_program("print(2)", [{"kind": "stdio", "input": "", "output": "1"}], FAST)
    assert (bad.status, bad.failed_test, bad.expected, bad.got) == ("wrong", 0, "1", "2\n")
    with pytest.raises(ValueError, match="unknown verdict status 'pass'"):
        Verdict("pass", "old vocabulary")
