"""Tests for adacot.sampling: exact integer quotas, shortage policies and seeded, reproducible draws."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import textwrap

import polars as pl
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from adacot.errors import StageFailure
from adacot.sampling import ShortageError, allocate_quotas, largest_remainder, sample_questions
from adacot.schemas import DATABASE, conform
from adacot.vocabulary import LEVELS

PAPER_SHARES = {"easy": 0.3, "medium": 0.25, "hard": 0.2, "very_hard": 0.15, "extreme": 0.1}
EQUAL = {lv: 1.0 for lv in LEVELS}


def _quota(easy: int, medium: int, hard: int, very_hard: int, extreme: int) -> dict[str, int]:
    return dict(zip(LEVELS, (easy, medium, hard, very_hard, extreme), strict=True))


# (id, n, shares, expected quotas)
LARGEST_REMAINDER_CASES = [
    # 9.6, 8, 6.4, 4.8, 3.2: floors give 30; the two largest remainders (.8, .6) get the last two.
    ("params_shares_32", 32, PAPER_SHARES, _quota(10, 8, 6, 5, 3)),
    ("params_shares_100", 100, PAPER_SHARES, _quota(30, 25, 20, 15, 10)),
    ("equal_10", 10, EQUAL, _quota(2, 2, 2, 2, 2)),
    ("equal_3_ties_go_easier_first", 3, EQUAL, _quota(1, 1, 1, 0, 0)),
    ("equal_7", 7, EQUAL, _quota(2, 2, 1, 1, 1)),
    ("two_levels_tie", 7, {"easy": 1, "medium": 0, "hard": 0, "very_hard": 0, "extreme": 1}, _quota(4, 0, 0, 0, 3)),
    ("unnormalized", 3, {"easy": 2, "medium": 1, "hard": 0, "very_hard": 0, "extreme": 0}, _quota(2, 1, 0, 0, 0)),
    ("zero_n", 0, PAPER_SHARES, _quota(0, 0, 0, 0, 0)),
    ("one_level", 5, {"easy": 0, "medium": 0, "hard": 3, "very_hard": 0, "extreme": 0}, _quota(0, 0, 5, 0, 0)),
    # 1/3 each of 2 over three levels: .667 each, one floor-0 level misses out (the hardest: ties go easier).
    ("thirds", 2, {"easy": 1, "medium": 1, "hard": 1, "very_hard": 0, "extreme": 0}, _quota(1, 1, 0, 0, 0)),
]


@pytest.mark.parametrize(
    ("n", "shares", "expected"), [c[1:] for c in LARGEST_REMAINDER_CASES], ids=[c[0] for c in LARGEST_REMAINDER_CASES]
)
def test_largest_remainder_exact(n: int, shares: dict[str, float], expected: dict[str, int]) -> None:
    assert largest_remainder(n, shares) == expected


@pytest.mark.parametrize(
    ("n", "shares", "match"),
    [
        (-1, PAPER_SHARES, "n must be >= 0"),
        (5, {lv: 0.0 for lv in LEVELS}, "positive sum"),
    ],
)
def test_largest_remainder_rejects_bad_input(n: int, shares: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        largest_remainder(n, shares)


weights_st = st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=5, max_size=5).map(
    lambda ws: dict(zip(LEVELS, ws, strict=True))
)
available_st = st.lists(st.integers(min_value=0, max_value=60), min_size=5, max_size=5).map(
    lambda xs: dict(zip(LEVELS, xs, strict=True))
)


@given(n=st.integers(min_value=0, max_value=2000), shares=weights_st)
def test_largest_remainder_sums_to_n_and_rounds_to_neighbours(n: int, shares: dict[str, float]) -> None:
    total = sum(shares.values())
    assume(total > 1e-6)
    quotas = largest_remainder(n, shares)
    assert sum(quotas.values()) == n
    for level, share in shares.items():
        exact = n * share / total
        # Closest integers: each quota is the floor or the ceiling of its exact share.
        assert math.floor(exact) - 1e-9 <= quotas[level] <= math.ceil(exact) + 1e-9
        assert abs(quotas[level] - exact) < 1 + 1e-9
        assert quotas[level] >= 0


@given(
    n=st.integers(min_value=0, max_value=200),
    shares=weights_st,
    available=available_st,
    shortage=st.sampled_from(["nearest", "fewer"]),
)
def test_allocate_never_exceeds_available(
    n: int, shares: dict[str, float], available: dict[str, int], shortage: str
) -> None:
    assume(sum(shares.values()) > 1e-6)
    quotas, ideal = allocate_quotas(n, shares, available, shortage)
    assert ideal == largest_remainder(n, shares)
    for level in LEVELS:
        assert 0 <= quotas[level] <= available[level]


@given(n=st.integers(min_value=0, max_value=200), shares=weights_st, available=available_st)
def test_nearest_gives_min_of_n_and_total_available(
    n: int, shares: dict[str, float], available: dict[str, int]
) -> None:
    assume(sum(shares.values()) > 1e-6)
    quotas, ideal = allocate_quotas(n, shares, available, "nearest")
    assert sum(quotas.values()) == min(n, sum(available.values()))
    # A level that was not short never loses questions to redistribution.
    for level in LEVELS:
        assert quotas[level] >= min(ideal[level], available[level])


@given(n=st.integers(min_value=0, max_value=200), shares=weights_st, available=available_st)
def test_fewer_caps_each_level(n: int, shares: dict[str, float], available: dict[str, int]) -> None:
    assume(sum(shares.values()) > 1e-6)
    quotas, ideal = allocate_quotas(n, shares, available, "fewer")
    assert quotas == {lv: min(ideal[lv], available[lv]) for lv in LEVELS}


@given(n=st.integers(min_value=0, max_value=200), shares=weights_st, available=available_st)
def test_fail_raises_exactly_when_short(n: int, shares: dict[str, float], available: dict[str, int]) -> None:
    assume(sum(shares.values()) > 1e-6)
    ideal = largest_remainder(n, shares)
    short = [lv for lv in LEVELS if ideal[lv] > available[lv]]
    if short:
        with pytest.raises(ShortageError, match=short[0]):
            allocate_quotas(n, shares, available, "fail")
    else:
        quotas, _ = allocate_quotas(n, shares, available, "fail")
        assert quotas == ideal


def test_fail_message_says_how_to_fix() -> None:
    with pytest.raises(ShortageError) as info:
        allocate_quotas(10, PAPER_SHARES, _quota(10, 10, 10, 10, 0), "fail")
    assert "extreme: want 1, have 0" in str(info.value)
    assert "sample.shortage" in str(info.value)


# (id, n, shares, available, expected quotas under "nearest")
NEAREST_CASES = [
    # hard wants 10, has 4: both neighbours are 1 away, the easier (medium) is asked first and has room.
    ("hard_to_medium_first", 10, {"hard": 1}, _quota(0, 10, 4, 10, 0), _quota(0, 6, 4, 0, 0)),
    # medium only has 2 spare, the rest goes to the other neighbour at the same distance.
    ("hard_to_both_neighbours", 10, {"hard": 1}, _quota(0, 2, 4, 10, 0), _quota(0, 2, 4, 4, 0)),
    # extreme's only neighbour at distance 1 is very_hard.
    ("extreme_to_very_hard", 10, {"extreme": 1}, _quota(10, 10, 10, 10, 3), _quota(0, 0, 0, 7, 3)),
    # easy short and medium empty: next nearest is hard, not extreme.
    ("easy_skips_empty_medium", 6, {"easy": 1}, _quota(1, 0, 3, 0, 10), _quota(1, 0, 3, 0, 2)),
    # no shortage: quotas equal the ideal.
    ("no_shortage", 10, PAPER_SHARES, _quota(10, 10, 10, 10, 10), _quota(3, 3, 2, 1, 1)),
]


@pytest.mark.parametrize(
    ("n", "shares", "available", "expected"), [c[1:] for c in NEAREST_CASES], ids=[c[0] for c in NEAREST_CASES]
)
def test_nearest_redistribution(
    n: int, shares: dict[str, float], available: dict[str, int], expected: dict[str, int]
) -> None:
    quotas, _ = allocate_quotas(n, shares, available, "nearest")
    assert quotas == expected


def make_database(counts: dict[str, int]) -> pl.DataFrame:
    """A DATABASE-shaped frame with ``counts[level]`` questions per level (ids interleaved across levels)."""
    rows = []
    for level, count in counts.items():
        for i in range(count):
            rows.append(
                {
                    "question_id": f"q-{i:04d}-{level}",
                    "source": "synthetic",
                    "question": f"{level} question {i}",
                    "gold": str(i),
                    "generator_tier": 1,
                    "solution": None,
                    "attempts": 4,
                    "correct": 0,
                    "pass_rate": 0.0,
                    "prm_score": None,
                    "tests_passed_share": None,
                    "level": level,
                    "grader_version": "test",
                    "completion_tokens": 10,
                }
            )
    return conform(
        pl.DataFrame(
            rows,
            schema_overrides={"prm_score": pl.Float64, "tests_passed_share": pl.Float64, "solution": pl.String},
        ),
        DATABASE,
        "database",
    )


def test_sample_questions_same_seed_same_frame() -> None:
    database = make_database({lv: 30 for lv in LEVELS})
    first, metrics_first = sample_questions(database, PAPER_SHARES, 40, seed=7, shortage="nearest")
    # Row order of the input must not matter either: the database is sorted before drawing.
    second, metrics_second = sample_questions(database.reverse(), PAPER_SHARES, 40, seed=7, shortage="nearest")
    assert first.equals(second)
    assert metrics_first == metrics_second
    assert first.height == 40
    assert first["question_id"].n_unique() == 40


def test_sample_questions_different_seed_different_rows() -> None:
    database = make_database({lv: 30 for lv in LEVELS})
    a, _ = sample_questions(database, PAPER_SHARES, 40, seed=1, shortage="nearest")
    b, _ = sample_questions(database, PAPER_SHARES, 40, seed=2, shortage="nearest")
    assert set(a["question_id"]) != set(b["question_id"])
    # ... but the same number per level: the quotas do not depend on the seed.
    assert dict(a.group_by("level").len().iter_rows()) == dict(b.group_by("level").len().iter_rows())


def test_sample_questions_metrics_requested_vs_effective() -> None:
    database = make_database({"easy": 30, "medium": 30, "hard": 30, "very_hard": 30, "extreme": 1})
    sample, metrics = sample_questions(database, PAPER_SHARES, 30, seed=0, shortage="nearest")
    assert metrics["requested_size"] == 30
    assert metrics["effective_size"] == sample.height == 30
    assert metrics["shortage_policy"] == "nearest"
    assert metrics["available"] == {"easy": 30, "medium": 30, "hard": 30, "very_hard": 30, "extreme": 1}
    assert metrics["requested_quota"] == _quota(9, 8, 6, 4, 3)
    # extreme holds 1 of its 3: the 2 missing go to its nearest level, very_hard.
    assert metrics["effective_quota"] == _quota(9, 8, 6, 6, 1)
    assert metrics["requested_distribution"] == PAPER_SHARES
    assert metrics["effective_distribution"]["very_hard"] == pytest.approx(6 / 30)
    assert sum(metrics["effective_distribution"].values()) == pytest.approx(1.0)
    by_level = dict(sample.group_by("level").len().iter_rows())
    assert by_level == {lv: q for lv, q in metrics["effective_quota"].items() if q}


def test_sample_questions_fewer_and_fail() -> None:
    database = make_database({"easy": 30, "medium": 30, "hard": 30, "very_hard": 30, "extreme": 1})
    sample, metrics = sample_questions(database, PAPER_SHARES, 30, seed=0, shortage="fewer")
    assert sample.height == metrics["effective_size"] == 28
    assert metrics["effective_quota"]["extreme"] == 1
    with pytest.raises(ShortageError):
        sample_questions(database, PAPER_SHARES, 30, seed=0, shortage="fail")


def test_sample_questions_schema_checked() -> None:
    database = make_database({"easy": 3}).drop("level")
    with pytest.raises(ValueError, match="level"):
        sample_questions(database, PAPER_SHARES, 2, seed=0, shortage="nearest")


_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    sys.path.insert(0, {tests!r})
    from test_sampling import PAPER_SHARES, make_database
    from adacot.vocabulary import LEVELS
    from adacot.sampling import sample_questions
    sample, _ = sample_questions(make_database({{lv: 30 for lv in LEVELS}}), PAPER_SHARES, 40, seed=7,
                                 shortage="nearest")
    print(hashlib.sha256(",".join(sample["question_id"]).encode()).hexdigest())
    """
)


