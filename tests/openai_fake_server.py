"""A fault-injecting OpenAI-compatible chat server on loopback, for tests and ``bench/``.

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` like an OpenAI-compatible server, after a
fixed latency, and can inject the failures real APIs show: 429 with ``Retry-After``, 500s, answers slower
than the client's timeout, empty 200 bodies and dropped connections, each at a set rate (seeded), and
it can die: after ``die_after`` answers it drops every connection until ``die_after`` is cleared (a server
killed mid-stage, then started again). It can refuse ``n > 1``, send DeepSeek-style
``reasoning_content``, demand a bearer key, and keep every request body (``record_bodies``). It counts
what it did, and in particular how many times it *delivered* an answer to each distinct request
(messages, n, seed), so a test can show that no answered request was ever sent again, and the tokens it
billed in the answers it delivered (``usage``), so a test can price what was actually spent.

Not a model: the answer text comes from a function of the last user message and the sample number.
Run as a script (``python tests/openai_fake_server.py --latency 0.05``) it serves in its own process and
prints its base URL; the benchmark uses that so the server does not share the client's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

Answer = Callable[[str, int], str]


def judge_p_yes(user: str) -> float:
    """The scripted judge's P(Yes) for a prompt: a fixed value in [0.05, 0.95] from its hash."""
    return 0.05 + 0.9 * (int(hashlib.sha256(user.encode()).hexdigest()[:8], 16) % 1000) / 999


def first_token_logprobs(user: str, top: int) -> dict[str, object]:
    """The first token's top logprobs as the OpenAI API sends them: Yes / no spellings and a distractor."""
    p_yes = judge_p_yes(user)
    spread = [("Yes", 0.6 * p_yes), (" yes", 0.3 * p_yes), ("No", 0.9 * (1 - p_yes)), ("Maybe", 0.1)]
    items = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in spread][: max(top, 1)]
    return {"token": items[0]["token"], "logprob": items[0]["logprob"], "top_logprobs": items}


def default_answer(user: str, sample: int) -> str:
    return f"Working it out step by step. The answer is \\boxed{{{sample}}}."


@dataclass
class Faults:
    """Per-request probabilities of each failure; the rest are answered normally."""

    rate_limited: float = 0.0  # 429 with Retry-After
    server_error: float = 0.0  # 500
    slow: float = 0.0  # answer after ``slow_s`` (longer than the client's timeout)
    empty: float = 0.0  # 200 with an empty body
    drop: float = 0.0  # close the connection without answering
    retry_after_s: float = 0.05
    slow_s: float = 2.0


