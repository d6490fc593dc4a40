"""Bench: the OpenAI backend's wall time against the ideal on a loopback server with a fixed latency.

A server (tests/openai_fake_server.py) runs in its own process and answers every chat request after a
fixed latency. N requests at concurrency C cannot finish faster than N x latency / C (the ideal); the
ratio wall / ideal is the client's overhead (target <= 1.15). Measured side by side in one run:

- ``raw aiohttp``: one aiohttp session posting the JSON by hand, the floor any Python client can reach;
- ``adacot``: ``OpenAIChatModel.complete`` (the official ``openai`` async client on its aiohttp transport,
  with adacot's retry, balancing and accounting around it), which is what the stages use;
- ``adacot + cache``: the same through ``cached_complete`` with an SQLite response cache committing each
  answer as it arrives (what a stage really pays);
- ``adacot aiohttp`` (``+ cache``): the same backend with ``api.transport: aiohttp``, its lean direct path;
- ``curator`` (optional, ``--curator-python``): bespokelabs-curator in its own interpreter, since it pins
  an older ``openai`` than adacot's.

Usage: python bench/openai_client_overhead.py [--requests 2000] [--concurrency 64] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_fake_server.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
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


def adacot_run(url: str, n: int, concurrency: int, tag: str, cache_dir: Path | None, transport: str = "sdk") -> float:
    from adacot.config import ApiParams
    from adacot.llm import ResponseCache, Sampling, cached_complete
    from adacot.llm.openai_backend import OpenAIChatModel

    api = ApiParams(base_urls=[url], api_key_env=None, max_concurrency=concurrency, request_timeout_s=60,
                    max_retries=3, backoff_initial_s=0.1, backoff_max_s=1, requests_per_minute=None,
                    tokens_per_minute=None, native_n=True, transport=transport)
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


CURATOR_SCRIPT = textwrap.dedent('''
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
''')


def curator_run(python: str, url: str, n: int, concurrency: int) -> float | str:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "curator_bench.py"
        script.write_text(CURATOR_SCRIPT)
        env = {"CURATOR_CACHE_DIR": tmp, "HOME": tmp, "PATH": "/usr/bin:/bin", "CURATOR_DISABLE_CACHE": "true"}
        # Offline: curator counts tokens with tiktoken, whose encoding file litellm ships under its hash name.
        bundled = sorted(Path(python).absolute().parents[1].glob("lib/python*/site-packages/litellm/"
                                                                "litellm_core_utils/tokenizers"))
        if bundled:
            env["TIKTOKEN_CACHE_DIR"] = str(bundled[0])
        done = subprocess.run([python, str(script), url, str(n), str(concurrency)], capture_output=True, text=True,
                              env=env, timeout=600)
        if done.returncode != 0:
            return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best of each is reported")
    parser.add_argument("--curator-python", help="an interpreter with bespokelabs-curator installed")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    ideal = args.requests * args.latency / args.concurrency
    proc, url = start_server(args.latency)
    results: dict[str, list[float]] = {"raw aiohttp": [], "adacot": [], "adacot + cache": [],
                                       "adacot aiohttp": [], "adacot aiohttp + cache": []}
    curator: float | str | None = None
    try:
        for r in range(args.repeats):
            results["raw aiohttp"].append(asyncio.run(raw_aiohttp(url, args.requests, args.concurrency)))
            results["adacot"].append(adacot_run(url, args.requests, args.concurrency, f"r{r}", None))
            with tempfile.TemporaryDirectory() as tmp:
                results["adacot + cache"].append(adacot_run(url, args.requests, args.concurrency, f"c{r}", Path(tmp)))
            results["adacot aiohttp"].append(adacot_run(url, args.requests, args.concurrency, f"a{r}", None, "aiohttp"))
            with tempfile.TemporaryDirectory() as tmp:
                results["adacot aiohttp + cache"].append(
                    adacot_run(url, args.requests, args.concurrency, f"ac{r}", Path(tmp), "aiohttp"))
        if args.curator_python:
            curator = curator_run(args.curator_python, url, args.requests, args.concurrency)
    finally:
        proc.terminate()
        proc.wait()
    print(f"{args.requests} requests, concurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms; "
          f"ideal {ideal:.2f} s")
    summary: dict[str, object] = {"ideal_s": ideal}
    for name, walls in results.items():
        best = min(walls)
        summary[name] = {"wall_s": best, "ratio": best / ideal}
        print(f"  {name:22s} {best:6.2f} s  = {best / ideal:.2f}x ideal   (rounds: {', '.join(f'{w:.2f}' for w in walls)})")
    if curator is not None:
        if isinstance(curator, float):
            summary["curator"] = {"wall_s": curator, "ratio": curator / ideal}
            print(f"  {'curator':22s} {curator:6.2f} s  = {curator / ideal:.2f}x ideal")
        else:
            summary["curator"] = curator
            print(f"  curator         {curator}")
    print("target: <= 1.15x ideal")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
