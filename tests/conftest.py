"""Shared test helpers: a scripted ``ChatModel`` fake, the real params as a mutable dict, the real prompts.

Nothing here loads a model; the fake answers from a script so tests can control every verdict.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from adacot.config import EngineParams, LevelsParams, Params, VerifyParams, parse_params
from adacot.llm.base import Completion, Conversation, Sampling
from adacot.prompts import PromptSet
from adacot.stageio import load_prompts

ROOT = Path(__file__).resolve().parents[1]
PARAMS_PATH = ROOT / "params.yaml"
PROMPTS_PATH = ROOT / "prompts" / "math.yaml"
# The field map of a GPQA-style multiple-choice file (tests/fixtures/gpqa_like.jsonl and test_sources' rows).
GPQA_FIELDS = {
    "id": "id",
    "question": "Question",
    "answer": "Correct Answer",
    "options": ["Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"],
}

# Property tests must not depend on machine load (no deadlines) nor leave an example database behind.
settings.register_profile("adacot", deadline=None, database=None)
settings.load_profile("adacot")

# A scripted answer: the text alone (finish_reason "stop") or (text, finish_reason).
Answer = str | tuple[str, str]
Script = dict[str, Sequence[Answer]] | Callable[[str, int], Answer]


class FakeChatModel:
    """A ``ChatModel`` that answers from a script instead of a model.

    ``script`` is either a dict from question text to the answers for sample 0, 1, 2, ... (the question
    is found as a substring of the last user message, so it works with any prompt template), or a
    callable ``(user_message, sample_number) -> answer``. The sample number counts every answer given
    for that conversation so far, across calls, so asking again for missing samples continues the
    script instead of repeating it. ``fail_on_call`` makes the n-th ``complete`` call (1-based) raise,
    to simulate a crash mid-run.
    """

    def __init__(
        self, script: Script, model_id: str = "fake-model@0123456789abcdef", fail_on_call: int | None = None
    ) -> None:
        self._script = script
        self._model_id = model_id
        self._fail_on_call = fail_on_call
        self._served: dict[str, int] = {}
        self.calls: list[tuple[int, int]] = []  # (conversations, n) per complete() call
        self.asked: list[tuple[str, int]] = []  # (user message, n) per conversation asked
        self.requests = 0  # conversations x n over all calls
        self.closed = False

    @property
    def model_id(self) -> str:
        return self._model_id

    def _answer(self, user: str, number: int) -> Answer:
        if callable(self._script):
            return self._script(user, number)
        matches = [q for q in self._script if q in user]
        if len(matches) != 1:
            raise KeyError(f"the fake's script has {len(matches)} entries matching {user!r}")
        answers = self._script[matches[0]]
        if number >= len(answers):
            raise KeyError(f"the fake's script has only {len(answers)} answers for {matches[0]!r}")
        return answers[number]

    def complete(self, conversations: Sequence[Conversation], sampling: Sampling, n: int) -> list[list[Completion]]:
        self.calls.append((len(conversations), n))
        if self._fail_on_call is not None and len(self.calls) == self._fail_on_call:
            raise RuntimeError(f"simulated crash in call {len(self.calls)}")
        results: list[list[Completion]] = []
        for conversation in conversations:
            user = [m["content"] for m in conversation if m["role"] == "user"][-1]
            key = json.dumps(list(conversation), sort_keys=True)
            start = self._served.get(key, 0)
            self._served[key] = start + n
            self.asked.append((user, n))
            self.requests += n
            prompt_tokens = sum(len(m["content"].split()) + 4 for m in conversation)
            row = []
            for number in range(start, start + n):
                answer = self._answer(user, number)
                text, finish = (answer, "stop") if isinstance(answer, str) else answer
                # A truncated answer used the whole budget; a finished one its words plus the stop token.
                tokens = sampling.max_tokens if finish == "length" else min(len(text.split()) + 1, sampling.max_tokens)
                row.append(
                    Completion(
                        text=text,
                        finish_reason=finish,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=tokens,
                        model_id=self._model_id,
                    )
                )
            results.append(row)
        return results

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def params_raw() -> dict[str, Any]:
    """The real params.yaml as a plain dict; a fresh deep copy per test, so tests may mutate it."""
    return copy.deepcopy(_RAW_PARAMS)


@pytest.fixture
def params(params_raw: dict[str, Any]) -> Params:
    """The real params, validated."""
    return parse_params(params_raw)


@pytest.fixture
def verify_params(params: Params) -> VerifyParams:
    """The real verify params with one inline worker: no process pool in unit tests."""
    return params.verify.model_copy(update={"workers": 1})


@pytest.fixture(scope="session")
def prompts() -> PromptSet:
    """The real math prompt set."""
    return load_prompts(PROMPTS_PATH)


@pytest.fixture
def sampling() -> Sampling:
    return Sampling(max_tokens=64, temperature=0.7, top_p=0.95, seed=0)


_RAW_PARAMS: dict[str, Any] = yaml.safe_load(PARAMS_PATH.read_text())


@pytest.fixture(scope="session", autouse=True)
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One machine-local models dir for the whole session, never the user's ~/.cache: the bundled model is
    converted once into it (~20 s) and every test, and every DVC project a test runs (they inherit the
    environment, whatever HOME they set), finds it there."""
    folder = tmp_path_factory.mktemp("models-dir")
    saved = os.environ.get("ADACOT_MODELS_DIR")
    os.environ["ADACOT_MODELS_DIR"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("ADACOT_MODELS_DIR", None)
    else:
        os.environ["ADACOT_MODELS_DIR"] = saved


@pytest.fixture(scope="session")
def base_record(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Path:
    """``models/base`` as prepare_model writes it for the bundled model: a record, the weights in models_dir."""
    from adacot.models import prepare_model

    out = tmp_path_factory.mktemp("model") / "base"
    prepare_model("bundled", out)
    return out


@pytest.fixture(scope="session")
def base_model(base_record: Path) -> Path:
    """The bundled model's HF folder (converted once per test session, about 20-50 s)."""
    from adacot.models import resolve_weights

    return resolve_weights(base_record)


def engine_params(backend: str, max_model_len: int = 1024) -> EngineParams:
    """Engine settings for tests that load the bundled model on CPU (small KV cache, no compile)."""
    return EngineParams(
        backend=backend,
        dtype="float32",
        max_model_len=max_model_len,
        enforce_eager=True,
        in_process=True,
        batch_requests=64,
        cpu_kvcache_space_gib=1,
        block_size="auto",
        cpu_threads=2,
        gpu_memory_utilization=0.9,
        tensor_parallel_size=1,
        pipeline_parallel_size=1,
        distributed_executor_backend=None,
        data_parallel_size=1,
    )


# A fixed level rule (not params.yaml's, which users tune), so level tables test the mechanism.
BAND_RULE = LevelsParams(
    rule="pass_rate_bands",
    solved_pass_rate=0.75,
    min_pass_rate={"medium": 0.5, "hard": 0.25, "very_hard": 0.01},
    edges="quantile",
    min_score={"medium": 0.75, "hard": 0.5, "very_hard": 0.25},
    aggregate="min",
    score_attempt="best",
)


def write_teacher_sample(path: Path, questions: Any) -> None:
    """``questions`` (rows of a pool table) as a sample_questions output, every one at level extreme: the
    input the teacher stage reads, for the drills that run its script on its own."""
    import polars as pl

    from adacot.schemas import SAMPLE, conform, write_table

    frame = questions.with_columns(
        attempts=pl.lit(2, pl.Int32),
        correct=pl.lit(0, pl.Int32),
        pass_rate=pl.lit(0.0),
        prm_score=pl.lit(0.1),
        tests_passed_share=pl.lit(None, pl.Float64),
        level=pl.lit("extreme"),
        grader_version=pl.lit("test"),
        completion_tokens=pl.lit(0, pl.Int64),
        target_share=pl.lit(1.0),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(conform(frame, SAMPLE, "sample"), SAMPLE, path)
