"""Tests for adacot.llm.cache: stable keys, a cache that survives reopening and crashes, partial reuse."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FakeChatModel

from adacot.errors import StageFailure
from adacot.llm import Completion, ResponseCache, Sampling, cache_key, cached_complete, failure_budget
from adacot.llm.base import Conversation

SAMPLING = Sampling(max_tokens=32, temperature=0.7, top_p=0.95, seed=0)
CONV: Conversation = ({"role": "user", "content": "What is 2 + 2?"},)


def _counting_script(user: str, number: int) -> str:
    return f"answer {number} to {user}"


def _conversations(count: int) -> list[Conversation]:
    return [({"role": "user", "content": f"question {i}"},) for i in range(count)]


def test_cache_key_stable() -> None:
    key = cache_key("m@1", CONV, SAMPLING, 0)
    assert key == cache_key("m@1", CONV, SAMPLING, 0)
    assert len(key) == 64 and int(key, 16) >= 0
    # Equal content built differently (key order, a fresh Sampling) hashes the same.
    reordered: Conversation = ({"content": "What is 2 + 2?", "role": "user"},)
    assert cache_key("m@1", reordered, Sampling(32, 0.7, 0.95, 0), 0) == key


# (id, model id, conversation, sampling, sample index): each differs from the base in one thing
KEY_CHANGES = [
    ("model_id", "m@2", CONV, SAMPLING, 0),
    ("content", "m@1", ({"role": "user", "content": "What is 2 + 3?"},), SAMPLING, 0),
    ("role", "m@1", ({"role": "system", "content": "What is 2 + 2?"},), SAMPLING, 0),
    ("system_message", "m@1", ({"role": "system", "content": "Be brief."}, *CONV), SAMPLING, 0),
    ("max_tokens", "m@1", CONV, replace(SAMPLING, max_tokens=33), 0),
    ("temperature", "m@1", CONV, replace(SAMPLING, temperature=0.8), 0),
    ("top_p", "m@1", CONV, replace(SAMPLING, top_p=0.9), 0),
    ("seed", "m@1", CONV, replace(SAMPLING, seed=1), 0),
    ("sample_index", "m@1", CONV, SAMPLING, 1),
]


@pytest.mark.parametrize(
    ("model_id", "conversation", "sampling", "index"), [c[1:] for c in KEY_CHANGES], ids=[c[0] for c in KEY_CHANGES]
)
def test_cache_key_sensitive(model_id: str, conversation: Conversation, sampling: Sampling, index: int) -> None:
    assert cache_key(model_id, conversation, sampling, index) != cache_key("m@1", CONV, SAMPLING, 0)


def test_cache_survives_reopen(tmp_path: Path) -> None:
    completion = Completion("42", "stop", 10, 2, "m@1")
    first = ResponseCache(tmp_path / "cache")
    first.put_many([("k1", completion), ("k2", replace(completion, text="41", finish_reason="length"))])
    first.close()
    second = ResponseCache(tmp_path / "cache")
    assert len(second) == 2
    found = second.get_many(["k1", "k2", "absent"])
    assert set(found) == {"k1", "k2"}
    assert found["k1"] == replace(completion, cached=True)
    assert found["k2"].finish_reason == "length"
    second.close()


def test_cache_many_keys(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    items = [(f"k{i}", Completion(str(i), "stop", 1, 1, "m")) for i in range(1203)]  # more than one 500-key chunk
    cache.put_many(items)
    found = cache.get_many([k for k, _ in items])
    assert len(found) == 1203
    assert found["k1202"].text == "1202"
    cache.close()


def test_cached_complete_without_cache() -> None:
    fake = FakeChatModel(_counting_script)
    results, stats = cached_complete(fake, _conversations(3), SAMPLING, 2, None, progress=False)
    assert [[c.text for c in row] for row in results] == [
        [f"answer {n} to question {i}" for n in range(2)] for i in range(3)
    ]
    assert fake.requests == 6 and stats.misses == 6 and stats.hits == 0
    assert all(not c.cached for row in results for c in row)


def test_cached_complete_second_run_is_free(tmp_path: Path) -> None:
    conversations = _conversations(3)
    first_fake = FakeChatModel(_counting_script)
    first, stats = cached_complete(first_fake, conversations, SAMPLING, 2, ResponseCache(tmp_path), progress=False)
    assert stats.misses == 6 and stats.completion_tokens_spent == sum(c.completion_tokens for r in first for c in r)
    second_fake = FakeChatModel(_counting_script)
    second, stats = cached_complete(second_fake, conversations, SAMPLING, 2, ResponseCache(tmp_path), progress=False)
    assert second_fake.requests == 0 and second_fake.calls == []
    assert stats.hits == 6 and stats.misses == 0
    assert stats.completion_tokens_saved == sum(c.completion_tokens for r in first for c in r)
    assert [[replace(c, cached=False) for c in row] for row in second] == first
    assert all(c.cached for row in second for c in row)


def test_cached_complete_other_model_misses(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cached_complete(
        FakeChatModel(_counting_script, model_id="a@1"), _conversations(2), SAMPLING, 1, cache, progress=False
    )
    other = FakeChatModel(_counting_script, model_id="b@1")
    _, stats = cached_complete(other, _conversations(2), SAMPLING, 1, cache, progress=False)
    assert other.requests == 2 and stats.hits == 0


def test_cached_complete_asks_only_for_missing_samples(tmp_path: Path) -> None:
    conversations = _conversations(3)
    fake = FakeChatModel(_counting_script)
    cache = ResponseCache(tmp_path)
    before, _ = cached_complete(fake, conversations, SAMPLING, 2, cache, progress=False)
    assert fake.requests == 6
    results, stats = cached_complete(fake, conversations, SAMPLING, 4, cache, progress=False)
    # Exactly 2 more per conversation, in one call asking n=2.
    assert fake.requests == 6 + 6
    assert fake.calls[-1] == (3, 2)
    assert [n for _, n in fake.asked[-3:]] == [2, 2, 2]
    assert stats.hits == 6 and stats.misses == 6
    for row, old in zip(results, before, strict=True):
        assert len(row) == 4
        assert [c.cached for c in row] == [True, True, False, False]
        assert [c.text for c in row[:2]] == [c.text for c in old]
    assert len(cache) == 12


def test_cached_complete_groups_by_missing_count(tmp_path: Path) -> None:
    a, b, c = _conversations(3)
    cache = ResponseCache(tmp_path)
    fake = FakeChatModel(_counting_script)
    cached_complete(fake, [a], SAMPLING, 4, cache, progress=False)  # a: fully cached
    cached_complete(fake, [b], SAMPLING, 2, cache, progress=False)  # b: half cached
    fake.calls.clear()
    results, stats = cached_complete(fake, [a, b, c], SAMPLING, 4, cache, progress=False)
    assert sorted(fake.calls) == [(1, 2), (1, 4)]  # b asks for 2, c for 4, a for nothing
    assert stats.hits == 6 and stats.misses == 6
    # Results stay in input order, each row complete.
    assert [row[0].text for row in results] == [f"answer 0 to question {i}" for i in range(3)]
    assert all(len(row) == 4 for row in results)


def test_crash_keeps_committed_batches(tmp_path: Path) -> None:
    conversations = _conversations(3)
    crashing = FakeChatModel(_counting_script, fail_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        cached_complete(crashing, conversations, SAMPLING, 2, ResponseCache(tmp_path), batch_requests=1, progress=False)
    reopened = ResponseCache(tmp_path)
    assert len(reopened) == 2  # the first batch (1 conversation x 2 samples) was committed
    healthy = FakeChatModel(_counting_script)
    results, stats = cached_complete(healthy, conversations, SAMPLING, 2, reopened, batch_requests=1, progress=False)
    assert healthy.requests == 4
    assert [user for user, _ in healthy.asked] == ["question 1", "question 2"]
    assert stats.hits == 2 and stats.misses == 4
    assert [[c.cached for c in row] for row in results] == [[True, True], [False, False], [False, False]]
    assert len(reopened) == 6


def test_merge_from_adds_only_new_keys(tmp_path: Path) -> None:
    from adacot.llm.base import Completion

    a, b = ResponseCache(tmp_path / "a"), ResponseCache(tmp_path / "b")
    a.put_many([("k1", Completion("one", "stop", 3, 1, "m"))])
    b.put_many([("k1", Completion("other", "stop", 3, 1, "m")), ("k2", Completion("two", "stop", 3, 1, "m"))])
    b.close()
    assert a.merge_from(tmp_path / "b" / "responses.sqlite") == 1
    got = a.get_many(["k1", "k2"])
    assert got["k1"].text == "one" and got["k2"].text == "two"


def test_team_sharing_through_cache_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Alice's answers reach Bob as a merged cache file (shared path or `dvc push`ed folder): Bob pays nothing."""
    from adacot.cli import main

    conversations = _conversations(4)
    alice = FakeChatModel(_counting_script)
    cached_complete(alice, conversations, SAMPLING, 2, ResponseCache(tmp_path / "alice"), progress=False)
    assert main(["cache-merge", str(tmp_path / "alice"), "--into", str(tmp_path / "share")]) == 0
    assert main(["cache-merge", str(tmp_path / "share" / "responses.sqlite"), "--into", str(tmp_path / "bob")]) == 0
    assert "merged 8 new response(s)" in capsys.readouterr().out
    bob = FakeChatModel(_counting_script)
    _, stats = cached_complete(bob, conversations, SAMPLING, 2, ResponseCache(tmp_path / "bob"), progress=False)
    assert bob.requests == 0 and stats.hits == 8
    assert main(["cache-stats", str(tmp_path / "bob")]) == 0
    assert '"responses": 8' in capsys.readouterr().out
    assert main(["cache-merge", str(tmp_path / "missing")]) == 2


