"""The `adacot` command: small user-facing tools around the library (not the pipeline; use `dvc repro`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path


def _print_counts(rows: list[dict]) -> None:
    """Counts by status on stdout, as one JSON line (what a user greps or pipes to jq)."""
    print(json.dumps(dict(Counter(row["status"] for row in rows)), sort_keys=True))


def _verify_math(args: argparse.Namespace) -> int:
    from adacot.stageio import read_jsonl, write_jsonl
    from adacot.verify import verify_many

    rows = read_jsonl(args.input)
    verdicts = verify_many(
        [(r.get("gold"), str(r.get("response", "")), r.get("finish_reason")) for r in rows],
        workers=args.workers,
        progress=True,
    )
    out = [
        {**r, "status": v.status, "reason": v.reason, "extracted": v.extracted}
        for r, v in zip(rows, verdicts, strict=True)
    ]
    write_jsonl(args.output, out)
    _print_counts(out)
    return 0


def _verify_code(args: argparse.Namespace) -> int:
    from adacot.stageio import read_jsonl, write_jsonl
    from adacot.verify import Verdict
    from adacot.verify.code import Limits, run_programs

    rows = read_jsonl(args.input)
    limits = Limits(wall_s=args.timeout_s, cpu_s=max(1, int(args.timeout_s)))
    runnable = [i for i, r in enumerate(rows) if isinstance(r.get("program"), str) and isinstance(r.get("tests"), list)]
    ran = run_programs([(rows[i]["program"], rows[i]["tests"]) for i in runnable], limits, args.workers, progress=True)
    verdicts: dict[int, Verdict] = dict(zip(runnable, ran, strict=True))
    out = []
    for i, row in enumerate(rows):
        v = verdicts.get(i) or Verdict("sandbox_error", "row needs a string `program` and a list `tests`")
        out.append({**row, "status": v.status, "reason": v.reason, "failed_test": v.failed_test})
    write_jsonl(args.output, out)
    _print_counts(out)
    return 0


def _cache_merge(args: argparse.Namespace) -> int:
    from adacot.llm import ResponseCache, resolve_cache_dir

    source = args.source / "responses.sqlite" if args.source.is_dir() else args.source
    if not source.is_file():
        print(f"error: no response cache at {args.source} (expected a folder with responses.sqlite, or the file)")
        return 2
    target = ResponseCache(args.into or resolve_cache_dir())
    added = target.merge_from(source)
    print(f"merged {added} new response(s) from {source} into {target.path} ({len(target)} in all)")
    target.close()
    return 0


def _cache_stats(args: argparse.Namespace) -> int:
    from adacot.llm import ResponseCache, resolve_cache_dir

    folder = args.cache or resolve_cache_dir()
    if not (folder / "responses.sqlite").is_file():
        print(f"error: no response cache in {folder}")
        return 2
    cache = ResponseCache(folder)
    print(json.dumps(cache.summary(), indent=2))
    cache.close()
    return 0


def _cache_sync(args: argparse.Namespace) -> int:
    from adacot.llm import ResponseCache, resolve_cache_dir
    from adacot.llm.sync import RemoteError, open_remote, pull, push

    folder = args.cache or resolve_cache_dir()
    cache = ResponseCache(folder)
    try:
        fs, remote_folder, url = open_remote(None, args.remote)
        result = (push if args.command == "cache-push" else pull)(cache, fs, remote_folder, url)
    except RemoteError as error:
        print(f"error: {args.command}: {error}; the local cache ({folder}) is unchanged, run it again to retry")
        return 1
    finally:
        cache.close()
    if args.command == "cache-push":
        print(
            f"pushed {result.responses} new response(s) in {result.snapshots} snapshot(s) to {url} ({result.held} held)"
        )
    else:
        print(
            f"pulled {result.snapshots} snapshot(s) from {url}: {result.responses} new response(s) "
            f"({result.held} held in {folder})"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    import yaml

    from adacot.errors import StageFailure
    from adacot.export import dataset_card, export_table
    from adacot.schemas import SAMPLE, VERIFIED_SOLUTIONS, read_table
    from adacot.stageio import load_prompts, write_jsonl

    params = yaml.safe_load(args.params.read_text()) if args.params.is_file() else {}
    # The prompt file of the run's domain, as dvc.yaml passes it to the stages (prompts/<domain>.yaml).
    prompts_path = args.prompts or Path(f"prompts/{params.get('domain', 'math')}.yaml")
    try:
        table = export_table(
            read_table(args.verdicts, VERIFIED_SOLUTIONS), read_table(args.sample, SAMPLE), load_prompts(prompts_path)
        )
    except (StageFailure, FileNotFoundError) as error:
        print(f"error: {error}")
        return 2
    import datasets

    args.out.mkdir(parents=True, exist_ok=True)
    rows = table.to_dicts()
    datasets.Dataset.from_list(rows).save_to_disk(str(args.out / "dataset"))
    write_jsonl(args.out / "train.jsonl", rows)
    (args.out / "README.md").write_text(dataset_card(table, params, args.name or args.out.name))
    print(
        f"exported {table.height} rows to {args.out}/dataset (datasets), {args.out}/train.jsonl, {args.out}/README.md"
    )
    return 0


def _push_run_cache(args: argparse.Namespace) -> int:
    from adacot.llm.sync import RemoteError, push_run_cache

    try:
        entries, sent = push_run_cache(None, args.remote)
    except RemoteError as error:
        print(f"error: push-run-cache: {error}; nothing local changed, run it again to retry")
        return 1
    print(f"pushed the run-cache ({entries} stage run(s)) and {sent} output object(s) its entries name")
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from adacot.estimate import estimate_command
    from adacot.llm.cache import CACHE_DIR_ENV, DEFAULT_CACHE_DIR, resolve_cache_dir

    # Default: the project's own cache (relative to the params file's folder) unless the environment moves it.
    cache_dir = args.cache_dir or (resolve_cache_dir() if os.environ.get(CACHE_DIR_ENV) else DEFAULT_CACHE_DIR)
    code, text = estimate_command(
        args.params,
        args.set,
        cache_dir,
        args.pool_dir,
        args.sample,
        args.models_dir,
        as_json=args.json,
    )
    print(text)
    return code


def _model_path(args: argparse.Namespace) -> int:
    """The folder with the weights a model folder names, on stdout alone (for `--model "$(adacot model-path
    models/base)"`); converting or merging it into the machine-local models dir first where needed."""
    from adacot.errors import StageFailure
    from adacot.models import resolve_weights

    if not args.folder.is_dir():
        print(f"error: no model folder at {args.folder} (run `dvc repro prepare_model` first?)", file=sys.stderr)
        return 2
    try:
        print(resolve_weights(args.folder).absolute())
    except StageFailure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0


def _ablation(args: argparse.Namespace) -> int:
    """Run (or only report) the ablation sweep of a plan: see ``adacot.ablation``."""
    from adacot.ablation import (
        ablation_table,
        dvc_runner,
        experiments,
        head_rev,
        load_plan,
        read_results,
        run_sweep,
        write_report,
    )
    from adacot.errors import StageFailure

    try:
        plan = load_plan(args.plan)
        run = dvc_runner(Path.cwd())
        rev = args.rev or head_rev(Path.cwd())
        if args.report_only:
            results = read_results(run, [e.name for e in experiments(plan)], rev)
        else:
            results = run_sweep(plan, args.params, run, jobs=args.jobs, rev=rev)
        table = ablation_table(plan, results)
    except StageFailure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    print(write_report(table, args.out, args.plot, None if args.no_png else args.png), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``adacot`` console script."""
    parser = argparse.ArgumentParser(prog="adacot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    vm = sub.add_parser("verify-math", help="check JSONL rows with `gold` and `response` (math answers)")
    vm.add_argument("input", type=Path)
    vm.add_argument("output", type=Path)
    vm.add_argument("--workers", type=int, default=2)
    vm.set_defaults(func=_verify_math)
    vc = sub.add_parser("verify-code", help="run JSONL rows with `program` and `tests` in the sandbox")
    vc.add_argument("input", type=Path)
    vc.add_argument("output", type=Path)
    vc.add_argument("--workers", type=int, default=2)
    vc.add_argument("--timeout-s", type=float, default=10.0, help="wall (and CPU) seconds per test")
    vc.set_defaults(func=_verify_code)
    cm = sub.add_parser("cache-merge", help="copy responses from another cache (a teammate's, a pulled one)")
    cm.add_argument("source", type=Path, help="a cache folder or its responses.sqlite")
    cm.add_argument("--into", type=Path, help="the cache to add to (default: $ADACOT_CACHE_DIR or .adacot/cache)")
    cm.set_defaults(func=_cache_merge)
    cs = sub.add_parser("cache-stats", help="responses and tokens held by a cache, by model")
    cs.add_argument("cache", type=Path, nargs="?", help="default: $ADACOT_CACHE_DIR or .adacot/cache")
    cs.set_defaults(func=_cache_stats)
    for name, what in (
        ("cache-push", "upload the responses the DVC remote lacks (a snapshot under <remote>/adacot/responses)"),
        ("cache-pull", "merge the remote's response snapshots this cache has not merged yet"),
    ):
        sync = sub.add_parser(name, help=what)
        sync.add_argument("-r", "--remote", help="DVC remote name (default: the repo's default remote)")
        sync.add_argument("--cache", type=Path, help="the cache folder (default: $ADACOT_CACHE_DIR or .adacot/cache)")
        sync.set_defaults(func=_cache_sync)
    pr = sub.add_parser(
        "push-run-cache", help="dvc push --run-cache, plus the cache: false outputs its entries name (metrics)"
    )
    pr.add_argument("-r", "--remote", help="DVC remote name (default: the repo's default remote)")
    pr.set_defaults(func=_push_run_cache)
    ex = sub.add_parser("export", help="the kept SFT rows as a datasets folder, chat JSONL and a dataset card")
    ex.add_argument("--out", type=Path, required=True, help="folder to write (dataset/, train.jsonl, README.md)")
    ex.add_argument("--verdicts", type=Path, default=Path("data/sft/verdicts.parquet"))
    ex.add_argument("--sample", type=Path, default=Path("data/sample/questions.parquet"))
    ex.add_argument("--prompts", type=Path, help="prompt file (default: prompts/<domain>.yaml of --params)")
    ex.add_argument("--params", type=Path, default=Path("params.yaml"))
    ex.add_argument("--name", help="dataset name in the card (default: the folder name)")
    ex.set_defaults(func=_export)
    es = sub.add_parser("estimate", help="projected requests, tokens and dollars of the pipeline (calls no model)")
    es.add_argument("--params", type=Path, default=Path("params.yaml"))
    es.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="as dvc exp run -S")
    es.add_argument(
        "--cache-dir",
        type=Path,
        help="the response cache to count hits in (default: $ADACOT_CACHE_DIR or .adacot/cache)",
    )
    es.add_argument("--pool-dir", type=Path, default=Path("data/pool"), help="prepare_pool's outputs, if any")
    es.add_argument("--sample", type=Path, default=Path("data/sample/questions.parquet"), help="the sample, if any")
    es.add_argument("--models-dir", type=Path, default=Path("models"), help="prepared models (fingerprints only)")
    es.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    es.set_defaults(func=_estimate)
    mp = sub.add_parser(
        "model-path", help="the weights folder a model folder (models/base, models/student) names, made if needed"
    )
    mp.add_argument("folder", type=Path, help="a prepared model folder, e.g. models/base or models/student")
    mp.set_defaults(func=_model_path)
    ab = sub.add_parser(
        "ablation",
        help="the adaptive-vs-random sweep: queue arms x seeds as DVC experiments, run them, write the table",
    )
    ab.add_argument("--plan", type=Path, default=Path("configs/ablation.yaml"), help="arms, seeds, shared params")
    ab.add_argument("--params", type=Path, default=Path("params.yaml"))
    ab.add_argument("--jobs", type=int, help="dvc queue workers (default: the plan's)")
    ab.add_argument("--report-only", action="store_true", help="only read the finished experiments and write the table")
    ab.add_argument("--rev", help="the commit the experiments are based on (default: HEAD)")
    ab.add_argument("--out", type=Path, default=Path("metrics/ablation.json"), help="the table (metrics JSON)")
    ab.add_argument("--plot", type=Path, default=Path("metrics/plots/ablation_by_level.json"), help="DVC plot data")
    ab.add_argument("--png", type=Path, default=Path("docs/ablation.png"), help="accuracy by level per arm")
    ab.add_argument("--no-png", action="store_true")
    ab.set_defaults(func=_ablation)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
