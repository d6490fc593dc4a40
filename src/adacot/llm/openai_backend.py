"""A ``ChatModel`` over OpenAI-compatible HTTP servers (DeepSeek-R1's API, OpenAI, vLLM's server).

This module is for sending chat requests well. The official ``openai`` client defines each request (URL,
bearer key, its headers); by default (``api.transport: aiohttp``) one aiohttp session sends it with orjson
on a uvloop event loop, or the SDK's own HTTP stack does (``sdk``, ~1.5 ms of CPU more per request).
Around that: a bounded number of requests in flight (a pool of workers, no task per conversation),
optional requests- and tokens-per-minute limits, client-side balancing over several base URLs (least
requests in flight), retries with exponential backoff and full jitter on 429, 5xx, timeouts, dropped
connections and empty 200 bodies (a server's ``Retry-After`` wins when it sends one), ``n`` samples in
one request where the server allows it and one request per sample where it does not, a per-request
``seed`` (``seed + offset`` per fanned-out sample) unless ``api.send_seed`` is off, DeepSeek-style
``reasoning_content`` kept as ``<think>…</think>`` before the answer, per-response usage, latency and
served model id, and the first token's ``top_logprobs`` for a generative judge (``top_logprobs_view``).
Answers are handed to a callback as they arrive, those of one event-loop turn together
(``complete_streaming``), so the response cache commits each burst before waiting for more.

A request that still fails after its retries comes back as a ``Completion`` with ``finish_reason="error"``
and the reason, never as a silent gap and never cached; the model's ``max_failed_fraction`` tells the
response cache how many of those a stage may hold before it fails (``cache.check_failed_requests``). A
refused key (401/403), an unknown model (404) or a judge server without logprobs stops the run at once
with ``ApiFatalError``: every other request would fail the same way.

Each attempt first reserves its worst-case cost in the model's ``spend`` budget (``llm/spend.py``) and
settles it with the reported usage; a request whose reservation would pass ``api.max_spend_usd`` is not
sent, and neither is any after it (the response cache then fails the stage in one line).

It is not for caching (``cache.py``), choosing what to ask (stages) or reading params (``open_model``).
The API key is held only in memory (the clients and the per-process request template): it is never
logged, hashed or stored.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import functools
import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adacot.config import ApiParams
from adacot.llm.base import Completion, Conversation, ResultCallback, Sampling
from adacot.llm.cache import Price
from adacot.llm.spend import SpendBudget

logger = logging.getLogger(__name__)

_ERROR_MAX_CHARS = 300


class ApiFatalError(RuntimeError):
    """The server refused every request alike (bad key, unknown model): stop instead of retrying."""


@dataclass
class ApiStats:
    """What the client did, for stage metrics: requests sent, retries by cause, requests given up."""

    requests_sent: int = 0
    answered: int = 0
    failed: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    fanned_out: bool = False
    latency_s_total: float = 0.0

    def retry(self, cause: str) -> None:
        self.retries[cause] = self.retries.get(cause, 0) + 1

    def as_metrics(self) -> dict[str, Any]:
        return {
            "requests_sent": self.requests_sent,
            "answered": self.answered,
            "failed": self.failed,
            "retries": dict(sorted(self.retries.items())),
            "n_fanned_out": self.fanned_out,
            "mean_latency_s": round(self.latency_s_total / self.answered, 4) if self.answered else None,
        }


class _Retry(Exception):
    """One attempt failed in a way worth retrying; ``delay_s`` is the server's Retry-After if it sent one."""

    def __init__(self, cause: str, detail: str, delay_s: float | None = None) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
        self.delay_s = delay_s


class _NoNativeN(Exception):
    """The server refused ``n > 1``: switch to one request per sample."""


class _NotSent(Exception):
    """The spend cap kept this request from being sent (``SpendBudget.reserve``)."""


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if present."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: fall back to our own backoff
    return max(0.0, parsed.timestamp() - time.time())


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _ERROR_MAX_CHARS else text[: _ERROR_MAX_CHARS - 3] + "..."


def join_reasoning(reasoning: str | None, content: str | None) -> str:
    """The stored text of a reasoning model's answer: ``<think>reasoning</think>`` then the answer."""
    content = content or ""
    if not reasoning:
        return content
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{content.lstrip()}"


