"""Sandboxed execution of candidate programs against tests, with a verdict per program.

Covers: stdin/stdout tests (competitive programming: input fed on stdin, output compared line by line
with trailing whitespace ignored) and assert-style tests (HumanEval's ``check(candidate)``, MBPP's
``assert`` lines: the test code is appended to the program). Each test runs in a fresh ``python -I``
(the system python3) inside bubblewrap, which shows it the host's /usr read-only (the interpreter, its
standard library, shared libraries), a private writable temp dir as its working directory (``/box``), a
private /tmp and a minimal /dev, and nothing else of the host: no checkout, /work, /root, /home, /etc or
/proc. No network (new network namespace: connections are refused), own PID, IPC and UTS namespaces,
cleared environment (no secrets), run as the unprivileged ``nobody`` user with rlimits on CPU seconds,
address space, processes and file size. The process limit is set inside the sandbox's own user namespace
(util-linux ``prlimit``), so it counts that sandbox's processes only: concurrent sandboxes, a killed fork
bomb still being reaped, or the host user's own processes never use up a program's allowance. Output goes
to a file capped by the file-size limit. Per-test wall timeouts kill the whole process group; a total
budget bounds a program's tests.

Verdicts (``adacot.verify.Verdict``, the vocabulary math checks use): correct (every test passed), wrong
(which test, expected vs got, whether output was cut), no_answer (no code block in the response),
truncated (the response was cut off inside its code), timeout, memory, runtime_error, sandbox_error;
each with a reason. ``extract_code`` takes the program out of a model's response.

Not covered: other languages; GPU or native-extension isolation beyond rlimits; a malicious program
that exhausts a shared kernel resource within its limits; machines without bubblewrap (a clear
``SandboxUnavailable`` error, never an unsandboxed run); kernels older than 5.14, where the process
limit counts all of the user's processes host-wide. Programs run as ``nobody`` when the pipeline runs as
root (CI and containers); otherwise as the current user, in the same namespaces and limits.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adacot.verify.verdicts import Verdict

# The statuses a code check ends in: the shared vocabulary's (verdicts.STATUSES) where they mean the same.
CODE_STATUSES = ("correct", "wrong", "no_answer", "truncated", "timeout", "memory", "runtime_error", "sandbox_error")
NOBODY = 65534


class SandboxUnavailable(RuntimeError):
    """bubblewrap is not installed, so programs cannot be run safely."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one test run, and the budget for all tests of one program."""

    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 1024
    processes: int = 64
    output_bytes: int = 64 * 1024
    total_wall_s: float = 60.0

    @staticmethod
    def from_params(sandbox: Any) -> Limits:
        """The limits of a ``verify.sandbox`` params section (``config.SandboxParams``)."""
        return Limits(**sandbox.model_dump(exclude={"workers"}))  # the same names; workers is not a limit


@dataclass(frozen=True)
class _Run:
    returncode: int | None  # None: killed by the wall timeout
    stdout: str
    stderr: str
    truncated: bool


def _bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed; install it (Debian: apt-get install bubblewrap) "
            "to run candidate programs in the sandbox"
        )
    return path


# Where the program's private temp dir appears inside the sandbox (its working directory and HOME).
BOX = "/box"
# The host folders a program sees, read-only: the OS's /usr (the interpreter, its standard library and the
# shared libraries they load) and the top-level links or folders that point into it. Nothing else: no
# /etc, /home, /root, /work, /opt, /proc, /sys, /var, /mnt or the checkout.
_SYSTEM = ("usr", "bin", "lib", "lib64", "lib32", "libx32", "sbin")


def _system_view() -> list[str]:
    """bwrap arguments that show the program the host's system folders and nothing else of the host."""
    args: list[str] = []
    for name in _SYSTEM:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _interpreter() -> str:
    """A system Python under /usr: the only interpreter the sandbox shows (a venv's is not visible there)."""
    found = shutil.which("python3", path="/usr/bin:/usr/local/bin:/bin")
    if found is None or not Path(found).resolve().is_relative_to("/usr"):
        raise SandboxUnavailable(
            "no system python3 under /usr (the sandbox shows programs /usr only); install python3 from the OS"
        )
    return found


def _prlimit() -> str:
    """util-linux's prlimit under /usr: it sets the process limit inside the sandbox, then runs the program."""
    found = shutil.which("prlimit", path="/usr/bin:/bin")
    if found is None or not Path(found).resolve().is_relative_to("/usr"):
        raise SandboxUnavailable("no prlimit under /usr (the sandbox shows /usr only); install util-linux from the OS")
    return found