def test_sample_questions_reproducible_across_processes() -> None:
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    script = _SCRIPT.format(tests=tests_dir)
    hashes = []
    for hash_seed in ("1", "2"):  # different str-hash randomization per process must not matter
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=120
        )
        hashes.append(done.stdout.strip())
    sample, _ = sample_questions(make_database({lv: 30 for lv in LEVELS}), PAPER_SHARES, 40, seed=7, shortage="nearest")
    here = hashlib.sha256(",".join(sample["question_id"]).encode()).hexdigest()
    assert len(hashes[0]) == 64
    assert hashes[0] == hashes[1] == here


def test_random_strategy_ignores_levels_same_size_and_seed() -> None:
    database = make_database({"easy": 80, "medium": 5, "hard": 5, "very_hard": 5, "extreme": 5})
    sample, metrics = sample_questions(database, PAPER_SHARES, 40, seed=3, shortage="nearest", strategy="random")
    again, _ = sample_questions(database, PAPER_SHARES, 40, seed=3, shortage="nearest", strategy="random")
    assert sample.equals(again) and sample.height == 40
    assert sample["question_id"].n_unique() == 40
    assert metrics["strategy"] == "random"
    assert sum(metrics["effective_quota"].values()) == 40
    # Uniform over the pool: the easy-heavy pool shows through (adaptive would give easy 0.3 * 40 = 12).
    assert metrics["effective_quota"]["easy"] > 20
    adaptive, _ = sample_questions(database, PAPER_SHARES, 40, seed=3, shortage="nearest")
    assert set(adaptive["question_id"]) != set(sample["question_id"])


