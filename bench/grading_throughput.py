"""Bench: the grading stage's useful tokens/s against raw ``vllm.LLM`` generation on the same prompts.

Both run in one process on one engine (the bundled model, engine params from params.yaml), so the ratio
is measured side by side: raw = ``LLM.chat`` with ``SamplingParams(n=k)`` on the rendered prompts;
adacot = ``grading.grade_attempts`` (response cache on an empty temp dir, batching, verification in
worker processes included). Useful tokens = completion tokens of the attempts. Target ratio >= 0.9.

Usage: python bench/grading_throughput.py [--questions 48] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from adacot.config import load_params
from adacot.grading import grade_attempts
from adacot.llm import ResponseCache, Sampling
from adacot.llm.vllm_backend import VllmChatModel
from adacot.models import prepare_model, read_model_info, resolve_weights
from adacot.pools import generate_synthetic
from adacot.stageio import load_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=48, help="questions (spread over 5 tiers)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating raw/adacot rounds")
    args = parser.parse_args()
    params = load_params(Path("params.yaml"))
    prompts = load_prompts("prompts/math.yaml")
    model_dir = Path("models/base")
    tmp = Path(tempfile.mkdtemp(prefix="adacot-bench-"))
    if not (model_dir / "adacot_model.json").is_file():
        model_dir = tmp / "base"
        prepare_model("bundled", model_dir)
    model = VllmChatModel(resolve_weights(model_dir), read_model_info(model_dir).model_id, params.engine, params.seed)
    from vllm import SamplingParams

    g = params.grade
    questions = generate_synthetic(max(1, args.questions // 5), params.seed, "bench")
    conversations = [list(prompts.render("student", q)) for q in questions["question"]]
    raw_params = SamplingParams(n=g.attempts, max_tokens=g.max_tokens, temperature=g.temperature, top_p=g.top_p)
    sampling = Sampling(max_tokens=g.max_tokens, temperature=g.temperature, top_p=g.top_p, seed=params.seed)
    model._llm.chat(conversations[:4], raw_params, use_tqdm=False)  # warm-up
    raw_rates, ours_rates = [], []
    for round_ in range(args.repeats):
        start = time.perf_counter()
        outs = model._llm.chat(conversations, raw_params, use_tqdm=False)
        raw_s = time.perf_counter() - start
        raw_tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
        cache = ResponseCache(tmp / f"cache-{round_}")  # empty: every request is a miss, as in a first run
        start = time.perf_counter()
        table, _ = grade_attempts(
            questions, model, prompts, sampling, g.attempts, params.verify, cache, params.engine.batch_requests
        )
        ours_s = time.perf_counter() - start
        ours_tokens = int(table["completion_tokens"].sum())
        raw_rates.append(raw_tokens / raw_s)
        ours_rates.append(ours_tokens / ours_s)
        print(
            f"round {round_}: raw {raw_tokens} tok in {raw_s:.1f} s = {raw_rates[-1]:.1f} tok/s | "
            f"adacot grading {ours_tokens} tok in {ours_s:.1f} s = {ours_rates[-1]:.1f} tok/s"
        )
    raw, ours = sum(raw_rates) / len(raw_rates), sum(ours_rates) / len(ours_rates)
    print(f"questions={questions.height} k={g.attempts} max_tokens={g.max_tokens} dtype={params.engine.dtype}")
    print(f"raw vllm.LLM: {raw:.1f} useful tok/s; adacot grade_attempts: {ours:.1f} useful tok/s")
    print(f"ratio adacot/raw = {ours / raw:.3f} (target >= 0.9)")
    model.close()


if __name__ == "__main__":
    main()