def _limit(limits: Limits) -> Callable[[], None]:
    import resource

    def apply() -> None:
        os.setsid()  # own process group, so a timeout kills every descendant
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb << 20, limits.memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        # No RLIMIT_NPROC here: set now, it would count every process the user owns on the host (other
        # sandboxes, a fork bomb still being torn down, the user's own programs) and exec would fail with
        # EAGAIN. prlimit sets it inside the sandbox's own user namespace instead, where it counts only
        # the sandbox's processes (per-namespace rlimit counts, Linux 5.14+).
        if os.getuid() == 0:
            # Root is exempt from RLIMIT_NPROC; nobody is not, and cannot write anywhere but its own temp dir.
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return apply


def _run(script: str, stdin: str, limits: Limits, wall_s: float) -> _Run:
    """One sandboxed run; retried briefly while a killed run's processes are still being reaped.

    On kernels before 5.14 the sandbox user's process limit is shared host-wide, so right after a fork bomb
    is killed a new sandbox can fail with EAGAIN until the kernel has torn the old one down.
    """
    import time

    for _attempt in range(20):
        try:
            run = _run_once(script, stdin, limits, wall_s)
        except BlockingIOError as error:  # EAGAIN from exec: the sandbox user is over its process limit
            run = _Run(1, "", f"bwrap: could not start the sandbox: {error.strerror}", False)
        if not (
            run.returncode not in (0, None)
            and "Resource temporarily unavailable" in run.stderr
            and "bwrap:" in run.stderr
        ):
            return run
        time.sleep(0.5)
    return run


def _run_once(script: str, stdin: str, limits: Limits, wall_s: float) -> _Run:
    workdir = Path(tempfile.mkdtemp(prefix="adacot-sandbox-"))
    try:
        os.chmod(workdir, 0o777)
        (workdir / "main.py").write_text(script)
        out_path, err_path = workdir / "stdout", workdir / "stderr"
        cmd = [
            _bwrap(),
            *_system_view(),
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--bind",
            str(workdir),
            BOX,
            "--remount-ro",
            "/",
            "--remount-ro",
            "/dev",
            "--chdir",
            BOX,
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-user-try",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "HOME",
            BOX,
            "--",
            _prlimit(),
            f"--nproc={limits.processes}",
            "--",
            _interpreter(),
            "-I",
            "main.py",
        ]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, preexec_fn=_limit(limits), env={}
            )
            try:
                proc.communicate(stdin.encode(), timeout=wall_s)
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
        raw = out_path.read_bytes()
        truncated = len(raw) >= limits.output_bytes
        stderr = err_path.read_bytes()[-4000:].decode(errors="replace")
        return _Run(code, raw[: limits.output_bytes].decode(errors="replace"), stderr, truncated)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _classify(run: _Run, index: int, limits: Limits) -> Verdict | None:
    """A verdict for a run that did not exit cleanly; None when it exited 0."""
    if run.returncode is None:
        return Verdict("timeout", f"test {index}: exceeded the {limits.wall_s:g} s wall limit", failed_test=index)
    if run.returncode in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return Verdict("timeout", f"test {index}: exceeded the {limits.cpu_s} s CPU limit", failed_test=index)
    if "MemoryError" in run.stderr:
        return Verdict("memory", f"test {index}: exceeded the {limits.memory_mb} MB memory limit", failed_test=index)
    if run.truncated or run.returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ) or "File too large" in run.stderr:
        return Verdict(
            "wrong",
            f"test {index}: output exceeded {limits.output_bytes} bytes",
            failed_test=index,
            got=run.stdout[-200:],
            output_truncated=True,
        )
    if run.returncode not in (0, None) and "bwrap:" in run.stderr:
        return Verdict("sandbox_error", f"test {index}: sandbox failed: {run.stderr.strip()[-300:]}", failed_test=index)
    if run.returncode != 0:
        last = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit code {run.returncode}"
        if last.startswith("AssertionError"):
            return Verdict("wrong", f"test {index}: assertion failed: {last}", failed_test=index, got=run.stderr[-500:])
        return Verdict("runtime_error", f"test {index}: {last}", failed_test=index, got=run.stderr[-500:])
    return None