class _Limiter:
    """Optional requests-per-minute and tokens-per-minute limits (aiolimiter leaky buckets)."""

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        from aiolimiter import AsyncLimiter

        self._rpm = AsyncLimiter(rpm, 60) if rpm else None
        self._tpm = AsyncLimiter(tpm, 60) if tpm else None
        self._tpm_max = tpm or 0

    async def acquire(self, tokens: int) -> None:
        if self._rpm is not None:
            await self._rpm.acquire()
        if self._tpm is not None:
            await self._tpm.acquire(min(tokens, self._tpm_max))


class OpenAIChatModel:
    """``model`` served by the OpenAI-compatible servers in ``api``; implements ``StreamingChatModel``."""

    def __init__(
        self, model: str, api: ApiParams, api_key: str | None, *, seed: int = 0, spend: SpendBudget | None = None
    ) -> None:
        self._model = model
        self._api = api
        self._key = api_key
        # None: the body carries no `seed` key at all (api.send_seed: false), for servers that die on one.
        self._seed: int | None = seed if api.send_seed else None
        self._native_n = api.native_n
        self._top_logprobs: int | None = None
        self.stats = ApiStats()
        # This stage run's spend: every request reserves its worst case here before it is sent.
        self.spend = spend if spend is not None else SpendBudget(None, Price(), prompt_once=api.native_n)

    @property
    def max_failed_fraction(self) -> float:
        """The share of a stage's answers that may be failed requests (``api.max_failed_fraction``)."""
        return self._api.max_failed_fraction

    @property
    def model_id(self) -> str:
        # The served name, not the URL: the same model behind several URLs (or a moved server) shares a cache.
        if self._top_logprobs:
            return f"openai:{self._model}|top_logprobs={self._top_logprobs}"
        return f"openai:{self._model}"

    def top_logprobs_view(self, k: int = 20) -> OpenAIChatModel:
        """This model asked for the ``k`` likeliest first tokens instead of text (a generative judge's read).

        Each answer's ``text`` is then the JSON list ``[[token, logprob], ...]`` of the first generated
        token; its ``model_id`` differs, so these answers have cache keys of their own. Stats are shared.
        """
        view = copy.copy(self)
        view._top_logprobs = k
        return view

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatModel(model={self._model!r}, base_urls={self._api.base_urls!r})"

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        out: list[list[Completion | None]] = [[None] * n for _ in conversations]

        def keep(answered: list[tuple[int, int, Completion]]) -> None:
            for index, offset, completion in answered:
                out[index][offset] = completion

        self.complete_streaming(conversations, sampling, n, keep)
        return [[c for c in row if c is not None] for row in out]

    def complete_streaming(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        n: int,
        on_result: ResultCallback,
        *,
        samples: Sequence[int] | None = None,
    ) -> None:
        chosen = tuple(range(n)) if samples is None else tuple(samples)
        if len(chosen) != n:
            raise ValueError(f"samples {chosen} name {len(chosen)} samples, {n} were asked")
        if conversations:
            with _runner() as runner:
                runner.run(self._run(conversations, sampling, chosen, on_result))

    def close(self) -> None:
        """Nothing to release: clients live only inside each ``complete`` call's event loop."""

    # -- async core -----------------------------------------------------------------------------------

    async def _run(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        samples: tuple[int, ...],
        on_result: ResultCallback,
    ) -> None:
        api = self._api
        clients: list[Any]
        if api.transport == "aiohttp":
            # The official client still defines each request (URL, auth and SDK headers); aiohttp sends it.
            clients = [
                _AiohttpClient(*_sdk_request(url, self._key or "EMPTY"), api.request_timeout_s, api.max_concurrency)
                for url in api.base_urls
            ]
        else:
            from openai import AsyncOpenAI, DefaultAioHttpClient

            clients = [
                AsyncOpenAI(
                    base_url=url,
                    api_key=self._key or "EMPTY",
                    max_retries=0,
                    timeout=api.request_timeout_s,
                    http_client=DefaultAioHttpClient(),
                )
                for url in api.base_urls
            ]
        in_flight = [0] * len(clients)
        gate = asyncio.Semaphore(api.max_concurrency)
        limits = api.requests_per_minute or api.tokens_per_minute
        limiter = _Limiter(api.requests_per_minute, api.tokens_per_minute) if limits else None
        outbox = _Outbox(on_result)
        context = _Context(clients, in_flight, gate, limiter, sampling, outbox)
        todo = iter(enumerate(conversations))

        async def worker() -> None:
            for index, conversation in todo:
                if self.spend.stopped:
                    return  # the cap is reached: what is left is not asked
                await self._conversation(context, index, conversation, samples)

        # Twice as many workers as request slots: a worker waiting out a retry's backoff does not hold a
        # slot, and there is no task (and no gate wait) per conversation, which cost ~50 us each.
        workers = min(len(conversations), 2 * api.max_concurrency)
        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        except asyncio.CancelledError:
            if not outbox.failed:
                raise
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
            outbox.flush()  # whatever arrived last, also when the run stops on an error
        outbox.raise_error()

    async def _conversation(
        self, ctx: _Context, index: int, conversation: Conversation, samples: tuple[int, ...]
    ) -> None:
        # Sample i is asked with seed + i (natively: n choices from seed + the first sample), so a resumed run
        # asking only sample 1 never gets sample 0's answer again from a server that honours seeds.
        n = len(samples)
        offsets = list(range(n))
        if n > 1 and self._native_n:
            try:
                got = await self._request(
                    ctx, conversation, n, seed=None if self._seed is None else self._seed + samples[0]
                )
            except _NoNativeN:
                got = []
            except _NotSent:
                return
            # A server may return fewer choices than asked: the rest are asked one at a time below.
            ctx.outbox.put([(index, offset, completion) for offset, completion in zip(offsets, got, strict=False)])
            offsets = offsets[len(got) :]
        if not offsets:
            return

        async def one(offset: int) -> None:
            # Distinct seeds so fanned-out samples differ where the server honours seeds.
            try:
                got = await self._request(
                    ctx, conversation, 1, seed=None if self._seed is None else self._seed + samples[offset]
                )
            except _NotSent:
                return
            ctx.outbox.put([(index, offset, got[0])])

        if len(offsets) == 1:
            await one(offsets[0])  # the common n=1 case: no extra task per request
        else:
            await asyncio.gather(*(one(offset) for offset in offsets))

    async def _request(
        self, ctx: _Context, conversation: Conversation, n: int, *, seed: int | None
    ) -> list[Completion]:
        """``n`` completions of one conversation, retried until answered or given up (then error rows)."""
        api = self._api
        messages = list(conversation)
        last = "no attempt made"
        for attempt in range(api.max_retries + 1):
            if ctx.limiter is not None:
                estimate = sum(len(m.get("content", "")) for m in messages) // 4 + ctx.sampling.max_tokens * n
                await ctx.limiter.acquire(estimate)
            async with ctx.gate:
                # Held only while in flight: the worst case of this attempt, settled with its usage below.
                reserved = self.spend.reserve(conversation, ctx.sampling.max_tokens * n)
                if reserved is None:
                    raise _NotSent
                used = (0, 0)
                slot = (
                    0
                    if len(ctx.clients) == 1
                    else min(range(len(ctx.clients)), key=lambda i: (ctx.in_flight[i], random.random()))
                )
                ctx.in_flight[slot] += 1
                started = time.monotonic()
                try:
                    self.stats.requests_sent += 1
                    got = self._parse(
                        await self._send(ctx.clients[slot], messages, ctx.sampling, n, seed),
                        n,
                        time.monotonic() - started,
                    )
                    used = (sum(c.prompt_tokens for c in got), sum(c.completion_tokens for c in got))
                    return got
                except _Retry as retry:
                    last = f"{retry.cause}: {retry.detail}"
                    delay = retry.delay_s
                    cause = retry.cause
                finally:
                    ctx.in_flight[slot] -= 1
                    self.spend.settle(reserved, *used)
            if attempt == api.max_retries:
                break
            self.stats.retry(cause)
            if delay is None:
                delay = random.uniform(0, min(api.backoff_max_s, api.backoff_initial_s * 2**attempt))
            logger.debug("retry %d after %.2fs: %s", attempt + 1, delay, last)
            await asyncio.sleep(min(delay, api.backoff_max_s))
        self.stats.failed += n
        reason = _short(f"gave up after {api.max_retries + 1} attempt(s); last: {last}")
        return [
            Completion(
                text="",
                finish_reason="error",
                prompt_tokens=0,
                completion_tokens=0,
                model_id=self.model_id,
                error=reason,
            )
            for _ in range(n)
        ]

    async def _send(
        self, client: Any, messages: list[dict[str, str]], sampling: Sampling, n: int, seed: int | None
    ) -> Any:
        """One HTTP attempt; maps every failure to ``_Retry``, ``_NoNativeN``, ``ApiFatalError`` or an error."""
        import openai

        body: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "n": n,
        }
        if seed is not None:
            body["seed"] = seed
        if self._top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self._top_logprobs
        if isinstance(client, _AiohttpClient):
            status, headers, response, text = await client.post(body)
            if status != 200:
                self._raise_for_status(status, text, headers, n)
            if not isinstance(response, dict) or not response.get("choices"):
                shown = _short(text or str(response or "")) or "empty body"
                raise _Retry("empty_body", f"HTTP 200 without choices: {shown}")
            return response
        try:
            # The client's low-level post with the same endpoint, auth, headers and error types as
            # ``chat.completions.create``, minus its per-call recursive transform of the params (plain JSON
            # here), which measured ~2 ms of CPU per request: the difference between 4x and 2x of ideal.
            # The answer is read as plain JSON (``cast_to=dict``) for the same reason.
            response = await client.post("/chat/completions", body=body, cast_to=dict)
        except openai.APITimeoutError as exc:
            # openai's aiohttp transport reports a connection the server closed as a ConnectTimeout.
            cause = str(exc.__cause__ or "")
            if "disconnect" in cause.lower() or "reset" in cause.lower():
                raise _Retry("connection", _short(cause)) from exc
            raise _Retry("timeout", f"no answer within {self._api.request_timeout_s}s") from exc
        except openai.APIConnectionError as exc:
            raise _Retry("connection", _short(str(exc.__cause__ or exc))) from exc
        except openai.APIStatusError as exc:
            self._raise_for_status(exc.status_code, exc.message, exc.response.headers, n)
        except openai.APIResponseValidationError as exc:
            raise _Retry("bad_body", _short(str(exc))) from exc
        except ValueError as exc:  # an empty or non-JSON 200 body fails to decode
            raise _Retry("empty_body", _short(f"{type(exc).__name__}: {exc}")) from exc
        if not isinstance(response, dict) or not response.get("choices"):
            raise _Retry("empty_body", f"HTTP 200 without choices: {_short(str(response)) or 'empty body'}")
        return response

    def _raise_for_status(self, status: int, message: str, headers: Any, n: int) -> None:
        """Map a non-200 answer to a retry (with the server's Retry-After), a fan-out switch or a fatal stop."""
        detail = _short(f"HTTP {status}: {message}")
        if status in (401, 403):
            raise ApiFatalError(f"the server refused the API key ({detail}); check api.api_key_env")
        if status == 404:
            raise ApiFatalError(f"model {self._model!r} not found on the server ({detail})")
        if status == 429:
            raise _Retry("rate_limited", detail, _retry_after(headers))
        if status >= 500 or status in (408, 409):
            raise _Retry(f"http_{status}", detail, _retry_after(headers))
        if n > 1 and status in (400, 422) and re.search(r"\bn\b", message):
            self._native_n = False
            self.stats.fanned_out = True
            logger.warning("server refused n=%d (%s): asking one sample per request from now on", n, detail)
            raise _NoNativeN
        raise _Retry(f"http_{status}", detail)  # other 4xx: retried, then an error row

    def _parse(self, response: dict[str, Any], n: int, latency_s: float) -> list[Completion]:
        try:
            choices = response["choices"]
            if len(choices) > 1:
                choices = sorted(choices, key=lambda c: c.get("index", 0))[:n]
            usage = response.get("usage") or {}
            prompt = int(usage.get("prompt_tokens") or 0)
            completion_total = int(usage.get("completion_tokens") or 0)
            details = usage.get("completion_tokens_details")
            reasoning_total = int(details.get("reasoning_tokens") or 0) if details else 0
            served = str(response.get("model") or "")
            messages = [choice["message"] for choice in choices]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise _Retry("bad_body", f"malformed chat completion: {type(exc).__name__}: {exc}") from exc
        results: list[Completion] = []
        # Usage is per request: the prompt is billed once (given to the first sample) and completion
        # tokens are shared out evenly, so sums over rows equal what the server billed.
        k = len(choices)
        latency = round(latency_s, 4)
        for i, (choice, message) in enumerate(zip(choices, messages, strict=True)):
            if self._top_logprobs:
                text = self._first_token_logprobs(choice)
            else:
                reasoning = message.get("reasoning_content") or message.get("reasoning")
                text = join_reasoning(reasoning if isinstance(reasoning, str) else None, message.get("content"))
            results.append(
                Completion(
                    text=text,
                    finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                    prompt_tokens=prompt if i == 0 else 0,
                    completion_tokens=completion_total // k + (i < completion_total % k),
                    reasoning_tokens=reasoning_total // k + (i < reasoning_total % k),
                    model_id=self.model_id,
                    latency_s=latency,
                    served_model=served,
                )
            )
        self.stats.answered += k
        self.stats.latency_s_total += latency_s * k
        return results

    def _first_token_logprobs(self, choice: dict[str, Any]) -> str:
        import orjson

        try:
            top = choice["logprobs"]["content"][0]["top_logprobs"]
            pairs = [[str(item["token"]), float(item["logprob"])] for item in top]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ApiFatalError(
                f"model {self._model!r} answered without top_logprobs: the generative judge needs a server that "
                "returns them (vLLM's OpenAI server, OpenAI, deepseek-chat; not deepseek-reasoner)"
            ) from exc
        return orjson.dumps(pairs).decode()


