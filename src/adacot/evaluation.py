"""Evaluation: the protocol that scores one model on the benchmark sets.

Per benchmark, over n samples per question (a benchmark's own ``samples`` and decoding, else the
``evaluate`` section's): pass@1 (the mean over questions of the fraction of samples verified correct,
with its standard error), unbiased pass@k (``1 - C(n-c, k) / C(n, k)`` per question, Chen et al. 2021),
cons@k (majority vote over the extracted answers of the first k samples, equivalent spellings grouped by
the verifier), the truncation rate (samples cut at ``max_tokens``) and the mean response tokens. This
module does not compare models (``dvc metrics diff`` does) and does not load them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import polars as pl

from adacot.config import BenchmarkParams, EvaluateParams, VerifyParams
from adacot.errors import StageFailure
from adacot.llm import ChatModel, Price, ResponseCache, Sampling
from adacot.llm.spend import spend_block
from adacot.prompts import PromptSet
from adacot.responses import collect_responses
from adacot.schemas import BENCHMARK, EVAL_RESPONSES, conform
from adacot.stats import mean_and_stderr
from adacot.verify import verify_many
from adacot.verify.frames import mean_tests_passed_share, status_counts, verdict_columns

pass_at_1 = mean_and_stderr


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question with ``c`` correct of ``n`` samples: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def answer_groups(answers: Sequence[str], verify: VerifyParams) -> list[int]:
    """A group label per answer: answers the verifier calls equal (either way round) share a label.

    Exact repeats are grouped without the verifier; distinct spellings are compared pairwise (one batch),
    then joined transitively. A label is the position, among the distinct answers in order of first
    appearance, of its group's first answer: a smaller label means a group answered earlier.
    """
    distinct = list(dict.fromkeys(answers))
    parent = list(range(len(distinct)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = [(i, j) for i in range(len(distinct)) for j in range(i + 1, len(distinct))]
    if pairs:
        verdicts = verify_many(
            [(distinct[i], f"\\boxed{{{distinct[j]}}}", "stop") for i, j in pairs]
            + [(distinct[j], f"\\boxed{{{distinct[i]}}}", "stop") for i, j in pairs],
            last_number_fallback=False,
            timeout_s=verify.timeout_s,
            workers=1,
        )
        for (i, j), ab, ba in zip(pairs, verdicts[: len(pairs)], verdicts[len(pairs) :], strict=True):
            if ab.status == "correct" or ba.status == "correct":
                parent[root(j)] = root(i)
    first: dict[int, int] = {}
    for i in range(len(distinct)):
        first.setdefault(root(i), i)
    label = {a: first[root(i)] for i, a in enumerate(distinct)}
    return [label[a] for a in answers]


# Statuses whose `extracted` is an answer the model gave (and so may vote in cons@k).
_VOTING = ("correct", "wrong")


def consensus_correct(statuses: Sequence[str], extracted: Sequence[str | None], verify: VerifyParams) -> bool:
    """Whether the majority answer of these samples is right: votes are the extracted answers of samples
    that gave one, grouped by ``answer_groups``; a tie goes to the group answered first; no vote is wrong."""
    votes = [(s, e) for s, e in zip(statuses, extracted, strict=True) if s in _VOTING and e]
    if not votes:
        return False
    labels = answer_groups([e for _, e in votes], verify)
    sizes = Counter(labels)
    winner = max(sizes, key=lambda label: (sizes[label], -label))
    return votes[labels.index(winner)][0] == "correct"


def benchmark_metrics(
    table: pl.DataFrame, n: int, ks: Sequence[int], verify: VerifyParams, domain: str = "math"
) -> dict[str, Any]:
    """The protocol's figures for one benchmark's scored responses (n samples per question).

    Code has no cons@k (programs are not votes: two different programs can both be right) but reports
    the mean share of tests passed."""
    per_question = table.sort("question_id", "sample_index").group_by("question_id", maintain_order=True)
    pass1: list[float] = []
    passk: dict[int, list[float]] = {k: [] for k in ks if k <= n}
    consk: dict[int, list[float]] = {k: [] for k in ks if k <= n}
    for _, rows in per_question:
        statuses = rows["status"].to_list()
        extracted = rows["extracted"].to_list()
        correct = statuses.count("correct")
        pass1.append(correct / len(statuses))
        for k in passk:
            passk[k].append(pass_at_k(len(statuses), correct, k))
            if domain != "code":
                consk[k].append(float(consensus_correct(statuses[:k], extracted[:k], verify)))
    mean, stderr = mean_and_stderr(pass1)
    out: dict[str, Any] = {
        "pass@1": mean,
        "stderr": stderr,
        "questions": len(pass1),
        "samples": n,
        "truncation_rate": float((table["finish_reason"] == "length").cast(pl.Float64).mean() or 0.0),  # type: ignore[arg-type]
        "mean_response_tokens": float(table["completion_tokens"].cast(pl.Float64).mean() or 0.0),  # type: ignore[arg-type]
        "by_status": status_counts(table["status"]),
    }
    for k in passk:
        out[f"pass@{k}"] = mean_and_stderr(passk[k])[0]
        if domain != "code":
            out[f"cons@{k}"] = mean_and_stderr(consk[k])[0]
    if domain == "code":
        out["mean_tests_passed_share"] = mean_tests_passed_share(table)
    return out


def decoding_for(bench: BenchmarkParams | None, evaluate: EvaluateParams, seed: int) -> tuple[Sampling, int]:
    """(sampling, n) of one benchmark: its own values where set, else the ``evaluate`` section's."""

    def pick(name: str) -> Any:
        own = getattr(bench, name, None) if bench is not None else None
        return getattr(evaluate, name) if own is None else own

    sampling = Sampling(max_tokens=pick("max_tokens"), temperature=pick("temperature"), top_p=pick("top_p"), seed=seed)
    return sampling, pick("samples")


