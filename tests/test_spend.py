"""Spend before you spend: the projection, the per-run cap and its params check, against a real server.

The served model is the real ``OpenAIChatModel`` talking to the fault-injecting loopback server of
tests/openai_fake_server.py, which bills words as tokens and counts every answer and token it delivered:
so "spent" below is what the server delivered, priced, not what the client believes it spent.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
from openai_fake_server import FakeOpenAIServer
from test_openai_backend import api_params, conversations

from adacot.config import ParamsError, parse_params
from adacot.errors import StageFailure
from adacot.llm import Price, ResponseCache, Sampling, cached_complete
from adacot.llm.openai_backend import OpenAIChatModel
from adacot.llm.spend import (
    SpendBudget,
    TokenHistory,
    budget_for,
    project,
    prompt_chars_estimate,
    prompt_tokens_bound,
    token_history,
)

SAMPLING = Sampling(max_tokens=64, temperature=0.7, top_p=0.95, seed=3)
# Expensive enough that a handful of requests reach a cap of a few cents.
PRICE = Price(input_per_mtok=1000.0, output_per_mtok=2000.0)


def _served(server: FakeOpenAIServer, cap: float | None, **api: object) -> OpenAIChatModel:
    # A generous timeout: on a loaded machine a 5 s one let a request time out as the server answered it, so
    # the server counted an answer the client never kept (the cap test's counts then failed by chance).
    settings = api_params(server.base_url, max_spend_usd=cap, **{"request_timeout_s": 120.0, **api})
    return OpenAIChatModel("fake-teacher", settings, None, seed=3, spend=budget_for(settings, PRICE))


def _server_spend(server: FakeOpenAIServer) -> float:
    """Dollars of every answer the server delivered, at its billed usage."""
    return PRICE.dollars(server.usage["prompt_tokens"], server.usage["completion_tokens"])


def test_prompt_bound_is_above_the_usual_estimate() -> None:
    conversation = ({"role": "system", "content": "Solve."}, {"role": "user", "content": "Что такое 2 + 2?"})
    assert prompt_tokens_bound(conversation) > 2 * prompt_chars_estimate(conversation)
    assert prompt_tokens_bound(conversation) >= len("Что такое 2 + 2?".encode()) + len("Solve.")


def test_projection_uses_history_else_max_tokens() -> None:
    pending = [(conversations(1)[0], 4), (conversations(2)[1], 2)]
    cold = project("teacher", "m", pending, 3, SAMPLING, PRICE, TokenHistory(), prompt_once=True)
    assert (cold.requests_to_send, cold.cache_hits, cold.answers_needed) == (6, 3, 9)
    assert cold.completion_tokens == 6 * SAMPLING.max_tokens  # no history: the upper bound
    assert cold.prompt_tokens == sum(prompt_chars_estimate(c) for c, _ in pending)  # once per conversation
    warm = project("teacher", "m", pending, 3, SAMPLING, PRICE, TokenHistory(10, 50.0, 20.0), prompt_once=False)
    assert (warm.prompt_tokens, warm.completion_tokens) == (6 * 50, 6 * 20)
    assert warm.usd == pytest.approx(PRICE.dollars(300, 120))
    long = project("teacher", "m", pending, 0, SAMPLING, PRICE, TokenHistory(10, 50.0, 500.0))
    assert long.completion_tokens == 6 * SAMPLING.max_tokens  # history above today's max_tokens is capped


def test_projection_equals_what_is_sent_cold_and_is_zero_warm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    asked = conversations(12, "proj")
    with FakeOpenAIServer(model="fake-teacher") as server:
        cache = ResponseCache(tmp_path)
        model = _served(server, None)
        with caplog.at_level(logging.INFO, logger="adacot.llm.spend"):
            cached_complete(model, asked, SAMPLING, 3, cache, desc="teacher", progress=False, price=PRICE)
        (cold,) = model.spend.projections
        assert cold.requests_to_send == server.usage["choices"] == 36 and cold.cache_hits == 0
        assert "spend projection: teacher (openai:fake-teacher" in caplog.text
        assert "requests to send" in caplog.text and "max_tokens=64 per answer (upper bound)" in caplog.text
        assert cold.completion_tokens == 36 * 64 >= server.usage["completion_tokens"]
        # Its own history now: mean tokens of its 36 cached answers.
        history = token_history(cache.path, model.model_id)
        assert history.answers == 36
        assert history.completion_tokens_per_answer == pytest.approx(server.usage["completion_tokens"] / 36)
        assert history.prompt_tokens_per_request == pytest.approx(server.usage["prompt_tokens"] / 12)
        metrics = model.spend.as_metrics()
        assert metrics["actual_usd"] == pytest.approx(_server_spend(server))
        assert metrics["requests_to_send"] == 36 and metrics["cap_usd"] is None

        again = _served(server, None)
        delivered = server.usage["choices"]
        cached_complete(again, asked, SAMPLING, 3, cache, desc="teacher", progress=False, price=PRICE)
        (warm,) = again.spend.projections
        assert (warm.requests_to_send, warm.cache_hits, warm.usd) == (0, 36, 0.0)
        assert server.usage["choices"] == delivered  # nothing asked
        # New questions are projected at the model's own history instead of max_tokens.
        third = _served(server, None)
        cached_complete(third, conversations(4, "new"), SAMPLING, 3, cache, desc="teacher", progress=False)
        (fresh,) = third.spend.projections
        assert fresh.requests_to_send == 12 and fresh.basis.startswith("history of 36 cached answers")
        assert fresh.completion_tokens == round(12 * history.completion_tokens_per_answer)
        cache.close()


@pytest.mark.parametrize("native_n", [True, False])
def test_the_cap_stops_before_passing_it_and_a_rerun_pays_nothing_twice(tmp_path: Path, native_n: bool) -> None:
    asked = conversations(40, "cap")
    worst = PRICE.dollars(prompt_tokens_bound(asked[0]), SAMPLING.max_tokens * (2 if native_n else 1))
    cap = 6 * worst  # a few requests' worst case: far fewer than the 40 x 2 answers needed
    with FakeOpenAIServer(model="fake-teacher", latency_s=0.01) as server:
        cache = ResponseCache(tmp_path)
        model = _served(server, cap, native_n=native_n, max_concurrency=4)
        with pytest.raises(StageFailure) as failure:
            cached_complete(model, asked, SAMPLING, 2, cache, desc="teacher", progress=False, price=PRICE)
        message = str(failure.value)
        spent = _server_spend(server)
        assert 0 < spent <= cap  # counted at the server: never past the cap
        assert model.spend.spent_usd == pytest.approx(spent)
        arrived = server.usage["choices"]
        assert 0 < arrived < 80 and len(cache) == arrived  # every answer that arrived is cached
        assert message == (
            f"teacher: stopped before passing the spend cap: spent ${spent:.4f} of api.max_spend_usd=${cap:g} in "
            f"this run; {arrived} answer(s) that arrived are in the response cache, {80 - arrived} not asked; "
            "rerun with a higher api.max_spend_usd (a role's api can set its own), or as is to continue with a "
            "fresh per-run budget: cached answers are not paid again"
        )
        assert "\n" not in message
        assert model.spend.as_metrics()["requests_refused_by_cap"] >= 1

        higher = _served(server, 1000.0, native_n=native_n, max_concurrency=4)
        answers, stats = cached_complete(higher, asked, SAMPLING, 2, cache, desc="teacher", progress=False)
        assert all(len(row) == 2 and not any(c.failed for c in row) for row in answers)
        assert (stats.hits, stats.misses) == (arrived, 80 - arrived)
        assert higher.spend.projections[0].requests_to_send == 80 - arrived
        assert server.usage["choices"] == 80 and server.repeated_answers() == {}  # none delivered twice
        cache.close()


def test_a_cap_of_zero_sends_nothing(tmp_path: Path) -> None:
    with FakeOpenAIServer(model="fake-teacher") as server:
        model = _served(server, 0.0)
        with pytest.raises(StageFailure, match=r"spent \$0.0000 of api.max_spend_usd=\$0 .* 0 answer\(s\) .* 6 not"):
            cached_complete(model, conversations(3), SAMPLING, 2, ResponseCache(tmp_path), progress=False)
        assert server.requests == 0


def test_budget_reserves_worst_case_and_settles_actual() -> None:
    budget = SpendBudget(1.0, Price(1e6, 1e6))  # $1 per token
    conversation = ({"role": "user", "content": "abcd"},)
    bound = prompt_tokens_bound(conversation)
    assert budget.reserve(conversation, 10) is None and budget.stopped  # its worst case alone passes $1
    budget = SpendBudget(100.0, Price(1e6, 1e6))
    held = budget.reserve(conversation, 10)
    assert held is not None and budget.reserved_usd == pytest.approx(bound + 10)
    assert budget.reserve(conversation, 100 - bound) is None  # held + this one would pass $100
    assert budget.reserve(conversation, 1) is None  # once stopped, stopped: no cheaper request sneaks in
    budget.settle(held, 3, 2)
    assert (budget.reserved_usd, budget.spent_usd, budget.refused) == (0.0, 5.0, 2)


def _params(raw: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for name, values in sections.items():
        out[name] = {**out[name], **values}
    return out


def test_a_cap_on_an_unpriced_served_model_fails_at_params_load(params_raw: dict[str, Any]) -> None:
    served_teacher = {"backend": "openai", "model": "my-teacher"}
    with pytest.raises(ParamsError) as error:
        parse_params(_params(params_raw, teacher=served_teacher, api={"max_spend_usd": 5}))
    assert "api.max_spend_usd=5 caps teacher's spend but prices has no entry for its served model 'my-teacher'" in (
        str(error.value)
    )
    assert "add prices.my-teacher" in str(error.value)
    # The role's own key is named when the role set it.
    with pytest.raises(ParamsError, match=r"teacher\.api\.max_spend_usd=2 caps teacher's spend"):
        parse_params(_params(params_raw, teacher={**served_teacher, "api": {"max_spend_usd": 2}}))
    # Priced, or no cap, or a local role: fine.
    priced = _params(params_raw, teacher=served_teacher, api={"max_spend_usd": 5})
    priced["prices"] = {**priced["prices"], "my-teacher": {"input": 1, "output": 2}}
    assert parse_params(priced).role_api("teacher").max_spend_usd == 5
    assert parse_params(_params(params_raw, teacher=served_teacher)).api.max_spend_usd is None
    assert parse_params(_params(params_raw, api={"max_spend_usd": 5})).api.max_spend_usd == 5  # all roles local
    judge = {"backend": "openai", "served_model": "judge", "api": {"max_spend_usd": 1}}
    with pytest.raises(ParamsError, match=r"prm\.api\.max_spend_usd=1 caps prm's spend .* 'judge'"):
        parse_params(_params(params_raw, prm=judge))
    with pytest.raises(ParamsError, match=r"api.max_spend_usd: Input should be greater than or equal to 0"):
        parse_params(_params(params_raw, api={"max_spend_usd": -1}))


@pytest.mark.parametrize("native_n", [True, False])
def test_a_resumed_sample_is_asked_with_its_own_seed_never_a_held_samples(tmp_path: Path, native_n: bool) -> None:
    # A stopped run (a spend cap, a crash) can leave sample 0 of a question answered and sample 1 not. The
    # rerun must ask sample 1 with sample 1's seed: with sample 0's, a server that honours seeds answers
    # sample 0 again, paid twice and a duplicate in the data (the cap test saw it by chance, one in ~80).
    asked = conversations(3, "resume")
    with FakeOpenAIServer(model="fake-teacher", record_bodies=True) as server:
        cache = ResponseCache(tmp_path)
        first, _ = cached_complete(_served(server, None, native_n=native_n), asked, SAMPLING, 1, cache, progress=False)
        answers, stats = cached_complete(
            _served(server, None, native_n=native_n), asked, SAMPLING, 2, cache, progress=False
        )
        assert (stats.hits, stats.misses) == (3, 3)
        assert [row[0].text for row in answers] == [row[0].text for row in first]
        assert all(row[1].text != row[0].text for row in answers)  # sample 1 is not sample 0 again
        assert server.repeated_answers() == {}
        assert [body.get("seed") for body in server.bodies] == [3, 3, 3, 4, 4, 4]
        assert all(body.get("n", 1) == 1 for body in server.bodies)
