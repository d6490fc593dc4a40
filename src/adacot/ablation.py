"""The ablation sweep: the paper's comparison as arms x seeds of ``dvc exp run``, one grading, one table.

A plan (``configs/ablation.yaml``) names the params every experiment shares (a larger pool, the teacher,
N, the SFT settings), each arm's own params (how the sample is drawn: adaptive by P_C, adaptive by
P_eval, random) and the seeds (``sample.seed`` and ``sft.seed``: the top-level seed, and so the pool, the
grading and the teacher's answers, stay the same in every experiment). ``adacot ablation``:

1. checks every experiment's params (the plan's overrides on ``params.yaml``, parsed like a stage does)
   and that the arms differ only in ``dist`` and ``sample`` keys other than ``sample.size`` (equal N),
   before anything is queued;
2. queues, with ``dvc exp run --queue -n <prefix>-<arm>-s<seed>``, every experiment of the plan with no
   result yet on this commit (a rerun after a crash or a failed experiment queues only those), runs the
   queue with ``dvc queue start`` and waits for it. The first experiment grades the pool; the others find
   the grading (and the base model's evaluation) in DVC's run-cache, and teacher answers in the response
   cache;
3. reads every experiment's metrics through ``dvc exp show --json`` and writes the table (pass@1 mean and
   standard error over seeds per arm, per benchmark, per level and per generator tier), the plot data
   and a PNG of accuracy by level per arm.

This module drives DVC and aggregates; it trains and evaluates nothing itself (the stages do).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from adacot.errors import StageFailure
from adacot.stats import mean_and_stderr
from adacot.vocabulary import LEVELS

log = logging.getLogger(__name__)

Scalar = str | int | float | bool | None
Value = JsonValue  # a scalar, or a list / dict of values (a whole `benchmarks` list, say)
# Arms may only change how the sample is drawn; everything upstream of it is shared and graded once.
ARM_SECTIONS = ("dist.", "sample.")
SEED_KEYS = ("sample.seed", "sft.seed")
BREAKDOWN_METRICS = "metrics/breakdown.json"
SAMPLE_METRICS = "metrics/sample_questions.json"
TRAIN_METRICS = "metrics/train_student.json"
DATABASE_METRICS = "metrics/build_database.json"


class AblationPlan(BaseModel):
    """The sweep: shared params, arms (each a few ``dist``/``sample`` keys) and seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="experiment names: <prefix>-<arm>-s<seed>")
    jobs: int = Field(ge=1, description="dvc queue workers (1 on a small machine: the first one grades)")
    seeds: list[int] = Field(min_length=1, description="sample.seed and sft.seed of each experiment")
    params: dict[str, Value] = Field(description="dvc exp run -S key=value for every experiment")
    arms: dict[str, dict[str, Scalar]] = Field(min_length=2, description="arm name -> its own -S keys")

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: dict[str, dict[str, Scalar]]) -> dict[str, dict[str, Scalar]]:
        for name, keys in arms.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name):
                raise ValueError(f"arm name {name!r}: lower-case letters, digits and _ only")
            for key in keys:
                if not key.startswith(ARM_SECTIONS) or key == "sample.size" or key in SEED_KEYS:
                    raise ValueError(
                        f"arm {name}: {key} is not an arm's key; arms differ only in dist.* and sample.* "
                        "(not sample.size: equal N; not the seeds: `seeds` sets them), so grading runs once"
                    )
        return arms

    @field_validator("params")
    @classmethod
    def _params(cls, params: dict[str, Value]) -> dict[str, Value]:
        for key in params:
            if key in SEED_KEYS:
                raise ValueError(f"params: {key} is set per experiment from `seeds`")
        return params

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        return seeds


def load_plan(path: Path) -> AblationPlan:
    """Read and check a plan file; a bad plan fails here with the keys to fix."""
    if not path.is_file():
        raise StageFailure(f"no ablation plan at {path}")
    try:
        return AblationPlan.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise StageFailure(f"{path}: {problems}") from None


