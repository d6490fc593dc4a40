"""Bench: a small measured search over the SFT settings of the ablation sweep (README "The ablation").

Each setting is one `dvc exp run` of the sweep's params (configs/ablation.yaml) on one arm and seed, with
the setting's `sft.*` keys on top; all share the sweep's grading (the first experiment grades, the rest and
the sweep itself restore it from the run-cache). Prints a Markdown table: the setting, SFT rows and steps,
final train loss, pass@1 of the tuned student on every benchmark (mean ± s.e. over questions) and the
base model's, so the sweep's `sft` values are chosen by a number, not a guess.

Usage: python bench/sft_search.py [--plan configs/ablation.yaml] [--arm random] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from pathlib import Path

from adacot.ablation import (
    BREAKDOWN_METRICS,
    TRAIN_METRICS,
    Experiment,
    check_experiments,
    dvc_runner,
    head_rev,
    load_plan,
    override,
    run_experiments,
)

GRID = {"sft.learning_rate": [0.0002, 0.001], "sft.epochs": [3, 6]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=Path, default=Path("configs/ablation.yaml"))
    parser.add_argument("--arm", default="random", help="the arm whose sample the settings train on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default="sftsearch")
    parser.add_argument("--rev", help="the commit the experiments are based on (default: HEAD)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    plan = load_plan(args.plan)
    base = {**plan.params, **plan.arms[args.arm], "sample.seed": args.seed, "sft.seed": args.seed}
    settings = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    exps = []
    for i, setting in enumerate(settings):
        merged = {**base, **setting}
        exps.append(
            Experiment(f"{args.prefix}-{i}", args.arm, args.seed, tuple(override(k, v) for k, v in merged.items()))
        )
    check_experiments(exps, Path("params.yaml"))
    started = time.monotonic()
    rev = args.rev or head_rev(Path.cwd())
    results = run_experiments(exps, dvc_runner(Path.cwd()), jobs=1, what="sft search", rev=rev)
    wall = time.monotonic() - started
    first = results[exps[0].name][BREAKDOWN_METRICS]
    benches = [b for b in first["student"] if b != "all"]
    print("| " + " | ".join(GRID) + " | rows | steps | last loss | " + " | ".join(benches) + " |")
    print("|" + "---:|" * (len(GRID) + 3 + len(benches)))
    print(
        "| base | "
        + " | " * (len(GRID) + 2)
        + " | ".join(f"{first['base'][b]['pass@1']:.3f} ± {first['base'][b]['stderr']:.3f}" for b in benches)
        + " |"
    )
    for exp, setting in zip(exps, settings, strict=True):
        got = results[exp.name]
        train = got.get(TRAIN_METRICS) or {}
        student = got[BREAKDOWN_METRICS]["student"]
        cells = [f"{student[b]['pass@1']:.3f} ± {student[b]['stderr']:.3f}" for b in benches]
        figures = f"{train.get('train_rows')} | {train.get('steps')} | {train.get('last_loss', float('nan')):.3f}"
        print("| " + " | ".join(str(setting[k]) for k in GRID) + f" | {figures} | " + " | ".join(cells) + " |")
    print(f"\nwall {wall:.0f} s for {len(exps)} experiments (the first one grades unless the run-cache has it)")


if __name__ == "__main__":
    main()
