"""The one protocol every model backend implements, and the records it returns.

A ``ChatModel`` turns chat conversations into ``Completion`` records; stage code only ever sees this
protocol, so tests pass a scripted fake and users swap vLLM, transformers (and later OpenAI-compatible
servers) through params. This module holds no backend and does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

Message = dict[str, str]
Conversation = tuple[Message, ...]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings for one batch of requests; part of every cache key."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int

    def as_key(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Completion:
    """One sampled answer with its accounting."""

    text: str
    finish_reason: str  # "stop" or "length" (as the OpenAI API names them)
    prompt_tokens: int
    completion_tokens: int
    model_id: str
    cached: bool = False


class ChatModel(Protocol):
    """Anything that can sample ``n`` completions for each conversation."""

    @property
    def model_id(self) -> str:
        """Name and weight fingerprint (or served model id): the identity used in cache keys."""
        ...

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        """Return ``n`` completions per conversation, in input order."""
        ...

    def close(self) -> None:
        """Release the engine (processes, memory)."""
        ...