@dataclass(frozen=True)
class Experiment:
    """One queued ``dvc exp run``: its name, arm, seed and ``-S`` overrides."""

    name: str
    arm: str
    seed: int
    overrides: tuple[str, ...]


def _value(value: Value) -> str:
    # Hydra's override grammar (what `dvc exp run -S` parses): null, true/false, numbers, quoted strings,
    # [lists] and {key: value} dicts (a whole list such as `benchmarks` is replaced this way).
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def override(key: str, value: Value) -> str:
    """One ``-S`` argument: ``key=value`` in the grammar ``dvc exp run -S`` parses."""
    return f"{key}={_value(value)}"


def experiments(plan: AblationPlan) -> list[Experiment]:
    """Every (arm, seed) of the plan, arms in plan order, seeds within."""
    out = []
    for arm, keys in plan.arms.items():
        for seed in plan.seeds:
            merged: dict[str, Value] = {**plan.params, **keys, **{key: seed for key in SEED_KEYS}}
            overrides = tuple(override(key, value) for key, value in merged.items())
            out.append(Experiment(f"{plan.prefix}-{arm.replace('_', '-')}-s{seed}", arm, seed, overrides))
    return out


def check_experiments(exps: Sequence[Experiment], params_path: Path) -> None:
    """Parse every experiment's params as its stages will (the overrides applied by DVC's own code on a
    copy of ``params_path``); the first bad one fails the sweep before anything is queued."""
    from adacot.config import ParamsError
    from adacot.estimate import params_with_overrides

    for exp in exps:
        try:
            params_with_overrides(params_path, exp.overrides)
        except ParamsError as error:
            raise StageFailure(f"experiment {exp.name}: {error}") from None
        except Exception as error:  # DVC's override parser: a key that is not in params.yaml, bad syntax
            raise StageFailure(f"experiment {exp.name}: {type(error).__name__}: {error}") from None


# --- reading `dvc exp show --json` -----------------------------------------------------------------------


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _file_data(files: Mapping[str, Any] | None, path: str) -> dict[str, Any] | None:
    entry = (files or {}).get(path)
    if isinstance(entry, dict) and isinstance(entry.get("data"), dict):
        return entry["data"]
    return None


