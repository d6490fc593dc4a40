"""The `adacot` command: small user-facing tools around the library (not the pipeline; use `dvc repro`)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path


def _verify_math(args: argparse.Namespace) -> int:
    from adacot.stageio import read_jsonl, write_jsonl
    from adacot.verify import verify_many

    rows = read_jsonl(args.input)
    verdicts = verify_many(
        [(r.get("gold"), str(r.get("response", "")), r.get("finish_reason")) for r in rows],
        workers=args.workers,
        progress=True,
    )
    out = [{**r, "status": v.status, "reason": v.reason, "extracted": v.extracted} for r, v in zip(rows, verdicts)]
    write_jsonl(args.output, out)
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.status] = counts.get(v.status, 0) + 1
    print(json.dumps(counts, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``adacot`` console script."""
    parser = argparse.ArgumentParser(prog="adacot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    vm = sub.add_parser("verify-math", help="judge JSONL rows with `gold` and `response`")
    vm.add_argument("input", type=Path)
    vm.add_argument("output", type=Path)
    vm.add_argument("--workers", type=int, default=2)
    vm.set_defaults(func=_verify_math)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
