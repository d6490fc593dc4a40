"""Bench: generated tokens/s of ``engine.data_parallel_size: 2`` against 1, side by side in one run.

Both engines are open at once on the bundled model (engine params from params.yaml): one replica with
all of ``engine.cpu_threads``, and two replicas with half each (``adacot.llm.vllm_dp``). Rounds alternate
between them on the same requests through ``cached_complete`` with an empty cache (as in a first run), so
a concurrent job on the machine slows both alike. On CPU the ratio is bounded by the cores: two replicas
of one thread against one replica of two threads; on GPUs each replica brings its own devices.
Engine start times are printed too (a replica is a process that imports vLLM and loads the model).

Usage: python bench/vllm_data_parallel.py [--questions 64] [--samples 4] [--max-tokens 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from adacot.config import load_params
from adacot.llm import ResponseCache, Sampling, cached_complete, open_local_model
from adacot.models import prepare_model
from adacot.pools import generate_synthetic
from adacot.stageio import load_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=64, help="questions (spread over 5 tiers)")
    parser.add_argument("--samples", type=int, default=4, help="n samples per question")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="alternating DP=1 / DP=2 rounds")
    args = parser.parse_args()
    params = load_params(Path("params.yaml"))
    prompts = load_prompts("prompts/math.yaml")
    tmp = Path(tempfile.mkdtemp(prefix="adacot-bench-dp-"))
    model_dir = Path("models/base")
    if not (model_dir / "adacot_model.json").is_file():
        model_dir = tmp / "base"
        prepare_model("bundled", model_dir)
    questions = generate_synthetic(max(1, args.questions // 5), params.seed, "bench")
    conversations = [prompts.render("student", q) for q in questions["question"]]
    g = params.grade
    sampling = Sampling(max_tokens=args.max_tokens, temperature=g.temperature, top_p=g.top_p, seed=params.seed)
    engines = {}
    for size in (1, 2):
        start = time.perf_counter()
        engine = params.engine.model_copy(update={"data_parallel_size": size})
        engines[size] = open_local_model(model_dir, engine, params.seed)
        print(f"DP={size}: engine start {time.perf_counter() - start:.1f} s")
    try:
        for model in engines.values():
            model.complete(conversations[:4], sampling, 1)  # warm-up
        rates: dict[int, list[float]] = {1: [], 2: []}
        for round_ in range(args.repeats):
            for size, model in engines.items():
                cache = ResponseCache(tmp / f"cache-{size}-{round_}")  # empty: every request is asked
                start = time.perf_counter()
                rows, stats = cached_complete(
                    model,
                    conversations,
                    sampling,
                    args.samples,
                    cache,
                    batch_requests=params.engine.batch_requests,
                    progress=False,
                )
                seconds = time.perf_counter() - start
                tokens = sum(c.completion_tokens for row in rows for c in row)
                assert stats.misses == len(conversations) * args.samples and len(cache) == stats.misses
                rates[size].append(tokens / seconds)
                print(f"round {round_} DP={size}: {tokens} tok in {seconds:.1f} s = {rates[size][-1]:.1f} tok/s")
    finally:
        for model in engines.values():
            model.close()
    one, two = (sum(rates[s]) / len(rates[s]) for s in (1, 2))
    print(
        f"questions={len(conversations)} n={args.samples} max_tokens={args.max_tokens} "
        f"cpu_threads={params.engine.cpu_threads} dtype={params.engine.dtype}"
    )
    print(f"DP=1: {one:.1f} tok/s; DP=2: {two:.1f} tok/s; ratio DP2/DP1 = {two / one:.2f}")


if __name__ == "__main__":
    main()
