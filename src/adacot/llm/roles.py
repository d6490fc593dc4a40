"""Models for stage scripts: each role's model opened from params and always closed, and API failures
reported as one-line exits.

Stage scripts use these context managers so that a missing API key, a refused key or a dead server ends
the stage with ``error: ...`` instead of a traceback, and engines are released however the stage ends.
Library functions never call these: they take an open ``ChatModel``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from adacot.config import Params, SamplingParamsSection
from adacot.llm.base import ChatModel, Sampling
from adacot.llm.cache import Price


def sampling_from(section: SamplingParamsSection, seed: int) -> Sampling:
    """The ``Sampling`` record of a params section that has max_tokens, temperature and top_p."""
    return Sampling(max_tokens=section.max_tokens, temperature=section.temperature, top_p=section.top_p, seed=seed)


@contextmanager
def api_errors_as_exit() -> Iterator[None]:
    """A missing API key or a server refusing everything (bad key, unknown model, no logprobs) ends the
    stage with a one-line error instead of a traceback."""
    from adacot.llm import ApiKeyMissing
    from adacot.llm.openai_backend import ApiFatalError

    try:
        yield
    except (ApiKeyMissing, ApiFatalError) as error:
        raise SystemExit(f"error: {error}") from None


@contextmanager
def local_model(
    path: str | Path, params: Params, role: Literal["student", "teacher", "prm", "evaluate"]
) -> Iterator[ChatModel]:
    """Open the HF folder at ``path`` on ``role``'s engine (``Params.role_engine``) and always release it."""
    from adacot.llm import open_local_model

    model = open_local_model(Path(path), params.role_engine(role), params.seed)
    try:
        yield model
    finally:
        model.close()


@contextmanager
def student_model(params: Params, local_path: str | Path) -> Iterator[tuple[ChatModel, Price]]:
    """The student (``open_student_model``) and its price, released at the end; API failures exit in one line."""
    from adacot.llm import open_student_model

    with api_errors_as_exit():
        model, price = open_student_model(params, Path(local_path))
        try:
            yield model, price
        finally:
            model.close()


@contextmanager
def teacher_model(params: Params, base_path: str | Path) -> Iterator[tuple[ChatModel, Price]]:
    """The teacher (``open_teacher_model``) and its price, released at the end; API failures exit in one line."""
    from adacot.llm import open_teacher_model

    with api_errors_as_exit():
        model, price = open_teacher_model(params, Path(base_path))
        try:
            yield model, price
        finally:
            model.close()


@contextmanager
def evaluated_model(params: Params, which: str, local_path: str | Path) -> Iterator[tuple[ChatModel, Price]]:
    """The model evaluation scores (``which``: base or student): the folder at ``local_path`` on the engine,
    or ``evaluate.served_models[which]`` on the ``evaluate.api`` servers; released at the end."""
    from adacot.llm import open_model

    evaluate = params.evaluate
    with api_errors_as_exit():
        model, price = open_model(
            evaluate.backend,
            evaluate.served_models.get(which, ""),  # type: ignore[call-overload]
            params.role_api("evaluate"),
            Path(local_path),
            params.role_engine("evaluate"),
            params.seed,
            params.prices,
        )
        try:
            yield model, price
        finally:
            model.close()