def evaluate_model(
    benchmarks: pl.DataFrame,
    model: ChatModel,
    prompts: PromptSet,
    evaluate: EvaluateParams,
    specs: Sequence[BenchmarkParams],
    seed: int,
    verify: VerifyParams,
    cache: ResponseCache | None,
    batch_requests: int = 256,
    price: Price | None = None,
    domain: str = "math",
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every response with its verdict, and the protocol's figures per benchmark (``benchmark_metrics``);
    code responses are run against their tests in the sandbox.

    No benchmark questions is a ``StageFailure``: a pass@1 of nothing would read as a score of 0.
    """
    benchmarks = conform(benchmarks, BENCHMARK, "benchmarks")
    if benchmarks.height == 0:
        raise StageFailure("evaluate: there are no benchmark questions; prepare_pool's `benchmarks` list sets them")
    by_name = {spec.name: spec for spec in specs}
    tables: list[pl.DataFrame] = []
    per_benchmark: dict[str, Any] = {}
    ledgers: dict[str, Any] = {}
    for name in sorted(set(benchmarks["benchmark"].to_list())):
        questions = benchmarks.filter(pl.col("benchmark") == name)
        sampling, n = decoding_for(by_name.get(name), evaluate, seed)
        frame, ledgers[name] = collect_responses(
            questions, model, prompts, "student", sampling, n, cache, batch_requests, f"evaluate {name}", price
        )
        frame = frame.join(questions.select("question_id", "benchmark", "gold"), on="question_id", how="left")
        verdicts = verdict_columns(
            frame["gold"].to_list(),
            frame["text"].to_list(),
            frame["finish_reason"].to_list(),
            verify,
            frame["error"].to_list(),
            domain=domain,
            count_all_tests=True,  # every test of a failing program runs: mean_tests_passed_share is its share
        )
        table = conform(
            pl.concat([frame.rename({"text": "response"}), verdicts], how="horizontal"), EVAL_RESPONSES, "responses"
        )
        per_benchmark[name] = {
            **benchmark_metrics(table, n, evaluate.k, verify, domain),
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
        }
        tables.append(table)
    table = pl.concat(tables)
    metrics = {
        "model_id": model.model_id,
        "benchmarks": per_benchmark,
        "completion_tokens": int(table["completion_tokens"].sum()),
        "cache": _merge_ledgers(list(ledgers.values())),
        **spend_block(model),  # served models: projected vs actual spend over every benchmark
    }
    return table, metrics


def _merge_ledgers(ledgers: list[dict[str, Any]]) -> dict[str, Any]:
    """The benchmarks' cache ledgers as one: counts, tokens and dollars added up; the price and the
    client's counters (which the model keeps over its whole life) as the last call left them."""
    total = dict(ledgers[-1])
    for key, value in ledgers[-1].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = sum(ledger[key] for ledger in ledgers)
    return total