class _AiohttpClient:
    """The lean transport (``api.transport: aiohttp``): one aiohttp session posting chat JSON directly.

    Same requests, same retries and accounting as the SDK path, without the SDK's per-request work
    (~1.5 ms of CPU): for many fast servers (a farm of vLLM servers) where the client's CPU is the limit.
    JSON goes through orjson; no cookie jar (an API sets none worth keeping).
    """

    def __init__(self, url: str, headers: dict[str, str], timeout_s: float, connections: int) -> None:
        import aiohttp

        self._url = url
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=connections),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._timeout_s = timeout_s
        self._client_error = aiohttp.ClientError

    async def post(self, body: dict[str, Any]) -> tuple[int, Any, Any, str]:
        """(status, headers, parsed JSON or None, raw text) of one POST; network failures become ``_Retry``."""
        import orjson

        try:
            async with self._session.post(self._url, data=orjson.dumps(body)) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except TimeoutError as exc:
            raise _Retry("timeout", f"no answer within {self._timeout_s}s") from exc
        except self._client_error as exc:
            raise _Retry("connection", _short(f"{type(exc).__name__}: {exc}")) from exc
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        if status == 200 and isinstance(parsed, dict):
            return status, headers, parsed, ""  # the text is only read for messages about failures
        text = raw.decode("utf-8", "replace")
        if isinstance(parsed, dict):
            error = parsed.get("error")
            text = str(error.get("message", error)) if isinstance(error, dict) else text
        return status, headers, parsed, text

    async def close(self) -> None:
        await self._session.close()


