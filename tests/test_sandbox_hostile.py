"""Hostile programs against the code sandbox: one test each, each contained with a verdict and the host unharmed.

A program sees the host's /usr read-only, its private /box and /tmp, a minimal /dev, and nothing else: the
checkout, /work, /root and the host's /proc are absent, writes outside /box fail, there is no network, and
the resource limits end floods, bombs and hangs with a verdict.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from adacot.verify.code import Limits, run_program

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed (make setup does)")

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(wall_s=5.0, cpu_s=3, memory_mb=512, output_bytes=16 * 1024, total_wall_s=20.0)
NO_OUTPUT = [{"kind": "stdio", "input": "", "output": ""}]


def _says(program: str, expected: str) -> None:
    """The program's own report of what it could reach must be ``expected`` (the sandbox kept it out)."""
    verdict = run_program(program, [{"kind": "stdio", "input": "", "output": expected}], LIMITS)
    assert verdict.status == "correct", verdict


def test_reading_the_checkout_by_absolute_path_finds_nothing() -> None:
    target = ROOT / "README.md"
    assert target.is_file()
    _says(f"import os\nprint('visible' if os.path.exists({str(target)!r}) else 'hidden')\n", "hidden")
    verdict = run_program(f"print(open({str(target)!r}).read()[:20])\n", NO_OUTPUT, LIMITS)
    assert verdict.status == "runtime_error" and "No such file" in verdict.reason


@pytest.mark.parametrize("folder", ["/work", "/root", "/home", "/etc", "/opt", "/var"])
def test_host_folders_cannot_be_listed(folder: str) -> None:
    program = f"import os\ntry:\n    print(len(os.listdir({folder!r})))\nexcept OSError:\n    print('absent')\n"
    _says(program, "absent")


def test_the_root_holds_only_the_system_view() -> None:
    program = "import os\nprint(' '.join(sorted(os.listdir('/'))))\n"
    verdict = run_program(program, NO_OUTPUT, LIMITS)
    assert verdict.status == "wrong" and verdict.got is not None
    assert set(verdict.got.split()) <= {"bin", "box", "dev", "lib", "lib32", "lib64", "libx32", "sbin", "tmp", "usr"}


def test_proc_1_environ_is_not_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADACOT_HOSTILE_SECRET", "sk-hostile-0xdeadbeef")
    program = (
        "import os\ntry:\n    data = open('/proc/1/environ', 'rb').read()\n"
        "    print('leak' if b'sk-hostile' in data else 'clean')\nexcept OSError:\n    print('absent')\n"
        "print('leak' if any('sk-hostile' in v for v in os.environ.values()) else 'clean')\n"
    )
    _says(program, "absent\nclean")


@pytest.mark.parametrize("target", ["/usr/adacot-escape", "/box/../escape", "/tmp/../usr/escape", "/dev/escape"])
def test_writes_outside_the_temp_dir_fail(target: str) -> None:
    program = (
        f"try:\n    open({target!r}, 'w').write('x')\n    print('written')\nexcept OSError:\n    print('refused')\n"
    )
    _says(program, "refused")
    assert not Path("/usr/adacot-escape").exists() and not Path("/escape").exists()


def test_a_socket_cannot_reach_anything() -> None:
    program = (
        "import socket\nout = []\nfor host in ('127.0.0.1', '8.8.8.8'):\n    try:\n"
        "        socket.create_connection((host, 53), timeout=2)\n        out.append('connected')\n"
        "    except OSError:\n        out.append('refused')\nprint(' '.join(out))\n"
    )
    _says(program, "refused refused")


def test_a_fork_bomb_ends_with_a_verdict_and_the_next_program_runs() -> None:
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    assert run_program(program, NO_OUTPUT, LIMITS).status == "timeout"
    _says("print('alive')", "alive")


def test_allocating_8_gb_is_a_memory_verdict() -> None:
    verdict = run_program("x = bytearray(8 * 1024 ** 3)\nprint(len(x))\n", NO_OUTPUT, LIMITS)
    assert verdict.status == "memory", verdict


def test_flooding_stdout_is_capped() -> None:
    verdict = run_program("while True:\n    print('y' * 10000)\n", NO_OUTPUT, LIMITS)
    assert verdict.status == "wrong" and verdict.output_truncated, verdict
    assert verdict.got is not None and len(verdict.got) <= 200


def test_sleeping_forever_is_a_timeout() -> None:
    verdict = run_program("import time\ntime.sleep(10 ** 6)\n", NO_OUTPUT, LIMITS)
    assert verdict.status == "timeout", verdict


def test_signalling_every_pid_reaches_only_the_sandbox() -> None:
    # kill(-1) from inside: the sandbox has its own PID namespace and runs as nobody, so it can reach only
    # its own processes. The test process (and so the host) survives, and the next program runs.
    program = "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\nprint('after')\n"
    verdict = run_program(program, NO_OUTPUT, LIMITS)
    assert verdict.status in ("wrong", "runtime_error", "correct", "timeout"), verdict
    os.kill(os.getpid(), 0)  # still here
    assert os.getppid() > 1
    _says("print('alive')", "alive")
    assert signal.getsignal(signal.SIGTERM) is not None
