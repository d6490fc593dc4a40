"""Bench: the OpenAI backend's wall time against the ideal on a loopback server with a fixed latency.

A server (tests/openai_fake_server.py) runs in its own process and answers every chat request after a
fixed latency. N requests at concurrency C cannot finish faster than N x latency / C (the ideal); the
ratio wall / ideal is the client's overhead (target <= 1.15). Measured side by side in one run:

- ``raw aiohttp``: one aiohttp session posting the JSON by hand, the floor any Python client can reach;
- ``adacot``: ``OpenAIChatModel.complete`` with the default ``api.transport: aiohttp`` (requests defined by
  the official ``openai`` client, sent by aiohttp, with adacot's retry, balancing and accounting around
  them), which is what the stages use;
- ``adacot + cache``: the same through ``cached_complete`` with the SQLite response cache committing the
  answers of each burst as they arrive (what a stage really pays);
- ``adacot sdk`` (``+ cache``): the same backend with ``api.transport: sdk`` (the SDK's own HTTP stack);
- ``curator`` (optional, ``--curator-python``): bespokelabs-curator in its own interpreter, since it pins
  an older ``openai`` than adacot's.

Every variant first runs a short warm-up (imports and first connections are paid once per process, not
per request); then the rounds are interleaved, so a slow spell of the machine hits every variant. Wall
time is noisy on a small shared machine: the best and the median round are printed, and the client's CPU
time per request, which is steadier.

Usage: python bench/openai_client_overhead.py [--requests 2000] [--concurrency 64] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "openai_fake_server.py"), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        raise RuntimeError(f"server did not start: {url!r}")
    return proc, url


def conversations(n: int, tag: str) -> list[tuple[dict[str, str], ...]]:
    return [({"role": "user", "content": f"{tag} question {i}"},) for i in range(n)]


async def raw_aiohttp(url: str, n: int, concurrency: int) -> float:
    import aiohttp

    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": f"raw question {i}"}], "max_tokens": 16}
            async with gate, session.post(f"{url}/chat/completions", json=body) as response:
                data = await response.json()
                assert data["choices"]

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start


def adacot_run(
    url: str, n: int, concurrency: int, tag: str, cache_dir: Path | None, transport: str = "aiohttp"
) -> float:
    from adacot.config import ApiParams
    from adacot.llm import ResponseCache, Sampling, cached_complete
    from adacot.llm.openai_backend import OpenAIChatModel

    api = ApiParams(
        base_urls=[url],
        api_key_env=None,
        max_concurrency=concurrency,
        request_timeout_s=60,
        max_retries=3,
        backoff_initial_s=0.1,
        backoff_max_s=1,
        requests_per_minute=None,
        tokens_per_minute=None,
        native_n=True,
        transport=transport,
        send_seed=True,
        max_failed_fraction=0.05,
    )
    model = OpenAIChatModel("m", api, None)
    sampling = Sampling(max_tokens=16, temperature=0.7, top_p=0.95, seed=0)
    convs = conversations(n, tag)
    start = time.perf_counter()
    if cache_dir is None:
        out = model.complete(convs, sampling, 1)
    else:
        out, _ = cached_complete(model, convs, sampling, 1, ResponseCache(cache_dir), progress=False)
    wall = time.perf_counter() - start
    assert sum(1 for row in out for c in row if not c.failed) == n, model.stats.as_metrics()
    return wall


def variants(url: str, concurrency: int) -> dict[str, Callable[[int, str], float]]:
    """name -> run(n, tag) returning the wall time; the cache variants get a fresh cache each run."""

    def cached(transport: str) -> Callable[[int, str], float]:
        def run(n: int, tag: str) -> float:
            with tempfile.TemporaryDirectory() as tmp:
                return adacot_run(url, n, concurrency, tag, Path(tmp), transport)

        return run

    return {
        "raw aiohttp": lambda n, tag: asyncio.run(raw_aiohttp(url, n, concurrency)),
        "adacot": lambda n, tag: adacot_run(url, n, concurrency, tag, None, "aiohttp"),
        "adacot + cache": cached("aiohttp"),
        "adacot sdk": lambda n, tag: adacot_run(url, n, concurrency, tag, None, "sdk"),
        "adacot sdk + cache": cached("sdk"),
    }


CURATOR_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from bespokelabs import curator
    url, n, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")
    class Ask(curator.LLM):
        def prompt(self, row):
            return row["q"]
        def parse(self, row, response):
            return {"q": row["q"], "a": response}
    llm = Ask(model_name="m", backend="openai", backend_params={
        "base_url": url, "max_requests_per_minute": 10**7, "max_tokens_per_minute": 10**10,
        "max_concurrent_requests": concurrency, "require_all_responses": False}, generation_params={"max_tokens": 16})
    start = time.perf_counter()
    out = llm([{"q": f"curator question {i} {time.time()}"} for i in range(n)])
    print(time.perf_counter() - start)
""")