@functools.lru_cache(maxsize=64)
def _sdk_request(base_url: str, api_key: str) -> tuple[str, dict[str, str]]:
    """The URL and headers the official client sends for a chat completion: its identification headers and
    its auth header (unset optional headers, the SDK's ``Omit`` markers, dropped). Built once per process
    (building the client loads the TLS trust store, ~50 ms); held in memory only."""
    from openai import OpenAI

    with OpenAI(base_url=base_url, api_key=api_key, max_retries=0) as sdk:
        url = str(sdk.base_url).rstrip("/") + "/chat/completions"
        headers = {k: v for k, v in {**sdk.default_headers, **sdk.auth_headers}.items() if isinstance(v, str)}
    return url, headers


@dataclass
class _Context:
    clients: list[Any]
    in_flight: list[int]
    gate: asyncio.Semaphore
    limiter: _Limiter | None
    sampling: Sampling
    outbox: _Outbox


class _Outbox:
    """Hands answers to ``on_result`` once per turn of the event loop, all that arrived in that turn together.

    Answers come back in bursts (requests sent together finish together); one callback per burst lets the
    cache commit a burst in one transaction. Nothing awaits between an answer's arrival and its flush, so
    a kill can only catch it in the same turn of the loop, like an answer still on the wire. An exception
    from ``on_result`` cancels the run and is raised by ``raise_error``.
    """

    def __init__(self, on_result: ResultCallback) -> None:
        self._on_result = on_result
        self._pending: list[tuple[int, int, Completion]] = []
        self._error: BaseException | None = None
        self._task = asyncio.current_task()

    def put(self, answered: list[tuple[int, int, Completion]]) -> None:
        if not answered:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush_soon)
        self._pending.extend(answered)

    def _flush_soon(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            self._error = exc
            if self._task is not None:
                self._task.cancel()

    def flush(self) -> None:
        if self._pending and self._error is None:
            batch, self._pending = self._pending, []
            self._on_result(batch)

    @property
    def failed(self) -> bool:
        return self._error is not None

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error


def _runner() -> asyncio.Runner:
    """An event loop for one ``complete`` call: uvloop where installed (less CPU per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
