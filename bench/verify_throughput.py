"""Bench: math answers verified per second (adacot's ``verify_many`` with 2 workers vs 1 process on the same
8,000 pairs, side by side in one run: a warm-up, then interleaved rounds) and sandboxed programs per second
(HumanEval references).

Pairs are real: MATH500 and GSM8K gold answers against responses built from them (correct, wrong and
reformatted). Target: math speed-up >= 1.7x on 2 cores (the median round; every round is printed).

Usage: python bench/verify_throughput.py [--pairs 8000] [--rounds 5] [--programs 64]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
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


def _timed(items: list[tuple[str | None, str, str]], workers: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    verdicts = verify_many(items, workers=workers)
    return time.perf_counter() - start, [v.status for v in verdicts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--programs", type=int, default=64)
    args = parser.parse_args()
    items = pairs(args.pairs)
    # Warm-up (not timed): the first check in a process loads sympy and math-verify's parser, which a
    # stage pays once; both modes start each timed round with a warm calling process, and the pooled mode
    # still pays for starting its worker process every call, as a stage does.
    _timed(items[:200], 1)
    _timed(items[:200], 2)
    ratios = []
    for round_index in range(args.rounds):
        # Alternate the order so a load spike on the machine does not always hit the same mode.
        order = (1, 2) if round_index % 2 == 0 else (2, 1)
        seconds: dict[int, float] = {}
        statuses: dict[int, list[str]] = {}
        for workers in order:
            seconds[workers], statuses[workers] = _timed(items, workers)
        assert statuses[1] == statuses[2], "pool and single process disagree"
        ratios.append(seconds[1] / seconds[2])
        print(
            f"math round {round_index + 1}: {len(items)} pairs; single process {seconds[1]:.1f} s = "
            f"{len(items) / seconds[1]:.0f}/s; 2 workers {seconds[2]:.1f} s = {len(items) / seconds[2]:.0f}/s; "
            f"speed-up {ratios[-1]:.2f}x"
        )
    print(
        f"math: speed-up median {statistics.median(ratios):.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x "
        f"over {len(ratios)} interleaved rounds (target >= 1.7x)"
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
    passed = sum(v.status == "correct" for v in verdicts)
    print(
        f"sandbox: {len(progs)} HumanEval programs in {code_s:.1f} s = {len(progs) / code_s:.1f} programs/s "
        f"(2 workers, one bubblewrap + fresh interpreter each); {passed} passed"
    )


if __name__ == "__main__":
    main()