def results_by_name(show: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The metrics files of each named experiment in ``dvc exp show --json`` output ({path: data}).

    Only experiments with a breakdown (the last stage ran) count as results; the walk does not depend on
    how DVC nests experiments under their baseline."""
    wanted = set(names)
    found: dict[str, dict[str, Any]] = {}
    for node in _nodes(show):
        name, data = node.get("name"), node.get("data")
        if name not in wanted or not isinstance(data, dict):
            continue
        metrics = data.get("metrics")
        if _file_data(metrics, BREAKDOWN_METRICS) is None:
            continue
        found[name] = {path: _file_data(metrics, path) for path in (metrics or {})}
    return found


# --- the table -----------------------------------------------------------------------------------------


def _spread(values: Sequence[float]) -> dict[str, Any]:
    mean, stderr = mean_and_stderr(list(values))
    return {"mean": mean, "stderr": stderr, "runs": len(values), "values": list(values)}


def ablation_table(plan: AblationPlan, results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per arm: pass@1 of the tuned student, mean and standard error over seeds, for every benchmark
    (and "all") and within each of them per level and per generator tier; the base model's figures (the
    same in every experiment) as the reference line; and each arm's sample by level and SFT rows."""
    exps = experiments(plan)
    missing = [e.name for e in exps if e.name not in results]
    if missing:
        raise StageFailure(f"no results for {len(missing)} experiment(s): {', '.join(missing)}")
    arms: dict[str, Any] = {}
    base: dict[str, Any] | None = None
    for arm in plan.arms:
        runs = [results[e.name] for e in exps if e.arm == arm]
        breakdowns = [run[BREAKDOWN_METRICS] for run in runs]
        base = base or breakdowns[0]["base"]
        table: dict[str, Any] = {}
        for bench, entry in breakdowns[0]["student"].items():
            row: dict[str, Any] = {
                "pass@1": _spread([b["student"][bench]["pass@1"] for b in breakdowns]),
                "truncation_rate": _spread([b["student"][bench].get("truncation_rate", 0.0) for b in breakdowns])[
                    "mean"
                ],
            }
            for grouping in ("by_level", "by_generator_tier"):
                keys = entry.get(grouping, {})
                row[grouping] = {
                    key: _spread(
                        [
                            b["student"][bench][grouping][key]["pass@1"]
                            for b in breakdowns
                            if key in b["student"][bench].get(grouping, {})
                        ]
                    )
                    for key in keys
                }
            table[bench] = row
        samples = [run.get(SAMPLE_METRICS) or {} for run in runs]
        trains = [run.get(TRAIN_METRICS) or {} for run in runs]
        arms[arm] = {
            "params": plan.arms[arm],
            "benchmarks": table,
            "sample_by_level": {
                level: _spread([float((s.get("effective_quota") or {}).get(level, 0)) for s in samples])["mean"]
                for level in LEVELS
            },
            "train_rows": _spread([float(t.get("train_rows", 0)) for t in trains])["mean"],
        }
    assert base is not None
    database = results[exps[0].name].get(DATABASE_METRICS) or {}
    grading = {
        "pool": {
            k: database.get(k) for k in ("questions", "level_histogram", "truncation_rate", "truncation_by_level")
        },
        "eval": {
            k: (database.get("eval") or {}).get(k)
            for k in ("questions", "level_histogram", "truncation_rate", "truncation_by_level")
        },
    }
    return {
        "grading": grading,
        "experiments": [e.name for e in exps],
        "seeds": plan.seeds,
        "params": plan.params,
        "base": {
            bench: {
                "pass@1": entry["pass@1"],
                "stderr": entry["stderr"],
                "truncation_rate": entry.get("truncation_rate"),
                "by_level": {k: v["pass@1"] for k, v in entry.get("by_level", {}).items()},
                "by_generator_tier": {k: v["pass@1"] for k, v in entry.get("by_generator_tier", {}).items()},
            }
            for bench, entry in base.items()
        },
        "arms": arms,
    }


def level_plot_rows(table: Mapping[str, Any], benchmark: str = "all") -> list[dict[str, Any]]:
    """One row per level: the base's pass@1 and each arm's mean pass@1 on ``benchmark`` (DVC plot data)."""
    rows = []
    for level in LEVELS:
        row: dict[str, Any] = {"level": level}
        base = table["base"].get(benchmark, {}).get("by_level", {})
        if level in base:
            row["base"] = base[level]
        for arm, figures in table["arms"].items():
            cell = figures["benchmarks"].get(benchmark, {}).get("by_level", {}).get(level)
            if cell is not None:
                row[arm] = cell["mean"]
        if len(row) > 1:
            rows.append(row)
    return rows


def markdown(table: Mapping[str, Any]) -> str:
    """The table as Markdown: one row per arm, a column per benchmark (pass@1 mean ± standard error over
    seeds), then one row per arm with pass@1 by level on all benchmarks pooled."""
    benches = list(next(iter(table["arms"].values()))["benchmarks"])
    head = "| arm | " + " | ".join(benches) + " |"
    lines = [head, "|---|" + "---:|" * len(benches)]
    lines.append("| base (untuned) | " + " | ".join(f"{table['base'][b]['pass@1']:.3f}" for b in benches) + " |")
    for arm, figures in table["arms"].items():
        cells = [
            f"{figures['benchmarks'][b]['pass@1']['mean']:.3f} ± {figures['benchmarks'][b]['pass@1']['stderr']:.3f}"
            for b in benches
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    levels = [
        lv
        for lv in LEVELS
        if any(lv in f["benchmarks"].get("all", {}).get("by_level", {}) for f in table["arms"].values())
    ]
    lines += ["", "| arm (all benchmarks) | " + " | ".join(levels) + " |", "|---|" + "---:|" * len(levels)]
    base_levels = table["base"].get("all", {}).get("by_level", {})
    lines.append("| base (untuned) | " + " | ".join(f"{base_levels.get(lv, float('nan')):.3f}" for lv in levels) + " |")
    for arm, figures in table["arms"].items():
        by_level = figures["benchmarks"].get("all", {}).get("by_level", {})
        cells = [
            f"{by_level[lv]['mean']:.3f} ± {by_level[lv]['stderr']:.3f}" if lv in by_level else "-" for lv in levels
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| level | "
        + " | ".join(f"sample: {arm}" for arm in table["arms"])
        + " | pool (attempts cut) | eval set (attempts cut) |",
    ]
    lines.append("|---|" + "---:|" * (len(table["arms"]) + 2))
    grading = table.get("grading") or {}

    def graded(which: str, level: str) -> str:
        part = grading.get(which) or {}
        count = (part.get("level_histogram") or {}).get(level)
        cut = (part.get("truncation_by_level") or {}).get(level)
        return "-" if count is None else f"{count} ({cut:.0%})" if cut is not None else str(count)

    for level in LEVELS:
        counts = [f"{figures['sample_by_level'].get(level, 0.0):.1f}" for figures in table["arms"].values()]
        lines.append(f"| {level} | " + " | ".join(counts) + f" | {graded('pool', level)} | {graded('eval', level)} |")
    return "\n".join(lines) + "\n"


def plot_png(table: Mapping[str, Any], path: Path, benchmark: str = "all") -> bool:
    """Accuracy by level per arm, with standard-error bars over seeds and the base as a line; False
    (and a log line) when matplotlib is not installed: the DVC plot data is written either way."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s (the DVC plot data is written)", path)
        return False
    rows = level_plot_rows(table, benchmark)
    levels = [row["level"] for row in rows]
    arms = list(table["arms"])
    width = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    for i, arm in enumerate(arms):
        by_level = table["arms"][arm]["benchmarks"].get(benchmark, {}).get("by_level", {})
        means = [by_level.get(lv, {}).get("mean", 0.0) for lv in levels]
        errs = [by_level.get(lv, {}).get("stderr", 0.0) for lv in levels]
        xs = [x + (i - (len(arms) - 1) / 2) * width for x in range(len(levels))]
        ax.bar(xs, means, width, yerr=errs, capsize=3, label=arm)
    base = table["base"].get(benchmark, {}).get("by_level", {})
    ax.scatter(range(len(levels)), [base.get(lv, 0.0) for lv in levels], marker="_", s=600, c="black", label="base")
    ax.set_xticks(range(len(levels)), levels)
    ax.set_ylabel("pass@1")
    ax.set_xlabel("difficulty level of the evaluation question (graded on the student)")
    ax.set_title(f"Tuned student by level, mean ± s.e. over {len(table['seeds'])} seeds ({benchmark})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


# --- driving DVC ---------------------------------------------------------------------------------------

Runner = Callable[[list[str]], str]


def dvc_runner(repo: Path) -> Runner:
    """Run a dvc command in ``repo`` and return its stdout; a failure raises with the command's stderr."""

    def run(argv: list[str]) -> str:
        done = subprocess.run(["dvc", *argv], cwd=repo, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise StageFailure(f"`dvc {' '.join(argv[:3])} ...` failed: {' | '.join(tail)}")
        return done.stdout

    return run


def queue_states(status: str, names: Sequence[str]) -> dict[str, str]:
    """Each named experiment's state (Queued, Running, Success, Failed) in ``dvc queue status`` text."""
    states: dict[str, str] = {}
    for line in status.splitlines():
        words = line.split()
        for name in names:
            if name in words:
                state = next((w for w in words if w in ("Queued", "Running", "Success", "Failed")), None)
                if state:
                    states[name] = state
    return states


def read_results(run: Runner, names: Sequence[str], rev: str | None = None) -> dict[str, dict[str, Any]]:
    """The metrics of the named experiments derived from commit ``rev`` (HEAD by default)."""
    argv = ["exp", "show", "--json", *(["--rev", rev] if rev else [])]
    return results_by_name(json.loads(run(argv) or "[]"), names)


def head_rev(repo: Path) -> str:
    """The commit the experiments queued now are based on (they stay under it if HEAD moves on)."""
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StageFailure(f"not a git repository with a commit at {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


def run_experiments(
    exps: Sequence[Experiment],
    run: Runner,
    jobs: int,
    poll_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "ablation",
    rev: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Queue the experiments that have no result on commit ``rev`` (the one they are based on: HEAD when
    they are queued), run the queue, wait; return every experiment's metrics, read under ``rev`` (so a
    commit made meanwhile loses nothing). Experiments that failed are named in the error (their logs:
    ``dvc queue logs``); the ones that succeeded are kept, so a rerun queues only the rest."""
    names = [e.name for e in exps]
    done = read_results(run, names, rev)
    todo = [e for e in exps if e.name not in done]
    log.info("%s: %d experiments, %d with results, %d to run", what, len(exps), len(done), len(todo))
    if todo:
        stale = [n for n, s in queue_states(run(["queue", "status"]), [e.name for e in todo]).items() if s != "Success"]
        if stale:
            run(["queue", "remove", *stale])
        # With nothing done yet, the first experiment runs alone: it fills DVC's run-cache with the shared
        # stages (grading), so parallel workers after it restore them instead of each grading again.
        batches = [todo[:1], todo[1:]] if not done and jobs > 1 and len(todo) > 1 else [todo]
        started = time.monotonic()
        for batch in batches:
            for exp in batch:
                argv = ["exp", "run", "--queue", "-n", exp.name]
                for item in exp.overrides:
                    argv += ["-S", item]
                run(argv)
            run(["queue", "start", "-j", str(min(jobs, len(batch)))])
            _wait(run, [e.name for e in batch], poll_s, sleep, what, started)
    return read_results(run, names, rev)


def _wait(
    run: Runner, names: list[str], poll_s: float, sleep: Callable[[float], None], what: str, started: float
) -> None:
    last = ""
    while True:
        states = queue_states(run(["queue", "status"]), names)
        pending = [n for n, s in states.items() if s in ("Queued", "Running")]
        line = f"{sum(s == 'Success' for s in states.values())}/{len(names)} done, {len(pending)} pending"
        if line != last:
            log.info("%s: %s (%.0f s)", what, line, time.monotonic() - started)
            last = line
        if not pending:
            break
        sleep(poll_s)
    failed = [n for n, s in states.items() if s == "Failed"]
    if failed:
        raise StageFailure(
            f"{len(failed)} experiment(s) failed: {', '.join(failed)} (see `dvc queue logs <name>`); "
            "rerun to run only those"
        )


def run_sweep(
    plan: AblationPlan,
    params_path: Path,
    run: Runner,
    jobs: int | None = None,
    poll_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    rev: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Check every experiment of the plan, then run the ones without a result on ``rev`` (the commit they
    are based on; the caller passes HEAD as it was when the sweep started) with ``run_experiments``."""
    exps = experiments(plan)
    check_experiments(exps, params_path)
    return run_experiments(exps, run, jobs or plan.jobs, poll_s, sleep, rev=rev)


def write_report(table: Mapping[str, Any], out_json: Path, out_plot: Path, out_png: Path | None) -> str:
    """Write the table (metrics JSON), the plot data and the PNG; return the Markdown table."""
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    out_plot.parent.mkdir(parents=True, exist_ok=True)
    out_plot.write_text(json.dumps(level_plot_rows(table), indent=1) + "\n")
    if out_png is not None:
        plot_png(table, out_png)
    return markdown(table)
