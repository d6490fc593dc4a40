"""Bench: the README's code run (`make repro-code`) in a fresh clone, timed stage by stage.

Clones this repository's HEAD into a temporary folder (or ``--dir``), runs ``make repro-code`` there
exactly as a user types it (set-up included: a fresh `.venv`, unless ``--venv`` links an existing one),
and prints the wall time of each stage (from the moment DVC announces it to the next announcement), the
total, and the figures the README shows: the pool's level histogram, the share of teacher solutions
verified, and pass@1 base vs tuned per benchmark.

Usage: python bench/code_run.py [--dir DIR] [--venv PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="clone into this (new) folder instead of a temporary one")
    parser.add_argument("--venv", type=Path, help="link this virtualenv as .venv instead of creating one")
    args = parser.parse_args()
    where = args.dir or Path(tempfile.mkdtemp(prefix="adacot-code-run-")) / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
    env = dict(os.environ)
    if args.venv:
        # Reuse an installed virtualenv without reinstalling into it (its editable install stays where it
        # points): the clone's own code comes first on the path, and make's set-up stamp is fresh.
        (where / ".venv").symlink_to(args.venv.resolve())
        (where / ".venv" / ".adacot-installed").touch()
        env["PYTHONPATH"] = str(where / "src")
    start = time.monotonic()
    marks: list[tuple[str, float]] = []
    proc = subprocess.Popen(
        ["make", "repro-code"], cwd=where, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        found = re.search(r"Running stage '([^']+)'", line)
        if found:
            marks.append((found.group(1), time.monotonic()))
    code = proc.wait()
    end = time.monotonic()
    if code != 0:
        raise SystemExit(f"make repro-code failed with exit code {code} in {where}")
    print(f"\n## make repro-code in {where}: {end - start:.0f} s in all (set-up included)\n")
    print("| stage | s |\n|---|---:|")
    if marks:
        print(f"| set-up and start | {marks[0][1] - start:.0f} |")
    for (name, at), (_, after) in zip(marks, [*marks[1:], ("end", end)], strict=True):
        print(f"| {name} | {after - at:.0f} |")
    metrics = where / "metrics"

    def read(name: str) -> dict:
        return json.loads((metrics / f"{name}.json").read_text())

    database, verified = read("build_database"), read("verify_solutions")
    print(f"\npool levels: {database['level_histogram']}")
    print(f"teacher solutions verified: {verified['by_status'].get('correct', 0)} of {verified['solutions']}")
    print(f"SFT rows kept: {verified['kept']}")
    base, tuned = read("evaluate_base")["benchmarks"], read("evaluate_student")["benchmarks"]
    for name in sorted(base):
        b, t = base[name], tuned[name]
        print(
            f"{name}: pass@1 {b['pass@1']:.3f} ± {b['stderr']:.3f} -> {t['pass@1']:.3f} ± {t['stderr']:.3f}; "
            f"tests passed {b['mean_tests_passed_share']:.3f} -> {t['mean_tests_passed_share']:.3f}; "
            f"by status {b['by_status']} -> {t['by_status']}"
        )


if __name__ == "__main__":
    main()