def _writer(directory: str, start: int) -> None:
    cache = ResponseCache(Path(directory))
    for i in range(start, start + 200):
        cache.put_many([(f"key-{i}", Completion(f"text {i}", "stop", 3, 1, "m"))])


def test_concurrent_writers_in_separate_processes(tmp_path: Path) -> None:
    """Queued experiments write the same cache file at once: every commit lands, none fails on a lock."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_writer, args=(str(tmp_path), start)) for start in (0, 200, 400)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(ResponseCache(tmp_path)) == 600


def test_ledger_counts_dollars_and_errors(tmp_path: Path) -> None:
    from adacot.llm import Price

    fake = FakeChatModel(_counting_script)
    _, stats = cached_complete(
        fake, _conversations(2), SAMPLING, 1, ResponseCache(tmp_path), progress=False, price=Price(1.0, 4.0)
    )
    spent = stats.as_metrics()
    assert spent["dollars_spent"] == pytest.approx(
        (stats.prompt_tokens_spent * 1.0 + stats.completion_tokens_spent * 4.0) / 1e6
    )
    _, again = cached_complete(
        FakeChatModel(_counting_script),
        _conversations(2),
        SAMPLING,
        1,
        ResponseCache(tmp_path),
        progress=False,
        price=Price(1.0, 4.0),
    )
    assert again.as_metrics()["dollars_saved"] == spent["dollars_spent"] and again.dollars_spent == 0
    assert spent["usd_per_mtok"] == {"input": 1.0, "output": 4.0}


def _failing_script(failing: set[str]):
    def script(user: str, number: int) -> str | tuple[str, str]:
        return ("", "error") if user in failing else f"answer {number} to {user}"

    return script


def test_too_many_failed_requests_fail_after_every_answer_is_cached(tmp_path: Path) -> None:
    # 2 of 20 conversations fail, n=2: 4 of 40 answers (10%) against a 5% budget.
    fake = FakeChatModel(_failing_script({"question 3", "question 7"}))
    with pytest.raises(StageFailure) as failure:
        cached_complete(
            fake,
            _conversations(20),
            SAMPLING,
            2,
            ResponseCache(tmp_path),
            progress=False,
            desc="teacher",
            max_failed_fraction=0.05,
        )
    assert str(failure.value) == (
        "teacher: 4 of 40 requested answers failed, more than api.max_failed_fraction=0.05 allows; first error: "
        "no reason given; the 36 answered are in the response cache, so a rerun asks only for the 4 that failed"
    )
    assert len(ResponseCache(tmp_path)) == 36
    # The rerun asks only for the failed four, and with them answered the stage passes.
    healthy = FakeChatModel(_counting_script)
    results, stats = cached_complete(
        healthy, _conversations(20), SAMPLING, 2, ResponseCache(tmp_path), progress=False, max_failed_fraction=0.05
    )
    assert healthy.requests == 4 and stats.hits == 36 and stats.misses == 4 and stats.errors == 0
    assert all(not c.failed for row in results for c in row)


def test_failures_within_the_budget_pass_and_are_counted(tmp_path: Path) -> None:
    fake = FakeChatModel(_failing_script({"question 3", "question 7"}))
    results, stats = cached_complete(
        fake, _conversations(20), SAMPLING, 2, ResponseCache(tmp_path), progress=False, max_failed_fraction=0.1
    )  # 4 of 40 is exactly the budget: allowed
    assert stats.errors == 4 and stats.misses == 36
    assert sum(c.failed for row in results for c in row) == 4
    # Without a budget (a caller that judges failures itself) nothing is checked at all.
    _, stats = cached_complete(
        FakeChatModel(_failing_script({"question 3"})), _conversations(20), SAMPLING, 2, None, progress=False
    )
    assert stats.errors == 2


def test_a_local_engine_gets_no_failure_budget() -> None:
    # Local engines never fail a request, so the budget for a model without one is 0: any failure stops.
    assert failure_budget(FakeChatModel(_counting_script)) == 0.0
    with pytest.raises(StageFailure, match="1 of 2 requested answers failed"):
        cached_complete(
            FakeChatModel(_failing_script({"question 1"})),
            _conversations(2),
            SAMPLING,
            1,
            None,
            progress=False,
            desc="grade",
            max_failed_fraction=failure_budget(FakeChatModel({})),
        )
