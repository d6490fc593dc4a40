"""Helpers that every stage script shares: logging set-up, params, metrics, JSONL files and prompts.

Only stage scripts (the ``main`` of each DVC stage) call these; library functions never touch files.
Opening models for a stage is ``adacot.llm.roles`` (kept apart so that stages without a model do not
depend on the model code).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from adacot.config import Params, ParamsError, load_params
from adacot.errors import StageFailure
from adacot.prompts import PromptSet, parse_prompt_set


def setup(description: str, paths: dict[str, str]) -> tuple[argparse.Namespace, Params]:
    """Parse ``--<name> PATH`` arguments, configure logging, and validate all params before any work."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    for name, help_text in paths.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True, help=help_text)
    args = parser.parse_args()
    logging.basicConfig(
        level=os.environ.get("ADACOT_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        params = load_params(Path(args.params))
    except ParamsError as error:
        # A contract error, not a crash: say what to fix, without a traceback, before any work starts.
        raise SystemExit(f"error: {error}") from None
    return args, params


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a ``StageFailure`` ends it with ``error: <one line>`` and exit status 1.

    Anything else propagates with its traceback: a bug must stay visible as one.
    """
    try:
        main()
    except StageFailure as failure:
        logging.getLogger("adacot.stage").error("%s", failure)
        raise SystemExit(f"error: {failure}") from None


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf; metrics with them would break `dvc metrics diff`.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Write a metrics JSON (sorted keys, finite numbers only)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_clean(metrics), indent=2, sort_keys=True) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a line that is not a JSON object becomes ``{"_malformed": line}``.

    Malformed lines are handed on (not dropped) so the caller can record them as rejects with a reason.
    """
    rows: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = {"_malformed": line.rstrip("\n")}
            rows.append(row if isinstance(row, dict) else {"_malformed": line.rstrip("\n")})
    return rows


def write_json(path: str | Path, value: Any) -> None:
    """Write one JSON document (DVC plot data: a list of row objects), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSONL; returns the count."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with target.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def load_prompts(path: str | Path, domain: str | None = None) -> PromptSet:
    """Read and validate a prompt YAML file; with ``domain``, refuse a file written for another domain."""
    prompts = parse_prompt_set(yaml.safe_load(Path(path).read_text()))
    if domain is not None and prompts.domain != domain:
        raise ValueError(
            f"{path} is a {prompts.domain} prompt set but params say domain={domain}; "
            f"dvc.yaml passes prompts/${{domain}}.yaml, so run through dvc or pass the matching file"
        )
    return prompts
