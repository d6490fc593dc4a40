"""Render the level histogram and the student's pass rate per level as a PNG for the README.

Reads the DVC plot data build_database writes (metrics/plots/level_histogram.json and
pass_rate_by_level.json: rows per set (pool / eval) and level) and draws two bar charts side by side.
`dvc plots show` renders the same data as HTML; this script is for a static image. Needs matplotlib
(`pip install matplotlib`; the dev extra has it).

Usage: python docs/plot_levels.py [--out docs/level_histogram.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LEVELS = ("easy", "medium", "hard", "very_hard", "extreme")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=Path, default=Path("metrics/plots/level_histogram.json"))
    parser.add_argument("--pass-rate", type=Path, default=Path("metrics/plots/pass_rate_by_level.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/level_histogram.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = json.loads(args.levels.read_text())
    rates = json.loads(args.pass_rate.read_text())
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.4
    for offset, name, color in ((-width / 2, "pool", "#4c72b0"), (width / 2, "eval", "#dd8452")):
        share = {r["level"]: r["share"] for r in levels if r["set"] == name}
        count = {r["level"]: r["questions"] for r in levels if r["set"] == name}
        xs = [i + offset for i in range(len(LEVELS))]
        bars = left.bar(
            xs, [share.get(lv, 0) for lv in LEVELS], width, label=f"{name} (n={sum(count.values())})", color=color
        )
        left.bar_label(bars, labels=[str(count.get(lv, 0)) for lv in LEVELS], fontsize=8)
        rate = {r["level"]: r["pass_rate"] for r in rates if r["set"] == name}
        right.bar(xs, [rate.get(lv, 0) for lv in LEVELS], width, label=name, color=color)
    for ax, title, ylabel in (
        (left, "Level histogram (share; counts on bars)", "share of questions"),
        (right, "Student pass rate per level", "pass rate (k attempts)"),
    ):
        ax.set_xticks(range(len(LEVELS)), LEVELS)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