def test_random_strategy_shortage() -> None:
    database = make_database({"easy": 3})
    sample, _ = sample_questions(database, PAPER_SHARES, 10, seed=0, shortage="fewer", strategy="random")
    assert sample.height == 3
    with pytest.raises(ShortageError, match=r"fewer than sample\.size=10"):
        sample_questions(database, PAPER_SHARES, 10, seed=0, shortage="fail", strategy="random")


def test_p_eval_from_a_fixture_histogram_changes_the_sample() -> None:
    from adacot.sampling import eval_shares

    eval_db = make_database({"easy": 1, "medium": 1, "hard": 2, "very_hard": 0, "extreme": 6})
    shares = eval_shares(eval_db)
    assert shares == {"easy": 0.1, "medium": 0.1, "hard": 0.2, "very_hard": 0.0, "extreme": 0.6}
    database = make_database({lv: 30 for lv in LEVELS})
    sample, metrics = sample_questions(database, shares, 20, seed=0, shortage="nearest")
    assert metrics["effective_quota"] == {"easy": 2, "medium": 2, "hard": 4, "very_hard": 0, "extreme": 12}
    by_weights, _ = sample_questions(database, PAPER_SHARES, 20, seed=0, shortage="nearest")
    assert (
        by_weights["level"].value_counts().sort("level").rows() != sample["level"].value_counts().sort("level").rows()
    )
    with pytest.raises(ValueError, match="no graded questions"):
        eval_shares(eval_db.head(0))


def test_eval_overlap_counts_evaluation_questions_in_the_sample() -> None:
    from adacot.sampling import eval_overlap

    database = make_database({"easy": 5})
    eval_db = make_database({"medium": 2}).with_columns(question=pl.Series(["EASY question 1!", "something else"]))
    assert eval_overlap(database, eval_db) == 1
    assert eval_overlap(database, make_database({"medium": 2})) == 0


@pytest.mark.parametrize(
    ("counts", "shares", "strategy"),
    [({}, PAPER_SHARES, "adaptive"), ({}, PAPER_SHARES, "random"), ({"easy": 5}, {"hard": 1.0}, "adaptive")],
    ids=["empty_database", "empty_database_random", "weight_only_on_empty_levels"],
)
def test_a_draw_of_zero_questions_fails(counts: dict[str, int], shares: dict[str, float], strategy: str) -> None:
    database = make_database(counts) if counts else make_database({"easy": 1}).head(0)
    with pytest.raises(StageFailure, match="sample_questions drew 0 questions") as failure:
        sample_questions(database, shares, 10, seed=0, shortage="fewer", strategy=strategy)
    assert f"the database holds {database.height}" in str(failure.value)
