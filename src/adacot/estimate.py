"""The whole pipeline's projected requests, tokens and dollars under params, before anything runs.

``adacot estimate`` prints this: per model-calling stage (grade_questions@pool and @eval, score_failures
@pool and @eval, generate_solutions, evaluate@base and @student) the answers it will need, how many the
response cache already holds where that can be known, the expected prompt and completion tokens and the
dollars at ``prices`` for roles on ``openai`` (local engines cost 0; their tokens are still shown). The
arithmetic is the stages' own (``adacot.llm.spend.project``): expected tokens per answer come from the
model's own answers in the cache, else ``max_tokens`` per answer (an upper bound) and prompt chars / 4.

Questions come from prepare_pool's outputs when they are there (exact questions, so cache hits are
exact too), else from the sources in params (read as prepare_pool would, before its deduplication and
decontamination: a count from params, at most what prepare_pool keeps; a hub source counts its
``limit``). Upper bounds where the pipeline decides later: score_failures assumes every question fails
(``prm.max_attempts`` attempts x ``prm.max_steps`` steps each, every step as long as
``prm.max_step_chars``); generate_solutions asks ``sample.size x teacher.attempts`` (the sample is known,
and its cache hits counted, only when data/sample holds one of that size), or nothing at all with
``teacher.backend: reference`` (the questions' own solutions: 0 requests, 0 tokens, $0).

It never calls a model and never loads weights: a local model's cache identity is read from its folder's
fingerprint file, and without it (a fresh clone) its cache hits are unknown. This module is for the
projection only; enforcing a cap is ``adacot.llm.spend``, at stage run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from adacot.config import BenchmarkParams, Params, SourceParams, in_domain
from adacot.evaluation import decoding_for
from adacot.llm.base import Conversation, Sampling
from adacot.llm.cache import Price, cache_key
from adacot.llm.roles import sampling_from
from adacot.llm.spend import TokenHistory, held_keys, project, token_history
from adacot.prm import JUDGE_SAMPLING, SINGLE_PASS_VERSION, judge_conversations, single_pass_conversation
from adacot.prompts import PromptSet

Role = Literal["student", "teacher", "prm", "evaluate"]
JUDGE_TOP_LOGPROBS = 20  # what GenerativeJudge asks a served judge for (part of its cache identity)


@dataclass(frozen=True)
class Questions:
    """A question set as the estimate sees it: texts per benchmark (or the pool's), and where they came from."""

    texts: dict[str, list[str]]
    source: str  # "data/pool/questions.parquet" or "params (before dedup/decontamination)"
    unknown_counts: dict[str, int] = field(default_factory=dict)  # hub sources: a limit, no text here

    @property
    def count(self) -> int:
        return sum(len(t) for t in self.texts.values()) + sum(self.unknown_counts.values())

    def all_texts(self) -> list[str]:
        return [t for texts in self.texts.values() for t in texts]


@dataclass(frozen=True)
class Inputs:
    """What the estimate reads besides params: questions, the sample if any, models' cache identities."""

    pool: Questions
    benchmarks: Questions
    sample: list[str] | None  # the sampled questions, when data/sample holds a sample of sample.size
    model_ids: dict[str, str | None]  # "base", "student" -> local model id (None: not prepared here)
    cache_file: Path | None


@dataclass(frozen=True)
class StageEstimate:
    """One stage's projection."""

    stage: str
    role: Role
    model: str
    backend: str
    answers: int
    cached: int | None  # None: cannot be known before the stage's inputs exist
    requests_to_send: int
    prompt_tokens: int
    completion_tokens: int
    usd: float
    basis: str
    note: str = ""


def _served_price(params: Params, name: str) -> Price:
    entry = params.prices.get(name)
    return Price(entry.input, entry.output) if entry else Price()


def _estimate(
    stage: str,
    role: Role,
    model: str,
    backend: str,
    model_id: str | None,
    asks: Sequence[tuple[Conversation, int, list[str]]],
    sampling: Sampling,
    price: Price,
    inputs: Inputs,
    prompt_once: bool,
    note: str = "",
    known_keys: bool = True,
) -> StageEstimate:
    """Project ``asks`` (conversation, samples, cache keys) through ``spend.project`` after counting hits."""
    held: set[str] = set()
    if model_id is not None and known_keys:
        held = held_keys(inputs.cache_file, [k for _, _, keys in asks for k in keys])
    pending = [(conv, n - sum(k in held for k in keys)) for conv, n, keys in asks]
    hits = len(held)
    history = token_history(inputs.cache_file, model_id) if model_id is not None else TokenHistory()
    projection = project(stage, model_id or model, pending, hits, sampling, price, history, prompt_once=prompt_once)
    return StageEstimate(
        stage=stage,
        role=role,
        model=model,
        backend=backend,
        answers=projection.answers_needed,
        cached=hits if model_id is not None and known_keys else None,
        requests_to_send=projection.requests_to_send,
        prompt_tokens=projection.prompt_tokens,
        completion_tokens=projection.completion_tokens,
        usd=projection.usd if backend == "openai" else 0.0,
        basis=projection.basis,
        note=note,
    )


def _asks(
    conversations: Sequence[Conversation], n: int, model_id: str | None, sampling: Sampling
) -> list[tuple[Conversation, int, list[str]]]:
    ident = model_id or ""
    return [(c, n, [cache_key(ident, c, sampling, i) for i in range(n)] if model_id else []) for c in conversations]


def _student(params: Params, inputs: Inputs) -> tuple[str, str, str | None, Price, bool]:
    """(shown name, backend, cache identity, price, prompt once) of the student as grading runs it."""
    if params.student.backend == "openai":
        name = params.student.served_model or ""
        api = params.role_api("student")
        return name, "openai", f"openai:{name}", _served_price(params, name), api.native_n
    return "models/base", "local", inputs.model_ids.get("base"), Price(), True


def estimate_pipeline(params: Params, prompts: PromptSet, inputs: Inputs) -> list[StageEstimate]:
    """Every model-calling stage's projection under ``params``, in pipeline order."""
    rows: list[StageEstimate] = []
    name, backend, student_id, price, once = _student(params, inputs)
    grading = sampling_from(params.grade, params.seed)
    for key, questions in (("pool", inputs.pool), ("eval", inputs.benchmarks)):
        conversations = [prompts.render("student", q) for q in questions.all_texts()]
        asks = _asks(conversations, params.grade.attempts, student_id, grading)
        asks += _unknown_asks(questions, prompts, "student", params.grade.attempts)
        note = _unknown_note(questions)
        rows.append(
            _estimate(
                f"grade_questions@{key}", "student", name, backend, student_id, asks, grading, price, inputs, once, note
            )
        )
    for key, questions in (("pool", inputs.pool), ("eval", inputs.benchmarks)):
        rows.append(_judge_estimate(params, prompts, inputs, key, questions))
    rows.append(_teacher_estimate(params, prompts, inputs))
    for which in ("base", "student"):
        rows.append(_evaluate_estimate(params, prompts, inputs, which))
    return rows


def _unknown_asks(
    questions: Questions, prompts: PromptSet, role: str, n: int
) -> list[tuple[Conversation, int, list[str]]]:
    """Questions counted but not read here (hub sources): asked at the mean length of the known ones."""
    missing = sum(questions.unknown_counts.values())
    if not missing:
        return []
    known = questions.all_texts()
    mean = sum(len(q) for q in known) // len(known) if known else 0
    return [(prompts.render(role, "x" * mean), n, [])] * missing


def _unknown_note(questions: Questions) -> str:
    if not questions.unknown_counts:
        return ""
    return "not read here (prompt length assumed): " + ", ".join(
        f"{k} {v}" for k, v in sorted(questions.unknown_counts.items())
    )


def _judge_estimate(
    params: Params, prompts: PromptSet, inputs: Inputs, key: str, questions: Questions
) -> StageEstimate:
    prm = params.prm
    stage = f"score_failures@{key}"
    attempts = min(prm.max_attempts, params.grade.attempts)
    if prm.kind == "none":
        return StageEstimate(stage, "prm", "none", "local", 0, None, 0, 0, 0, 0.0, "prm.kind: none scores nothing")
    texts = questions.all_texts()
    mean = sum(len(q) for q in texts) // len(texts) if texts else 0
    texts += ["x" * mean] * sum(questions.unknown_counts.values())
    steps = ["x" * prm.max_step_chars] * prm.max_steps
    bound = "upper bound: every question fails"
    if prm.kind == "discriminative":  # one pooling pass per attempt, over its steps: local, no completion
        conversations = [({"role": "user", "content": q + "\n\n".join(steps)},) for q in texts for _ in range(attempts)]
        pending = [(c, 1) for c in conversations]
        projection = project(stage, prm.model, pending, 0, JUDGE_SAMPLING, Price(), TokenHistory())
        return StageEstimate(
            stage, "prm", prm.model, "local", len(pending), None, len(pending), projection.prompt_tokens, 0, 0.0,
            f"{bound}; one pass per attempt", f"{attempts} attempts x {len(texts)} questions",
        )  # fmt: skip
    if prm.backend == "local" and prm.judge == "single_pass":  # one prompt per attempt, every step in it
        judged = [single_pass_conversation(q, steps, prompts.judge) for q in texts] * attempts
    else:
        judged = [c for q in texts for c in judge_conversations(q, steps, prompts.judge)] * attempts
    if prm.backend == "openai":
        name = prm.served_model or ""
        model, backend, price = name, "openai", _served_price(params, name)
        model_id: str | None = f"openai:{name}|top_logprobs={JUDGE_TOP_LOGPROBS}"
        once = params.role_api("prm").native_n
    else:
        base = inputs.model_ids.get("base") if prm.model == "base" else None
        model, backend, price, once = prm.model, "local", Price(), True
        mark = f"|yes_share|{SINGLE_PASS_VERSION}" if prm.judge == "single_pass" else "|yes_share"
        model_id = f"{base}{mark}" if base else None
    # Which steps are judged depends on the student's attempts: the judge's cache hits are not known here.
    estimate = _estimate(
        stage, "prm", model, backend, model_id, [(c, 1, []) for c in judged], JUDGE_SAMPLING, price, inputs, once,
        f"{attempts} failing attempts x {prm.max_steps} steps x {len(texts)} questions", known_keys=False,
    )  # fmt: skip
    return _with_basis(estimate, f"{bound}, steps of {prm.max_step_chars} chars; {estimate.basis}")


def _with_basis(estimate: StageEstimate, basis: str) -> StageEstimate:
    return StageEstimate(**{**asdict(estimate), "basis": basis})


def _teacher_estimate(params: Params, prompts: PromptSet, inputs: Inputs) -> StageEstimate:
    teacher = params.teacher
    if teacher.backend == "reference":  # the questions' own solutions: no model, no request, no cost
        size = min(params.sample.size, inputs.pool.count) if inputs.sample is None else len(inputs.sample)
        return StageEstimate(
            stage="generate_solutions", role="teacher", model="reference", backend="reference", answers=size,
            cached=0, requests_to_send=0, prompt_tokens=0, completion_tokens=0, usd=0.0,
            basis="teacher.backend=reference: each question's own solution, no model is asked",
            note=f"{size} questions x 1 reference solution",
        )  # fmt: skip
    sampling = sampling_from(teacher, params.seed)
    model_id: str | None
    if teacher.backend == "openai":
        model, backend, model_id = teacher.model, "openai", f"openai:{teacher.model}"
        price, once = _served_price(params, teacher.model), params.role_api("teacher").native_n
    else:
        local = inputs.model_ids.get("base") if teacher.model == "base" else inputs.model_ids.get(teacher.model)
        model, backend, model_id, price, once = teacher.model, "local", local, Price(), True
    size = params.sample.size
    if inputs.sample is not None:
        questions, known, note = inputs.sample, True, "the sample in data/sample"
    else:
        pool = inputs.pool.all_texts() or [""]
        questions = [pool[i % len(pool)] for i in range(size)]  # prompt lengths like the pool's
        known, note = False, "sample not drawn yet: prompts as long as the pool's"
        if inputs.pool.count < size:
            note += f"; the pool holds {inputs.pool.count} < sample.size, so at most that many are drawn"
    conversations = [prompts.render("teacher", q) for q in questions]
    asks = _asks(conversations, teacher.attempts, model_id if known else None, sampling)
    return _estimate(
        "generate_solutions", "teacher", model, backend, model_id, asks, sampling, price, inputs, once,
        f"{len(questions)} questions x {teacher.attempts} attempts; {note}", known_keys=known,
    )  # fmt: skip


def _evaluate_estimate(params: Params, prompts: PromptSet, inputs: Inputs, which: str) -> StageEstimate:
    evaluate = params.evaluate
    model_id: str | None
    if evaluate.backend == "openai":
        name = evaluate.served_models.get(which, "")  # type: ignore[call-overload]
        model, backend, model_id = name, "openai", f"openai:{name}"
        price, once = _served_price(params, name), params.role_api("evaluate").native_n
    else:
        model, backend, model_id, price, once = f"models/{which}", "local", inputs.model_ids.get(which), Price(), True
    specs: dict[str, BenchmarkParams] = {b.name: b for b in in_domain(params.benchmarks, params.domain)}
    rows: list[StageEstimate] = []
    for bench, texts in sorted(inputs.benchmarks.texts.items()):
        sampling, n = decoding_for(specs.get(bench), evaluate, params.seed)
        asks = _asks([prompts.render("student", q) for q in texts], n, model_id, sampling)
        rows.append(_estimate(bench, "evaluate", model, backend, model_id, asks, sampling, price, inputs, once))
    for bench, count in sorted(inputs.benchmarks.unknown_counts.items()):
        sampling, n = decoding_for(specs.get(bench), evaluate, params.seed)
        asks = [(prompts.render("student", ""), n, [])] * count
        rows.append(_estimate(bench, "evaluate", model, backend, model_id, asks, sampling, price, inputs, once))
    known = model_id is not None and not inputs.benchmarks.unknown_counts
    per = ", ".join(f"{r.stage} {r.answers}" for r in rows)
    return StageEstimate(
        stage=f"evaluate@{which}",
        role="evaluate",
        model=model,
        backend=backend,
        answers=sum(r.answers for r in rows),
        cached=sum(r.cached or 0 for r in rows) if known else None,
        requests_to_send=sum(r.requests_to_send for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        usd=sum(r.usd for r in rows),
        basis="; ".join(sorted({r.basis for r in rows})),
        note=f"answers per benchmark: {per}",
    )


# -- inputs ------------------------------------------------------------------------------------------------


def questions_from_table(frame: pl.DataFrame, source: str, by: str | None) -> Questions:
    """Question texts from a pool or benchmark table, grouped by ``by`` (a column) or as one set."""
    if by is None:
        return Questions({"pool": frame["question"].to_list()}, source)
    texts: dict[str, list[str]] = {}
    for name, question in zip(frame[by].to_list(), frame["question"].to_list(), strict=True):
        texts.setdefault(str(name), []).append(question)
    return Questions(texts, source)


def questions_from_sources(
    specs: Sequence[SourceParams], seed: int, split: str, root: Path, *, by_name: bool
) -> Questions:
    """Question texts read from params' sources as prepare_pool reads them (before deduplication and
    decontamination, so at most what it keeps); a hub source is not fetched: its ``limit`` is counted."""
    from adacot.sources import load_source

    texts: dict[str, list[str]] = {}
    unknown: dict[str, int] = {}
    for spec in specs:
        key = spec.name if by_name else "pool"
        if spec.kind == "hub":
            unknown[spec.name] = spec.limit or 0
            continue
        local = spec.model_copy(update={"path": str(root / spec.path)}) if spec.path else spec
        texts.setdefault(key, []).extend(load_source(local, seed, split).questions["question"].to_list())
    return Questions(texts, "params (sources read before dedup and decontamination)", unknown)


# -- output ------------------------------------------------------------------------------------------------


def as_json_doc(rows: Sequence[StageEstimate], header: dict[str, Any]) -> dict[str, Any]:
    """The estimate as one JSON document: the header, every stage, and the totals."""
    return {
        **header,
        "stages": [asdict(r) for r in rows],
        "total": {
            "answers": sum(r.answers for r in rows),
            "requests_to_send": sum(r.requests_to_send for r in rows),
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "usd": round(sum(r.usd for r in rows), 4),
        },
    }


def format_table(rows: Sequence[StageEstimate], header: dict[str, Any]) -> str:
    """The estimate as the table ``adacot estimate`` prints, with a notes section saying each row's basis."""
    head: tuple[str, ...] = (
        "stage",
        "role",
        "model",
        "backend",
        "answers",
        "cached",
        "to send",
        "prompt tok",
        "completion tok",
        "USD",
    )
    body: list[tuple[str, ...]] = [
        (
            r.stage,
            r.role,
            r.model,
            r.backend,
            f"{r.answers:,}",
            "?" if r.cached is None else f"{r.cached:,}",
            f"{r.requests_to_send:,}",
            f"{r.prompt_tokens:,}",
            f"{r.completion_tokens:,}",
            f"{r.usd:,.2f}",
        )
        for r in rows
    ]
    total = as_json_doc(rows, {})["total"]
    body.append(
        (
            "total",
            "",
            "",
            "",
            f"{total['answers']:,}",
            "",
            f"{total['requests_to_send']:,}",
            f"{total['prompt_tokens']:,}",
            f"{total['completion_tokens']:,}",
            f"{total['usd']:,.2f}",
        )
    )
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    left = 4  # text columns left-aligned, numbers right-aligned

    def fmt(line: Sequence[str]) -> str:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        return "  ".join(cells).rstrip()

    lines = [f"{k}: {v}" for k, v in header.items()]
    lines += ["", fmt(head), fmt(["-" * w for w in widths]), *(fmt(line) for line in body), "", "notes:"]
    lines += [f"  {r.stage}: {r.basis}" + (f"; {r.note}" if r.note else "") for r in rows]
    lines.append("  cached '?': the model's cache identity or the questions are not known before earlier stages run")
    lines.append("  USD at `prices` for roles on backend openai (local engines cost 0; unlisted served models 0)")
    return "\n".join(lines)


# -- what the `adacot estimate` command reads ----------------------------------------------------------------


def params_with_overrides(path: Path, overrides: Sequence[str]) -> Params:
    """``path`` with ``-S key=value`` overrides applied by DVC's own code (what ``dvc exp run -S`` does), on
    a temporary copy: params.yaml itself is never changed."""
    import shutil
    import tempfile

    from adacot.config import load_params

    if not overrides:
        return load_params(path)
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory(prefix="adacot-estimate-") as tmp:
        copy = Path(tmp) / "params.yaml"
        shutil.copy(path, copy)
        apply_overrides(copy, list(overrides))
        return load_params(copy)


def _model_id(folder: Path) -> str | None:
    from adacot.models import FINGERPRINT_FILE, read_model_info

    return read_model_info(folder).model_id if (folder / FINGERPRINT_FILE).is_file() else None


def load_inputs(
    params: Params,
    root: Path,
    *,
    pool_dir: Path,
    sample_file: Path,
    models_dir: Path,
    cache_dir: Path,
    use_outputs: bool = True,
) -> Inputs:
    """Questions, sample and model identities for ``estimate_pipeline``: prepare_pool's tables in
    ``pool_dir`` when there (and ``use_outputs``), else the sources in params; the sample when it has
    ``sample.size`` questions; local models' fingerprints (never their weights)."""
    from adacot.schemas import BENCHMARK, QUESTIONS, SAMPLE, read_table

    pool_table, bench_table = pool_dir / "questions.parquet", pool_dir / "benchmarks.parquet"
    if use_outputs and pool_table.is_file() and bench_table.is_file():
        pool = questions_from_table(read_table(pool_table, QUESTIONS), str(pool_table), None)
        bench = questions_from_table(read_table(bench_table, BENCHMARK), str(bench_table), "benchmark")
    else:
        pool = questions_from_sources(
            in_domain(params.pool.sources, params.domain), params.seed, "pool", root, by_name=False
        )
        benchmarks: list[SourceParams] = list(params.benchmarks)
        bench = questions_from_sources(in_domain(benchmarks, params.domain), params.seed, "test", root, by_name=True)
    sample = None
    if use_outputs and sample_file.is_file():
        drawn = read_table(sample_file, SAMPLE)["question"].to_list()
        sample = drawn if len(drawn) == params.sample.size else None
    ids: dict[str, str | None] = {which: _model_id(models_dir / which) for which in ("base", "student")}
    for folder in {params.teacher.model, params.prm.model} - {"base"}:
        ids[folder] = _model_id(root / folder)
    cache_file = cache_dir / "responses.sqlite"
    return Inputs(pool, bench, sample, ids, cache_file if cache_file.is_file() else None)


def estimate_command(
    params_path: Path,
    overrides: Sequence[str],
    cache_dir: Path,
    pool_dir: Path,
    sample_file: Path,
    models_dir: Path,
    *,
    as_json: bool = False,
) -> tuple[int, str]:
    """What ``adacot estimate`` prints, and its exit status (2 for params that do not validate).

    Relative paths are taken from the folder of ``params_path`` (the project root). Overrides of what
    prepare_pool reads (``pool``, ``benchmarks``, ``domain``, ``seed``) make its last outputs stale, so the
    sources in params are read instead.
    """
    import json

    from adacot.config import ParamsError
    from adacot.stageio import load_prompts

    try:
        params = params_with_overrides(params_path, overrides)
    except ParamsError as error:
        return 2, f"error: {error}"
    root = params_path.resolve().parent
    stale = any(
        o.split("=", 1)[0].lstrip("+~").split(".")[0] in ("pool", "benchmarks", "domain", "seed") for o in overrides
    )
    inputs = load_inputs(
        params,
        root,
        pool_dir=root / pool_dir,
        sample_file=root / sample_file,
        models_dir=root / models_dir,
        cache_dir=root / cache_dir,
        use_outputs=not stale,
    )
    rows = estimate_pipeline(params, load_prompts(root / f"prompts/{params.domain}.yaml", params.domain), inputs)
    header = {
        "params": f"{params_path}" + "".join(f" -S {o}" for o in overrides),
        "questions": f"pool {inputs.pool.count}, benchmarks {inputs.benchmarks.count} (from {inputs.pool.source})",
        "cache": str(inputs.cache_file or f"{cache_dir} (none yet)"),
    }
    return 0, json.dumps(as_json_doc(rows, header), indent=2) if as_json else format_table(rows, header)
