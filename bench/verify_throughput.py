"""Bench: math answers verified per second (adacot's worker pool vs single-process math-verify on the same
2,000 pairs, side by side in one run) and sandboxed programs per second (HumanEval references).

Pairs are real: MATH500 and GSM8K gold answers against responses built from them (correct, wrong and
reformatted). Target: math speed-up >= 1.7x on 2 cores.

Usage: python bench/verify_throughput.py [--pairs 2000] [--programs 64]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from adacot.verify import parse_gold, verify_many

BENCH = Path("data/benchmarks")


def pairs(n: int) -> list[tuple[str | None, str, str]]:
    golds = [parse_gold(json.loads(x)["answer"], "math") for x in (BENCH / "math500.jsonl").read_text().splitlines()]
    golds += [
        parse_gold(json.loads(x)["answer"], "gsm8k") for x in (BENCH / "gsm8k_test.jsonl").read_text().splitlines()
    ]
    rng = random.Random(0)
    out = []
    for i in range(n):
        gold = golds[i % len(golds)]
        kind = rng.random()
        answer = gold if kind < 0.5 else (golds[rng.randrange(len(golds))] if kind < 0.8 else f"{gold} + 1")
        out.append((gold, f"Let me think step by step... so the final answer is \\boxed{{{answer}}}.", "stop"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--programs", type=int, default=64)
    args = parser.parse_args()
    items = pairs(args.pairs)
    start = time.perf_counter()
    single = verify_many(items, workers=1)
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    pooled = verify_many(items, workers=2)
    pooled_s = time.perf_counter() - start
    assert [v.status for v in single] == [v.status for v in pooled], "pool and single process disagree"
    print(
        f"math: {len(items)} pairs; single process {single_s:.1f} s = {len(items) / single_s:.0f}/s; "
        f"2 workers {pooled_s:.1f} s = {len(items) / pooled_s:.0f}/s; speed-up {single_s / pooled_s:.2f}x "
        f"(target >= 1.7x)"
    )

    from adacot.verify.code import Limits, run_programs

    tasks = [json.loads(x) for x in (BENCH / "code" / "humaneval.jsonl").read_text().splitlines()][: args.programs]
    progs = [
        (t["prompt"] + t["canonical_solution"], [{"kind": "assert", "code": f"{t['test']}\ncheck({t['entry_point']})"}])
        for t in tasks
    ]
    start = time.perf_counter()
    verdicts = run_programs(progs, Limits(), workers=2)
    code_s = time.perf_counter() - start
    passed = sum(v.status == "pass" for v in verdicts)
    print(
        f"sandbox: {len(progs)} HumanEval programs in {code_s:.1f} s = {len(progs) / code_s:.1f} programs/s "
        f"(2 workers, one bubblewrap + fresh interpreter each); {passed} passed"
    )


if __name__ == "__main__":
    main()
