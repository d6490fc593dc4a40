"""Question pools and benchmark sets: generating graded arithmetic, drawing limits, decontaminating.

Pure functions on frames. ``generate_synthetic`` makes seeded arithmetic and word problems at five
generator tiers (1-digit sums up to multi-step word problems) so that even the 135M bundled student has
questions at every difficulty level, each with a worked solution written from the values drawn.
``build_pool_and_benchmarks`` joins the loaded sources, rejects golds the verifier cannot grade, and drops
pool questions that repeat or leak from a benchmark (exact text or a shared word n-gram), each as a reject
with its reason. An empty pool or benchmark fails the stage
(``StageFailure``): every later stage would work on nothing. This module does not read files
(``sources``) and does not grade questions (``grading``).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from adacot.errors import StageFailure
from adacot.schemas import BENCHMARK, QUESTIONS, REJECTS, conform, empty
from adacot.verify import check_golds

TIERS = (1, 2, 3, 4, 5)
_NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena")
_ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "shells", "cards", "coins")


def _answer_line(answer: int) -> str:
    return f"The answer is \\boxed{{{answer}}}."


# Each tier returns (question, answer, worked solution). The solution is written from the values already
# drawn and draws nothing itself: the questions, answers and ids (and so the response cache keys of every
# committed run) stay exactly what they were before the generator wrote solutions.


def _tier1(rng: random.Random) -> tuple[str, int, str]:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    return f"What is {a} + {b}?", a + b, f"{a} + {b} = {a + b}.\n{_answer_line(a + b)}"


def _tier2(rng: random.Random) -> tuple[str, int, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        return (
            f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
            a + b,
            f"{name} starts with {a} {item} and gets {b} more, so {name} has {a} + {b} = {a + b} {item}.\n"
            f"{_answer_line(a + b)}",
        )
    a = a + b
    return (
        f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?",
        a - b,
        f"{name} starts with {a} {item} and gives away {b}, so {name} has {a} - {b} = {a - b} {item} left.\n"
        f"{_answer_line(a - b)}",
    )


def _tier3(rng: random.Random) -> tuple[str, int, str]:
    while True:
        a, b = rng.randint(11, 89), rng.randint(11, 89)
        if a % 10 + b % 10 >= 10:  # force a carry: the 135M student almost never gets these right
            ones, tens = a % 10 + b % 10, a // 10 + b // 10 + 1
            return (
                f"What is {a} + {b}?",
                a + b,
                f"Add the ones: {a % 10} + {b % 10} = {ones}; write {ones % 10} and carry 1.\n"
                f"Add the tens: {a // 10} + {b // 10} + 1 = {tens}.\n"
                f"So {a} + {b} = {a + b}.\n{_answer_line(a + b)}",
            )


def _tier4(rng: random.Random) -> tuple[str, int, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    boxes, per, extra = rng.randint(3, 9), rng.randint(4, 12), rng.randint(2, 19)
    boxed = boxes * per
    return (
        f"{name} has {boxes} boxes with {per} {item} in each box and finds {extra} more {item}. "
        f"How many {item} does {name} have in total?",
        boxed + extra,
        f"The boxes hold {boxes} x {per} = {boxed} {item}.\n"
        f"With the {extra} found, {name} has {boxed} + {extra} = {boxed + extra} {item}.\n"
        f"{_answer_line(boxed + extra)}",
    )


def _tier5(rng: random.Random) -> tuple[str, int, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    boxes, per = rng.randint(12, 48), rng.randint(6, 24)
    sold = rng.randint(10, boxes * per // 2)
    friends = rng.randint(2, 6)
    left = boxes * per - sold
    left -= left % friends
    total = left + sold  # rounded so that the rest splits evenly among the friends
    return (
        f"A shop has {total} {item}. It sells {sold} of them, then {name} shares the rest equally among "
        f"{friends} friends. How many {item} does each friend get?",
        left // friends,
        f"After selling {sold}, the shop has {total} - {sold} = {left} {item} left.\n"
        f"Shared equally among {friends} friends, each gets {left} / {friends} = {left // friends} {item}.\n"
        f"{_answer_line(left // friends)}",
    )


_GENERATORS = {1: _tier1, 2: _tier2, 3: _tier3, 4: _tier4, 5: _tier5}


def generate_synthetic(
    per_tier: int, seed: int, split: str, name: str = "synthetic", tiers: Sequence[int] = TIERS
) -> pl.DataFrame:
    """``per_tier`` distinct generated questions at each of ``tiers``, deterministic in (seed, split, tiers);
    ``name`` is their source name and id prefix. Each carries a step-by-step ``solution`` ending in the boxed
    answer (the reference teacher's answer, ``teacher.backend: reference``)."""
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown:
        raise ValueError(f"generator tiers are {list(TIERS)}; unknown: {unknown}")
    rng = random.Random(f"{seed}-{split}")
    rows: list[dict[str, Any]] = []
    for tier in sorted(set(tiers)):
        seen: set[str] = set()
        tries = 0
        while len([r for r in rows if r["generator_tier"] == tier]) < per_tier:
            tries += 1
            if tries > per_tier * 200:
                raise ValueError(f"tier {tier} cannot produce {per_tier} distinct questions; lower the count")
            question, answer, solution = _GENERATORS[tier](rng)
            if question in seen:
                continue
            seen.add(question)
            rows.append(
                {
                    "question_id": f"{name}-{split}-t{tier}-{len(seen) - 1:05d}",
                    "source": name,
                    "question": question,
                    "gold": str(answer),
                    "generator_tier": tier,
                    "solution": solution,
                }
            )
    return conform(pl.DataFrame(rows, schema=QUESTIONS) if rows else empty(QUESTIONS), QUESTIONS, "synthetic")


def normalize_text(text: str) -> str:
    """Lower-case, punctuation-free, single-spaced text: the key for dedup and decontamination."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def seeded_subset(frame: pl.DataFrame, limit: int | None, seed: int) -> pl.DataFrame:
    """At most ``limit`` rows drawn without replacement with ``seed`` (all rows when ``limit`` is None)."""
    if limit is None or limit >= frame.height:
        return frame
    return frame.sample(n=limit, seed=seed, shuffle=False).sort("question_id")


def _grams(words: list[str], ngram: int) -> set[tuple[str, ...]]:
    return set(zip(*(words[i:] for i in range(ngram)), strict=False))


def decontaminate(
    pool: pl.DataFrame,
    benchmarks: pl.DataFrame,
    ngram: int,
    min_overlap: float = 0.5,
    exact_only: Collection[str] = (),
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, dict[str, int]]]:
    """Drop pool questions that repeat within the pool or leak from a benchmark; (kept, rejects, counts).

    A pool question leaks when its normalised text equals a benchmark question's, or when the runs of
    ``ngram`` consecutive normalised words it shares with one benchmark question make up at least
    ``min_overlap`` of that question's n-grams (0: any shared n-gram). A copied question with words added
    around it shares all of them; a shared boilerplate phrase ("express your answer as a common fraction")
    is one or two of dozens. Each dropped question is a reject naming the benchmark, its question id, the
    share and one shared n-gram. Sources and benchmarks named in ``exact_only`` (the generator's: its
    templates share word runs by design) are matched by exact text only. ``counts`` is dropped questions
    per pool source and benchmark. One index of the benchmarks' n-grams, then a set probe per pool
    question: 100,000 questions against 1,500 take about 2 s here (``bench/decontam_scale.py``).
    """
    exact_only = set(exact_only)
    exact: dict[str, int] = {}
    index: dict[tuple[str, ...], list[int]] = {}
    sizes: list[int] = []
    names = benchmarks["benchmark"].to_list()
    ids = benchmarks["question_id"].to_list()
    for row, (name, question) in enumerate(zip(names, benchmarks["question"], strict=True)):
        key = normalize_text(question)
        exact.setdefault(key, row)
        grams = _grams(key.split(), ngram) if name not in exact_only else set()
        sizes.append(len(grams))
        for gram in grams:
            index.setdefault(gram, []).append(row)
    first_seen: dict[str, str] = {}
    keep: list[bool] = []
    reasons: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for qid, source, question in pool.select("question_id", "source", "question").iter_rows():
        key = normalize_text(question)
        hit = exact.get(key)
        reason = ""
        if hit is not None:
            reason = f"contaminated: same text as {names[hit]} question {ids[hit]}"
        elif source not in exact_only and index:
            grams = _grams(key.split(), ngram)
            if not index.keys().isdisjoint(grams):
                shared: Counter[int] = Counter(row for gram in grams for row in index.get(gram, ()))
                row, count = max(shared.items(), key=lambda item: (item[1] / sizes[item[0]], -item[0]))
                if count / sizes[row] >= min_overlap:
                    hit = row
                    gram = next(g for g in sorted(grams) if row in index.get(g, ()))
                    reason = (
                        f"contaminated: shares {count} of {sizes[row]} {ngram}-grams with {names[row]} question "
                        f"{ids[row]}, e.g. '{' '.join(gram)}'"
                    )
        if hit is not None:
            by_bench = counts.setdefault(source, {})
            by_bench[names[hit]] = by_bench.get(names[hit], 0) + 1
        elif key in first_seen:
            reason = f"duplicate of {first_seen[key]}"
        else:
            first_seen[key] = qid
        keep.append(not reason)
        reasons.append(reason)
    flags = pl.Series("keep", keep, dtype=pl.Boolean)
    dropped = pool.filter(~flags).with_columns(pl.Series("reason", [r for r in reasons if r], dtype=pl.String))
    rejects = dropped.select("question_id", "source", "question", pl.col("gold").alias("gold_raw"), "reason")
    return pool.filter(flags), conform(rejects, REJECTS, "rejects"), counts


def reject_ungradable_golds(
    frame: pl.DataFrame, *, timeout_s: float, workers: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` (pool or benchmark rows) into (gradable, rejects) by ``check_golds``.

    A gold math-verify cannot parse would make every attempt at its question ``unparseable_gold``: the
    question could never be graded, so it is rejected here, once, with the verifier's reason.
    """
    if frame.height == 0:
        return frame, empty(REJECTS)
    problems = check_golds(frame["gold"].to_list(), timeout_s=timeout_s, workers=workers)
    flags = pl.Series([p is None for p in problems], dtype=pl.Boolean)
    reasons = [f"gold not gradable: {p.status}: {p.reason}" for p in problems if p is not None]
    dropped = frame.filter(~flags)
    rejects = dropped.select(
        "question_id",
        "source",
        "question",
        pl.col("gold").alias("gold_raw"),
        pl.Series("reason", reasons, dtype=pl.String),
    )
    return frame.filter(flags), conform(rejects, REJECTS, "rejects")


def reject_failing_references(frame: pl.DataFrame, limits: Any, workers: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split code questions into (kept, rejects): a question whose own reference ``solution`` fails its tests
    in the sandbox has broken tests (or a broken reference) and could never be graded fairly.

    Questions without a reference solution are kept unchecked (their tests were read at load time).
    """
    has_reference = frame.filter(pl.col("solution").is_not_null())
    if has_reference.height == 0:
        return frame, empty(REJECTS)
    from adacot.codetests import CodeTests
    from adacot.verify.code import run_programs

    tests = [CodeTests.from_json(g) for g in has_reference["gold"].to_list()]
    programs = [(s, t.cases) for s, t in zip(has_reference["solution"].to_list(), tests, strict=True)]
    setups = [t.setup for t in tests]
    verdicts = run_programs(programs, limits, workers, progress=has_reference.height > 50, setups=setups)
    # A reference that timed out may only have met a loaded machine: it gets one more run, alone.
    again = [i for i, v in enumerate(verdicts) if v.status == "timeout"]
    if again:
        retried = run_programs([programs[i] for i in again], limits, 1, setups=[setups[i] for i in again])
        for i, verdict in zip(again, retried, strict=True):
            verdicts[i] = verdict
    failing = {
        qid: f"reference solution fails its own tests: {v.status}: {v.reason}"
        for qid, v in zip(has_reference["question_id"].to_list(), verdicts, strict=True)
        if not v.is_correct
    }
    dropped = frame.filter(pl.col("question_id").is_in(list(failing)))
    rejects = dropped.select(
        "question_id",
        "source",
        "question",
        pl.col("gold").alias("gold_raw"),
        pl.col("question_id").replace_strict(failing, return_dtype=pl.String).alias("reason"),
    )
    return frame.filter(~pl.col("question_id").is_in(list(failing))), conform(rejects, REJECTS, "rejects")


@dataclass(frozen=True)
class LoadedSource:
    """One source's questions (limit drawn), its rejects, the rows it held, and whether it was generated."""

    name: str
    questions: pl.DataFrame
    rejects: pl.DataFrame
    rows_in: int
    generated: bool


def build_pool_and_benchmarks(
    pool_sources: Sequence[LoadedSource],
    bench_sources: Sequence[LoadedSource],
    *,
    ngram: int,
    min_overlap: float = 0.5,
    verify_timeout_s: float = 5.0,
    verify_workers: int = 2,
    domain: str = "math",
    sandbox: Any = None,
    sandbox_workers: int = 2,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """(pool questions, benchmark questions, rejects, metrics) from loaded sources.

    Benchmarks keep their rows (math: a gold math-verify cannot grade is a reject; code: a question whose
    reference solution fails its own tests in the ``sandbox`` limits is); the pool is decontaminated
    against them (``decontaminate``) and its golds checked the same way. A benchmark left with no
    question, or an empty pool, is a ``StageFailure`` naming the rejects by reason.
    """

    def check(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        if domain == "code":
            return reject_failing_references(frame, sandbox, sandbox_workers)
        return reject_ungradable_golds(frame, timeout_s=verify_timeout_s, workers=verify_workers)

    bench_parts = [s.questions.with_columns(benchmark=pl.lit(s.name)) for s in bench_sources]
    bench = conform(pl.concat(bench_parts, how="diagonal_relaxed"), BENCHMARK, "benchmarks")
    bench, bench_gold_rejects = check(bench)
    candidates = conform(pl.concat([s.questions for s in pool_sources]), QUESTIONS, "pool")
    exact_only = {s.name for s in (*pool_sources, *bench_sources) if s.generated}
    pool, contamination, leaks = decontaminate(candidates, bench, ngram, min_overlap, exact_only)
    pool, pool_gold_rejects = check(pool)
    rejects = pl.concat(
        [*(s.rejects for s in (*pool_sources, *bench_sources)), bench_gold_rejects, contamination, pool_gold_rejects]
    )
    reject_reasons = _reason_counts(rejects)
    bench_counts = dict(bench.group_by("benchmark").len().sort("benchmark").iter_rows())
    metrics = {
        "rows_in": {s.name: s.rows_in for s in (*pool_sources, *bench_sources)},
        "pool_questions": pool.height,
        "pool_by_source": dict(pool.group_by("source").len().sort("source").iter_rows()),
        "benchmark_questions": bench_counts,
        "rejects": rejects.height,
        "rejects_by_reason": reject_reasons,
        "rejects_by_source": _source_counts(rejects),
        "contamination": {
            s.name: {b.name: leaks.get(s.name, {}).get(b.name, 0) for b in bench_sources} for s in pool_sources
        },
    }
    reasons = ", ".join(f"{k} {v}" for k, v in reject_reasons.items()) or "none"
    empty_benchmarks = [s.name for s in bench_sources if bench_counts.get(s.name, 0) == 0]
    if empty_benchmarks:
        raise StageFailure(
            f"prepare_pool: benchmark(s) {', '.join(empty_benchmarks)} have no gradable question "
            f"(rejects by reason: {reasons}); check their path, fields, gold and limit"
        )
    if pool.height == 0:
        raise StageFailure(
            f"prepare_pool: the pool is empty (rejects by reason: {reasons}); check pool.sources (limits, fields, gold)"
        )
    return pool, bench, rejects, metrics


def _reason_counts(rejects: pl.DataFrame) -> dict[str, int]:
    # Reasons like "duplicate of X" are summarized by their kind so metrics keys stay stable.
    kinds = rejects["reason"].str.replace(r"(: .*| (of|as|in column) .*)$", "").to_list()
    return dict(sorted(Counter(kinds).items()))


def _source_counts(rejects: pl.DataFrame) -> dict[str, int]:
    return dict(sorted(Counter(rejects["source"].to_list()).items()))
