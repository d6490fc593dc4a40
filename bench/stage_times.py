"""Bench: wall time of each pipeline stage, run one after another with `dvc repro -f --single-item`.

Prints a Markdown table (stage, seconds, share) and the total. With ``--fresh-cache`` the LLM response
cache is moved aside first (and restored after), so LLM stages pay full generation cost as on a first
run; without it, cached responses make LLM stages much faster. Responses paid for during the bench are
merged back into the restored cache afterwards, so nothing is lost.

Usage: python bench/stage_times.py [--fresh-cache]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from adacot.llm import ResponseCache

STAGES = [  # dvc.yaml's stages in run order (tests/test_wiring.py checks the list against dvc.yaml)
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
]
CACHE = Path(".adacot/cache")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh-cache", action="store_true", help="time a first run (cache moved aside)")
    args = parser.parse_args()
    aside = CACHE.with_name("cache.bench-aside")
    if args.fresh_cache and CACHE.exists():
        shutil.move(CACHE, aside)
    times: dict[str, float] = {}
    try:
        for stage in STAGES:
            start = time.perf_counter()
            done = subprocess.run(["dvc", "repro", "-f", "--single-item", stage], capture_output=True, text=True)
            times[stage] = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"{stage} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
            print(f"{stage}: {times[stage]:.0f} s", file=sys.stderr, flush=True)
    finally:
        if args.fresh_cache and aside.exists():
            fresh = CACHE.with_name("cache.bench-fresh")
            shutil.move(CACHE, fresh)
            shutil.move(aside, CACHE)
            restored = ResponseCache(CACHE)
            added = restored.merge_from(fresh / "responses.sqlite")
            restored.close()
            shutil.rmtree(fresh)
            print(f"merged {added} new responses back into {CACHE}", file=sys.stderr)
    total = sum(times.values())
    print("| stage | wall s | share |\n|---|---:|---:|")
    for stage, seconds in times.items():
        print(f"| {stage} | {seconds:.0f} | {seconds / total:.0%} |")
    print(f"| **total** | **{total:.0f}** ({total / 60:.1f} min) | |")


if __name__ == "__main__":
    main()
