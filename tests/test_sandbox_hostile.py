"""Hostile programs against the code sandbox: one test each, each contained with a verdict and the host unharmed.

A program sees the host's /usr read-only, its private /box and /tmp, a minimal /dev, and nothing else: the
checkout, /work, /root and the host's /proc are absent, writes outside /box fail, there is no network, and
the resource limits end floods, bombs and hangs with a verdict.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from adacot.verify.code import NOBODY, Limits, run_program, run_programs

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


# Forks sleeping children until the process limit refuses one, then holds them a moment and says how many
# it got and the errno (11: EAGAIN). What it gets is the limit less the sandbox's own processes.
_COUNT_FORKS = """import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError as error:
        refused = error.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
time.sleep(1.5)
print(n, refused)
"""


def _forks_allowed(limits: Limits) -> tuple[int, int]:
    verdict = run_program(_COUNT_FORKS, [{"kind": "stdio", "input": "", "output": "?"}], limits)
    assert verdict.status == "wrong" and verdict.got is not None, verdict
    n, errno = verdict.got.split()
    return int(n), int(errno)


def test_the_process_limit_counts_the_sandboxes_own_processes() -> None:
    # Raising the limit by 8 lets the program fork exactly 8 more: the limit counts this sandbox's
    # processes, with a fixed overhead (bubblewrap's init, the interpreter), and nothing else.
    small, errno = _forks_allowed(replace(LIMITS, processes=8))
    large, _ = _forks_allowed(replace(LIMITS, processes=16))
    assert errno == 11 and 0 < small < 8 and large - small == 8, (small, large)


@pytest.mark.skipif(os.getuid() != 0, reason="holding processes as nobody needs root")
def test_a_sandbox_user_busy_on_the_host_does_not_starve_a_program() -> None:
    # The sandbox runs as nobody. Other processes of nobody on the host (other sandboxes, a fork bomb still
    # being reaped, a service) must not count against a program's allowance: with more of them than the
    # limit, a program still starts and forks as many children as on a quiet host (CI failed with EAGAIN
    # at exec when the limit was set before the sandbox's user namespace existed).
    limits = replace(LIMITS, processes=16)
    quiet, _ = _forks_allowed(limits)

    def as_nobody() -> None:
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    held = [subprocess.Popen(["sleep", "60"], preexec_fn=as_nobody) for _ in range(2 * LIMITS.processes)]
    try:
        _says("print('alive')", "alive")
        assert _forks_allowed(limits) == (quiet, 11)
    finally:
        for process in held:
            process.kill()
        for process in held:
            process.wait()


def test_concurrent_sandboxes_do_not_share_a_process_allowance() -> None:
    limits = replace(LIMITS, processes=16)
    alone, _ = _forks_allowed(limits)
    probe = [{"kind": "stdio", "input": "", "output": "?"}]
    together = run_programs([(_COUNT_FORKS, probe)] * 4, limits, workers=4)
    assert [v.got.split()[0] if v.got else v.reason for v in together] == [str(alone)] * 4


@pytest.mark.skipif(os.getuid() != 0, reason="running as another user needs root")
def test_a_non_root_user_with_more_processes_than_the_limit_can_run_programs() -> None:
    # An engineer's workstation: the pipeline runs as an ordinary user who already has more processes and
    # threads than a program's limit (an engine, a browser). The sandbox runs as that user, and the limit
    # must count the sandbox's processes only (it counted the user's: every program was a sandbox_error).
    # The user here is nobody, holding 100 processes, running the system python3 on the checkout's src/.
    script = f"""
import os, subprocess, sys
sys.path.insert(0, {str(ROOT / "src")!r})
from adacot.verify.code import Limits, run_program
held = [subprocess.Popen(["sleep", "60"]) for _ in range(100)]
try:
    program = {_COUNT_FORKS!r}
    verdict = run_program(program, [{{"kind": "stdio", "input": "", "output": "?"}}], {LIMITS!r})
    print(os.getuid(), verdict.status, verdict.got)
finally:
    for process in held:
        process.kill()
"""

    def as_nobody() -> None:
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python is not None
    reach = subprocess.run([python, "-c", f"import os; os.listdir({str(ROOT / 'src')!r})"], preexec_fn=as_nobody)
    if reach.returncode != 0:
        pytest.skip("the checkout is not readable by nobody")
    run = subprocess.run([python, "-c", script], preexec_fn=as_nobody, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    uid, status, got = run.stdout.split(maxsplit=2)
    quiet = _forks_allowed(LIMITS)
    assert (int(uid), status, got.split()) == (NOBODY, "wrong", [str(quiet[0]), "11"])


def test_a_program_cannot_raise_its_own_process_limit() -> None:
    program = (
        "import resource\ntry:\n    resource.setrlimit(resource.RLIMIT_NPROC, (10 ** 6, 10 ** 6))\n"
        "    print('raised')\n"
        "except (ValueError, OSError):\n    print('refused', resource.getrlimit(resource.RLIMIT_NPROC)[1])\n"
    )
    _says(program, f"refused {LIMITS.processes}")
