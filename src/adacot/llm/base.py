"""The one protocol every model backend implements, and the records it returns.

A ``ChatModel`` turns chat conversations into ``Completion`` records; stage code only ever sees this
protocol, so tests pass a scripted fake and users swap vLLM, transformers (and later OpenAI-compatible
servers) through params. This module holds no backend and does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

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
        # The fields as a flat dict (what asdict gives, without its deep copy: this runs once per cache key).
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Completion:
    """One sampled answer with its accounting.

    ``finish_reason`` is "stop" or "length" as the OpenAI API names them, or "error" for a request that
    failed for good (``error`` then says why, ``text`` is empty, and the row is never cached, so a rerun
    asks again). ``model_id`` is the identity in cache keys; ``served_model`` is what the server said it
    ran (remote backends). ``reasoning_tokens`` are counted inside ``completion_tokens``, as the API does.
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model_id: str
    cached: bool = False
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    served_model: str = ""
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.finish_reason == "error"


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


# (conversation_index, sample_offset, completion) for every answer that arrived together.
ResultCallback = Callable[[list[tuple[int, int, Completion]]], None]


@runtime_checkable
class StreamingChatModel(ChatModel, Protocol):
    """A ``ChatModel`` that reports each answer as it arrives (remote APIs answer out of order, over minutes).

    ``complete_streaming`` calls ``on_result([(conversation_index, sample_offset, completion), ...])`` with
    the answers that came back together (within one turn of the event loop), before it waits for more, so
    the caller commits them in one transaction before the next arrive: a crash then loses only requests
    still in flight, never an answered one. ``samples`` names which sample of each conversation the ``n``
    answers are (default ``0..n-1``; a resumed run asks only the missing ones, e.g. ``(1,)``), so each is
    asked with its own seed and never repeats a sample already held; ``sample_offset`` stays ``0..n-1``.
    """

    def complete_streaming(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        n: int,
        on_result: ResultCallback,
        *,
        samples: Sequence[int] | None = None,
    ) -> None: ...