def _normalize(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*$", re.M)
_PYTHON_TAGS = ("", "python", "py", "python3", "py3")
_DEFINES = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+\w", re.M)


def extract_code(response: str, finish_reason: str | None = None) -> Verdict:
    """The program a response commits to: its last fenced code block tagged Python (or untagged) that
    defines a function or class, else its last such block (a script).

    Models often follow the solution with a usage block (``print(f(2))``) that defines nothing (the
    bundled one in 55 of its 360 grading answers on MBPP and HumanEval questions); taking that block would
    fail every test with a NameError whatever the solution above it.

    ``extracted`` holds the code when one is found (status ``correct`` here only means "a program was
    found"; running it decides the real verdict). No Python block is ``no_answer``; a response cut off at
    the token limit (``finish_reason == "length"``) inside an unclosed block, or with no block yet, is
    ``truncated``. An unclosed last block in a response that ended by itself is taken as the program.
    Blocks tagged with another language (```bash, ```text) are never taken.
    """
    fences = list(_FENCE.finditer(response))
    blocks: list[tuple[str, str, bool]] = []  # (tag, code, closed)
    i = 0
    while i < len(fences):
        tag = fences[i].group(1).lower()
        start = fences[i].end() + 1
        if i + 1 < len(fences):
            blocks.append((tag, response[start : fences[i + 1].start()], True))
            i += 2
        else:
            blocks.append((tag, response[start:], False))
            i += 1
    python = [(code, closed) for tag, code, closed in blocks if tag in _PYTHON_TAGS and code.strip()]
    cut = finish_reason == "length"
    if python:
        # A usage example after the solution ("print(f(2))") defines nothing: the program is the last block
        # that defines a function or class; a response whose blocks define nothing (a script) its last block.
        defining = [(code, closed) for code, closed in python if _DEFINES.search(code)]
        code, closed = (defining or python)[-1]
        if cut and not closed:
            return Verdict("truncated", "the response was cut off inside its code block", code.rstrip())
        return Verdict("correct", "found a python code block", code.rstrip() + "\n")
    if cut:
        return Verdict("truncated", "the response was cut off before a complete python code block")
    others = sorted({tag for tag, _, _ in blocks if tag not in _PYTHON_TAGS})
    said = f" (blocks tagged {', '.join(others)} are not python)" if others else ""
    return Verdict("no_answer", f"no python code block in the response{said}")


def _test_failure(
    program: str, setup: str, test: dict[str, Any], index: int, limits: Limits, left: float
) -> Verdict | None:
    """The verdict of one failed test, or None when it passed."""
    kind = test.get("kind")
    head = f"{setup}\n" if setup.strip() else ""
    nonce = secrets.token_hex(8)
    if kind == "assert":
        # Not `__main__`: a program's own `if __name__ == "__main__":` block (reading stdin, say) stays out
        # of a function test. The last line prints a nonce the program cannot know: a program that ends the
        # process early (sys.exit, os._exit) exits 0 before any assert ran, and must not pass.
        script = f"__name__ = 'adacot_solution'\n{head}{program}\n\n{test.get('code', '')}\nprint({nonce!r})\n"
        run = _run(script, "", limits, min(limits.wall_s, left))
    elif kind == "stdio":
        run = _run(f"{head}{program}", str(test.get("input", "")), limits, min(limits.wall_s, left))
    else:
        return Verdict("sandbox_error", f"test {index}: unknown kind {kind!r} (stdio or assert)", failed_test=index)
    bad = _classify(run, index, limits)
    if bad is not None:
        return bad
    if kind == "assert" and nonce not in run.stdout:
        return Verdict(
            "wrong",
            f"test {index}: the program ended the process before its tests ran (sys.exit, exit or os._exit)",
            failed_test=index,
            got=run.stdout[-200:],
        )
    if kind == "stdio" and _normalize(run.stdout) != _normalize(str(test.get("output", ""))):
        expected = str(test.get("output", ""))
        return Verdict(
            "wrong",
            f"test {index}: expected {expected.strip()[:80]!r}, got {run.stdout.strip()[:80]!r}",
            failed_test=index,
            expected=expected,
            got=run.stdout,
            output_truncated=run.truncated,
        )
    return None


def run_program(
    program: Any,
    tests: Sequence[dict[str, Any]],
    limits: Limits = Limits(),
    *,
    setup: str = "",
    count_all: bool = False,
) -> Verdict:
    """Run ``program`` against every test; the first failing test decides the verdict.

    A test is ``{"kind": "stdio", "input": str, "output": str}`` or ``{"kind": "assert", "code": str}``;
    ``setup`` (the imports HumanEval's prompt gives the program) runs before the program. The verdict says
    how many tests passed (``tests_passed`` of ``tests_total``): with ``count_all`` every test runs even
    after a failure (within ``limits.total_wall_s``), so the count is the program's real share, except
    after a timeout (the rest count as failed: each would likely wait out the wall limit too); without,
    the count stops at the first failure. A program that is not text, or holds NUL bytes
    (which Python refuses to read), is a ``runtime_error`` without running anything.
    """
    total = len(tests)
    if not tests:
        return Verdict("sandbox_error", "no tests given: nothing to verify", tests_passed=0, tests_total=0)
    if not isinstance(program, str):
        return Verdict(
            "runtime_error", f"the program is not text but {type(program).__name__}", tests_passed=0, tests_total=total
        )
    try:
        program.encode("utf-8")
    except UnicodeEncodeError:
        return Verdict("runtime_error", "the program is not valid UTF-8 text", tests_passed=0, tests_total=total)
    if "\x00" in program:
        return Verdict(
            "runtime_error", "the program holds NUL bytes, which Python cannot read", tests_passed=0, tests_total=total
        )
    import time

    start = time.monotonic()
    first: Verdict | None = None
    passed = 0
    for index, test in enumerate(tests):
        left = limits.total_wall_s - (time.monotonic() - start)
        if left <= 0:
            spent = Verdict(
                "timeout", f"total budget of {limits.total_wall_s:g} s spent before test {index}", failed_test=index
            )
            first = first or spent
            break
        failure = _test_failure(program, setup, test, index, limits, left)
        if failure is None:
            passed += 1
            continue
        first = first or failure
        if not count_all or failure.status in ("sandbox_error", "timeout"):
            break
    if first is None:
        return Verdict("correct", f"all {total} tests passed", tests_passed=total, tests_total=total)
    return replace(first, tests_passed=passed, tests_total=total)


def run_programs(
    items: Sequence[tuple[Any, Sequence[dict[str, Any]]]],
    limits: Limits = Limits(),
    workers: int = 2,
    progress: bool = False,
    *,
    setups: Sequence[str] | None = None,
    count_all: bool = False,
) -> list[Verdict]:
    """``run_program`` over many (program, tests) pairs in parallel threads (each test is a subprocess)."""
    _bwrap()  # fail once, clearly, before any work
    from tqdm.auto import tqdm

    setups = setups if setups is not None else [""] * len(items)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [
            pool.submit(run_program, program, tests, limits, setup=setup, count_all=count_all)
            for (program, tests), setup in zip(items, setups, strict=True)
        ]
        return [f.result() for f in tqdm(futures, desc="sandbox", unit="program", disable=not progress)]


def check_responses(
    tests_json: Sequence[str | None],
    texts: Sequence[str],
    finish_reasons: Sequence[str],
    limits: Limits = Limits(),
    workers: int = 2,
    *,
    count_all: bool = False,
    progress: bool = False,
) -> list[Verdict]:
    """The verdict of each model response against its question's tests (``codetests`` JSON), in order.

    The program is the response's last python block (``extract_code``); no block is ``no_answer``, a cut
    off one ``truncated`` (neither is run). Tests that do not read are a ``sandbox_error`` naming why.
    Every verdict that ran carries its program in ``extracted``.
    """
    from adacot.codetests import CodeTests, UnreadableTests

    verdicts: list[Verdict | None] = [None] * len(texts)
    runnable: list[tuple[int, str, CodeTests]] = []
    for i, (gold, text, finish) in enumerate(zip(tests_json, texts, finish_reasons, strict=True)):
        found = extract_code(text if isinstance(text, str) else "", finish)
        if found.status != "correct" or found.extracted is None:
            verdicts[i] = found
            continue
        try:
            tests = CodeTests.from_json(gold)
        except UnreadableTests as error:
            verdicts[i] = Verdict("sandbox_error", f"the question's tests do not read: {error}", found.extracted)
            continue
        runnable.append((i, found.extracted, tests))
    if runnable:
        ran = run_programs(
            [(program, tests.cases) for _, program, tests in runnable],
            limits,
            workers,
            progress,
            setups=[tests.setup for _, _, tests in runnable],
            count_all=count_all,
        )
        for (i, program, _), verdict in zip(runnable, ran, strict=True):
            verdicts[i] = replace(verdict, extracted=program)
    return [v for v in verdicts if v is not None]
