"""transformers ``generate`` behind the ``ChatModel`` protocol: the fallback when vLLM is not installed.

Slower than vLLM (no paged attention or continuous batching) but dependency-light; it batches
conversations with left padding and samples ``n`` return sequences each. Not tuned for throughput.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adacot.config import EngineParams
from adacot.llm.base import Completion, Conversation, Sampling
from adacot.llm.logprobs import NO_SPELLINGS, YES_SPELLINGS, single_token_ids, yes_share

logger = logging.getLogger(__name__)


class TransformersChatModel:
    """A local HF folder run with ``AutoModelForCausalLM.generate``."""

    def __init__(self, path: Path, model_id: str, engine: EngineParams, seed: int, batch_size: int = 16) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(engine.cpu_threads)
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        from adacot.llm import resolve_dtype

        # This backend runs on the CPU (it never moves the model to a GPU).
        self.dtype = resolve_dtype(engine.dtype, on_cpu=True)
        self._model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype))
        logger.info("transformers (CPU) for %s: dtype %s (engine.dtype %s)", model_id, self.dtype, engine.dtype)
        self._model.eval()
        self._model_id = model_id
        # Seeded once per engine, like vLLM: reseeding per call would repeat the samples already cached
        # when the cache asks again for the missing sample indices of a conversation.
        torch.manual_seed(seed)
        self._batch_size = batch_size
        self._max_len = engine.max_model_len

    @property
    def model_id(self) -> str:
        return self._model_id

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        torch = self._torch
        results: list[list[Completion]] = []
        eos = self._tokenizer.eos_token_id
        for start in range(0, len(conversations), self._batch_size):
            batch = conversations[start : start + self._batch_size]
            prompts = [
                self._tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True) for c in batch
            ]
            encoded = self._tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            prompt_len = encoded["input_ids"].shape[1]
            with torch.no_grad():
                out = self._model.generate(
                    **encoded,
                    do_sample=sampling.temperature > 0,
                    temperature=sampling.temperature if sampling.temperature > 0 else None,
                    top_p=sampling.top_p,
                    max_new_tokens=min(sampling.max_tokens, self._max_len - prompt_len),
                    num_return_sequences=n,
                    pad_token_id=self._tokenizer.pad_token_id,
                )
            for i in range(len(batch)):
                prompt_tokens = int(encoded["attention_mask"][i].sum())
                row = []
                for j in range(n):
                    new = out[i * n + j, prompt_len:].tolist()
                    stopped = eos in new
                    if stopped:
                        new = new[: new.index(eos)]
                    text = str(self._tokenizer.decode(new, skip_special_tokens=True))
                    row.append(
                        Completion(
                            text=text,
                            finish_reason="stop" if stopped else "length",
                            prompt_tokens=prompt_tokens,
                            completion_tokens=len(new) + (1 if stopped else 0),
                            model_id=self._model_id,
                        )
                    )
                results.append(row)
        return results

    def yes_probability(self, conversations: Sequence[Conversation]) -> list[float]:
        """P(Yes) / (P(Yes) + P(No)) over the next token of each conversation (the generative PRM judge)."""
        torch = self._torch
        yes_ids = self._word_ids(YES_SPELLINGS)
        no_ids = self._word_ids(NO_SPELLINGS)
        scores: list[float] = []
        for start in range(0, len(conversations), self._batch_size):
            batch = conversations[start : start + self._batch_size]
            prompts = [
                self._tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True) for c in batch
            ]
            encoded = self._tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                logits = self._model(**encoded).logits[:, -1, :]  # left padding: the last position is the next token
            probs = torch.softmax(logits.float(), dim=-1)
            for row in probs:
                scores.append(yes_share(float(row[yes_ids].sum()), float(row[no_ids].sum())))
        return scores

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (the single-pass judge builds its prompts as token ids with it)."""
        return self._tokenizer

    def yes_probability_at(
        self, prompts: Sequence[tuple[Sequence[int], Sequence[int]]], batch_tokens: int = 8192
    ) -> list[list[float]]:
        """P(Yes) / (P(Yes) + P(No)) at given positions of token-id prompts, one forward pass per prompt.

        The distribution of the token *at* position p is the final hidden state at p - 1 through the LM head;
        only those rows go through the head, so a long prompt costs one pass, not a vocabulary-wide tensor per
        token. Prompts run in batches of similar length (sorted, right-padded: a causal model's real tokens
        never see the padding after them) of at most ``batch_tokens`` padded tokens. Read over the full
        distribution, as ``yes_probability`` is.
        """
        from adacot.llm.vllm_backend import check_prompts_fit

        torch = self._torch
        if not prompts:
            return []
        check_prompts_fit(prompts, self._max_len)
        yes_ids = self._word_ids(YES_SPELLINGS)
        no_ids = self._word_ids(NO_SPELLINGS)
        head = self._model.get_output_embeddings()
        softcap = getattr(self._model.config, "final_logit_softcapping", None)
        pad = self._tokenizer.pad_token_id
        rows: list[list[float]] = [[] for _ in prompts]
        order = sorted((i for i, (_, at) in enumerate(prompts) if at), key=lambda i: -len(prompts[i][0]))
        while order:
            width = len(prompts[order[0]][0])
            take = max(1, batch_tokens // width)
            batch, order = order[:take], order[take:]
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):
                tokens = list(prompts[i][0])
                ids[r, : len(tokens)] = torch.tensor(tokens)
                mask[r, : len(tokens)] = 1
            which = [(r, p - 1) for r, i in enumerate(batch) for p in prompts[i][1]]
            with torch.no_grad():
                hidden = self._model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
                logits = head(hidden[[r for r, _ in which], [c for _, c in which]]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            probs = torch.softmax(logits, dim=-1)
            shares = iter(yes_share(float(p[yes_ids].sum()), float(p[no_ids].sum())) for p in probs)
            for i in batch:
                rows[i] = [next(shares) for _ in prompts[i][1]]
        return rows

    def _word_ids(self, spellings: Sequence[str]) -> list[int]:
        return single_token_ids(self._tokenizer, spellings)

    def close(self) -> None:
        del self._model