def curator_run(python: str, url: str, n: int, concurrency: int) -> float | str:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "curator_bench.py"
        script.write_text(CURATOR_SCRIPT)
        env = {"CURATOR_CACHE_DIR": tmp, "HOME": tmp, "PATH": "/usr/bin:/bin", "CURATOR_DISABLE_CACHE": "true"}
        # Offline: curator counts tokens with tiktoken, whose encoding file litellm ships under its hash name.
        bundled = sorted(
            Path(python).absolute().parents[1].glob("lib/python*/site-packages/litellm/litellm_core_utils/tokenizers")
        )
        if bundled:
            env["TIKTOKEN_CACHE_DIR"] = str(bundled[0])
        done = subprocess.run(
            [python, str(script), url, str(n), str(concurrency)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=600,
        )
        if done.returncode != 0:
            return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per variant")
    parser.add_argument("--curator-python", help="an interpreter with bespokelabs-curator installed")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    ideal = args.requests * args.latency / args.concurrency
    proc, url = start_server(args.latency)
    runs = variants(url, args.concurrency)
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    curator: float | str | None = None
    try:
        for name, run in runs.items():
            run(args.concurrency * 2, f"warm-{name}")
        for r in range(args.repeats):
            for name, run in runs.items():
                cpu_start = time.process_time()
                walls[name].append(run(args.requests, f"{name}-{r}-{time.time()}"))
                cpu[name].append((time.process_time() - cpu_start) / args.requests)
        if args.curator_python:
            curator = curator_run(args.curator_python, url, args.requests, args.concurrency)
    finally:
        proc.terminate()
        proc.wait()
    print(
        f"{args.requests} requests, concurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms; "
        f"ideal {ideal:.2f} s; {args.repeats} interleaved rounds"
    )
    print(f"  {'':20s} {'best':>7s} {'median':>7s}  {'client CPU/request':>18s}  rounds (x ideal)")
    summary: dict[str, object] = {
        "ideal_s": ideal,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "rounds": args.repeats,
    }
    for name, times in walls.items():
        best, median = min(times), statistics.median(times)
        cpu_us = statistics.median(cpu[name]) * 1e6
        summary[name] = {
            "wall_s": best,
            "ratio": best / ideal,
            "median_ratio": median / ideal,
            "rounds": [t / ideal for t in times],
            "client_cpu_us_per_request": cpu_us,
        }
        print(
            f"  {name:20s} {best / ideal:6.3f}x {median / ideal:6.3f}x  {cpu_us:15.0f} us  "
            f"{', '.join(f'{t / ideal:.2f}' for t in times)}"
        )
    if curator is not None:
        if isinstance(curator, float):
            summary["curator"] = {"wall_s": curator, "ratio": curator / ideal}
            print(f"  {'curator':20s} {curator / ideal:6.3f}x   (one round)")
        else:
            summary["curator"] = curator
            print(f"  curator              {curator}")
    print("target: <= 1.15x ideal")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