class FakeOpenAIServer:
    """Serve on 127.0.0.1 in a background thread (``start``/``stop`` or a ``with`` block)."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        faults: Faults | None = None,
        answer: Answer = default_answer,
        supports_n: bool = True,
        model: str = "fake-teacher",
        reasoning: bool = False,
        api_key: str | None = None,
        seed: int = 0,
        port: int = 0,
        logprobs: bool = True,
        die_after: int | None = None,
        record_bodies: bool = False,
    ) -> None:
        self.latency_s = latency_s
        self.faults = faults or Faults()
        self.answer = answer
        self.supports_n = supports_n
        self.model = model
        self.reasoning = reasoning
        self.api_key = api_key
        self.port = port
        self.logprobs = logprobs  # False: like deepseek-reasoner, top_logprobs are never returned
        self.die_after = die_after  # answers delivered before the server "dies"; None = never (set it back to revive)
        self.record_bodies = record_bodies
        self.bodies: list[dict] = []  # every chat request body received, when record_bodies
        self._rng = random.Random(seed)
        self.outcomes: Counter[str] = Counter()  # what each HTTP request got
        self.delivered: Counter[str] = Counter()  # request key -> answers delivered
        self.deliveries: list[tuple[float, str, int]] = []  # (monotonic time, request key, client port) of each
        self.in_flight = 0  # chat requests received and not yet answered, failed or abandoned
        self.usage: Counter[str] = Counter()  # prompt_tokens, completion_tokens and choices of delivered answers
        self.seen_auth: set[str] = set()
        self.seen_user_agents: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

    async def start_async(self) -> None:
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start_async())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- counts ---------------------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())

    @property
    def answered(self) -> int:
        return self.outcomes["answered"]

    def repeated_answers(self) -> dict[str, int]:
        """Request keys whose answer was delivered more than once (should be empty)."""
        return {k: v for k, v in self.delivered.items() if v > 1}

    # -- handlers -------------------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await self._chat_once(request)
        finally:
            self.in_flight -= 1

    async def _chat_once(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        self.seen_auth.add(auth)
        self.seen_user_agents.add(request.headers.get("User-Agent", ""))
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            self.outcomes["unauthorized"] += 1
            return web.json_response({"error": {"message": "invalid api key", "type": "auth"}}, status=401)
        body = await request.json()
        if self.record_bodies:
            self.bodies.append(body)
        if self._dead():
            return self._die(request)
        n = int(body.get("n") or 1)
        if n > 1 and not self.supports_n:
            self.outcomes["refused_n"] += 1
            return web.json_response(
                {"error": {"message": "n must be 1 on this server", "type": "invalid"}}, status=400
            )
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        f = self.faults
        roll = self._rng.random()
        for name, rate in (
            ("rate_limited", f.rate_limited),
            ("server_error", f.server_error),
            ("slow", f.slow),
            ("empty", f.empty),
            ("drop", f.drop),
        ):
            if roll < rate:
                return await self._fault(name, request, body, n)
            roll -= rate
        if request.transport is None or request.transport.is_closing():
            # The client went away while we "thought" (killed, or timed out): nothing is delivered.
            self.outcomes["abandoned"] += 1
            raise asyncio.CancelledError
        if self._dead():  # died while this request waited: exactly ``die_after`` answers get out
            return self._die(request)
        return self._deliver(request, body, n, "answered")

    def _dead(self) -> bool:
        return self.die_after is not None and self.answered >= self.die_after

    def _die(self, request: web.Request) -> web.StreamResponse:
        self.outcomes["dead"] += 1
        if request.transport is not None:
            request.transport.abort()  # like a killed process: the connection just goes away
        raise asyncio.CancelledError

    async def _fault(self, name: str, request: web.Request, body: dict, n: int) -> web.StreamResponse:
        if name == "rate_limited":
            self.outcomes[name] += 1
            return web.json_response(
                {"error": {"message": "slow down", "type": "rate_limit"}},
                status=429,
                headers={"Retry-After": str(self.faults.retry_after_s)},
            )
        if name == "server_error":
            self.outcomes[name] += 1
            return web.json_response({"error": {"message": "internal error", "type": "server"}}, status=500)
        if name == "empty":
            self.outcomes[name] += 1
            return web.Response(status=200, body=b"", content_type="application/json")
        if name == "drop":
            self.outcomes[name] += 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing more is sent on a dropped connection
        # slow: answer only after the client has given up; delivered only if it is somehow still there
        await asyncio.sleep(self.faults.slow_s)
        if request.transport is None or request.transport.is_closing():
            self.outcomes["slow_abandoned"] += 1
            raise asyncio.CancelledError
        return self._deliver(request, body, n, "answered")

    def _deliver(self, request: web.Request, body: dict, n: int, outcome: str) -> web.Response:
        messages = body.get("messages") or []
        key = hashlib.sha256(json.dumps([messages, n, body.get("seed")], sort_keys=True).encode()).hexdigest()
        self.outcomes[outcome] += 1
        self.delivered[key] += 1
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.deliveries.append((time.monotonic(), key, int(peer[1]) if peer else 0))
        user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        seed = int(body.get("seed") or 0)
        choices, completion_tokens, reasoning_tokens = [], 0, 0
        for i in range(n):
            text = self.answer(user, seed + i)
            message: dict[str, str] = {"role": "assistant", "content": text}
            completion_tokens += len(text.split())
            if self.reasoning:
                thought = f"Let me think about sample {seed + i}."
                message["reasoning_content"] = thought
                reasoning_tokens += len(thought.split())
                completion_tokens += len(thought.split())
            choice: dict[str, object] = {"index": i, "message": message, "finish_reason": "stop"}
            if body.get("logprobs") and self.logprobs:
                choice["logprobs"] = {"content": [first_token_logprobs(user, int(body.get("top_logprobs") or 0))]}
            choices.append(choice)
        self.usage.update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, choices=n)
        return web.json_response(
            {
                "id": f"chatcmpl-{key[:12]}",
                "object": "chat.completion",
                "created": 0,
                "model": self.model,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
                },
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each answer")
    args = parser.parse_args()
    server = FakeOpenAIServer(latency_s=args.latency, port=args.port)

    async def serve() -> None:
        await server.start_async()
        print(server.base_url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
