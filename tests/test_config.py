"""Tests for adacot.config: the real params validate; every bad key fails with a message that names it."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import _RAW_PARAMS as _RAW
from conftest import PARAMS_PATH
from hypothesis import assume, given
from hypothesis import strategies as st

from adacot.config import DistParams, Params, ParamsError, load_params, parse_params
from adacot.vocabulary import LEVELS


def test_real_params_file_validates() -> None:
    params = load_params(PARAMS_PATH)
    assert isinstance(params, Params)
    assert params.dist.source == "weights"
    assert set(params.levels.min_pass_rate) == {"medium", "hard", "very_hard"}
    assert params.grade.attempts >= 1


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        del node[leaf]

    return mutate


def _zero_weights(raw: dict[str, Any]) -> None:
    for level in LEVELS:
        raw["dist"][level] = 0


# (id, mutation, substrings the error message must contain)
BAD_PARAMS: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    ("unknown_top_level", _set("bogus", 1), ["bogus: unknown key", "remove it or fix its spelling"]),
    ("unknown_nested", _set("grade.temprature", 0.5), ["grade.temprature: unknown key"]),
    ("unknown_deep_section", _set("engine.gpu_count", 2), ["engine.gpu_count: unknown key"]),
    ("unknown_level_in_dist", _set("dist.trivial", 0.1), ["dist.trivial: unknown level", "very_hard"]),
    ("missing_top_level", _delete("seed"), ["seed: missing", "add it to params.yaml"]),
    ("missing_section", _delete("verify"), ["verify: missing"]),
    ("missing_nested", _delete("grade.attempts"), ["grade.attempts: missing"]),
    ("missing_dist_from", _delete("dist.from"), ["dist.from: missing"]),
    ("missing_dist_level", _delete("dist.extreme"), ["dist.extreme: missing"]),
    ("negative_weight", _set("dist.hard", -0.2), ["dist weights must be >= 0", "dist.hard"]),
    ("all_zero_weights", _zero_weights, ["all zero", "positive weight"]),
    ("bands_increase", _set("levels.min_pass_rate.hard", 0.7), ["must fall strictly", "0.7"]),
    ("bands_equal", _set("levels.min_pass_rate.hard", 0.6), ["must fall strictly"]),
    ("solved_not_above_medium", _set("levels.solved_pass_rate", 0.6), ["must fall strictly"]),
    ("band_below_zero", _set("levels.min_pass_rate.very_hard", -0.1), ["lie in [0, 1]"]),
    (
        "bands_missing_key",
        _set("levels.min_pass_rate", {"medium": 0.5, "hard": 0.25}),
        ["exactly the keys", "very_hard"],
    ),
    (
        "bands_extra_key",
        _set("levels.min_pass_rate", {"medium": 0.5, "hard": 0.25, "very_hard": 0.01, "extreme": 0}),
        ["exactly the keys", "extreme"],
    ),
    (
        "bands_misspelt_key",
        _set("levels.min_pass_rate", {"medium": 0.5, "hard": 0.25, "veryhard": 0.01}),
        ["exactly the keys", "veryhard"],
    ),
    ("unknown_rule", _set("levels.rule", "process"), ["levels.rule"]),
    ("prm_rule_without_grader", _set("prm.kind", "none"), ["levels.rule=prm needs a PRM grader"]),
    ("unknown_prm_kind", _set("prm.kind", "orm"), ["prm.kind"]),
    (
        "served_discriminative_prm",
        lambda raw: (
            _set("prm.backend", "openai")(raw),
            _set("prm.served_model", "j")(raw),
            _set("prm.kind", "discriminative")(raw),
        ),
        ["prm.kind=discriminative runs on local weights only"],
    ),
    ("served_prm_without_name", _set("prm.backend", "openai"), ["prm.backend=openai needs prm.served_model"]),
    ("role_api_unknown_key", _set("teacher.api", {"base_url": "http://x/v1"}), ["teacher.api.base_url: unknown key"]),
    (
        "role_api_bad_value",
        _set("student.api", {"max_concurrency": 0}),
        ["student.api does not give a valid api section", "student.api.max_concurrency"],
    ),
    ("role_api_bad_url", _set("prm.api", {"base_urls": ["ftp://x"]}), ["prm.api", "must be http(s) URLs"]),
    ("failed_fraction_above_one", _set("api.max_failed_fraction", 1.5), ["api.max_failed_fraction"]),
    (
        "role_failed_fraction_negative",
        _set("teacher.api", {"max_failed_fraction": -0.1}),
        ["teacher.api does not give a valid api section", "teacher.api.max_failed_fraction"],
    ),
    ("missing_send_seed", _delete("api.send_seed"), ["api.send_seed: missing"]),
    ("role_engine_unknown_key", _set("prm.engine", {"max_len": 4096}), ["prm.engine.max_len: unknown key"]),
    (
        "role_engine_bad_value",
        _set("evaluate.engine", {"max_model_len": 0}),
        ["evaluate.engine does not give a valid engine section", "evaluate.engine.max_model_len"],
    ),
    ("role_engine_bad_backend", _set("student.engine", {"backend": "tgi"}), ["student.engine.backend"]),
    ("missing_role_engine", _delete("teacher.engine"), ["teacher.engine: missing"]),
    ("missing_pipeline_parallel", _delete("engine.pipeline_parallel_size"), ["engine.pipeline_parallel_size: missing"]),
    (
        "bad_executor_backend",
        _set("engine.distributed_executor_backend", "slurm"),
        ["engine.distributed_executor_backend"],
    ),
    ("data_parallel_zero", _set("engine.data_parallel_size", 0), ["engine.data_parallel_size"]),
    (
        "data_parallel_on_transformers",
        _set("teacher.engine", {"backend": "transformers", "data_parallel_size": 2}),
        ["teacher.engine does not give a valid engine section", "data_parallel_size > 1 runs vLLM replicas"],
    ),
    (
        "discriminative_prm_data_parallel",
        _set("prm", {**_RAW["prm"], "kind": "discriminative", "engine": {"data_parallel_size": 2}}),
        ["prm.kind=discriminative runs one vLLM pooling engine", "prm.engine.data_parallel_size: 1"],
    ),
    ("send_seed_not_bool", _set("api.send_seed", "sometimes"), ["api.send_seed"]),
    ("unknown_aggregate", _set("levels.aggregate", "max"), ["levels.aggregate"]),
    (
        "min_score_not_falling",
        _set("levels.min_score", {"medium": 0.2, "hard": 0.5, "very_hard": 0.1}),
        ["min_score must fall"],
    ),
    ("unknown_strategy", _set("sample.strategy", "greedy"), ["sample.strategy"]),
    ("unknown_dist_source", _set("dist.from", "pool"), ["dist.from"]),
    ("unknown_shortage_policy", _set("sample.shortage", "maybe"), ["sample.shortage", "'maybe'"]),
    ("zero_attempts", _set("grade.attempts", 0), ["grade.attempts"]),
    ("top_p_above_one", _set("evaluate.top_p", 1.5), ["evaluate.top_p"]),
    ("wrong_type", _set("sample.size", "many"), ["sample.size", "'many'"]),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in BAD_PARAMS], ids=[c[0] for c in BAD_PARAMS])
def test_bad_params_fail_with_clear_message(
    params_raw: dict[str, Any], mutate: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    mutate(params_raw)
    with pytest.raises(ParamsError) as info:
        parse_params(params_raw)
    message = str(info.value)
    assert message.startswith("params.yaml is invalid:")
    for part in expected:
        assert part in message


def test_every_problem_is_listed_at_once(params_raw: dict[str, Any]) -> None:
    params_raw["bogus"] = 1
    del params_raw["grade"]["max_tokens"]
    with pytest.raises(ParamsError) as info:
        parse_params(params_raw)
    assert "bogus: unknown key" in str(info.value)
    assert "grade.max_tokens: missing" in str(info.value)


def test_params_are_immutable(params: Params) -> None:
    with pytest.raises(Exception, match="frozen"):
        params.sample.size = 3  # type: ignore[misc]


def test_load_params_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_load_params_rejects_non_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(path)


def test_real_shares_sum_to_one(params: Params) -> None:
    shares = params.dist.shares()
    assert list(shares) == list(LEVELS)
    assert math.isclose(sum(shares.values()), 1.0)
    assert shares == pytest.approx(params.dist.weights())  # the shipped weights already sum to 1


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=5, max_size=5))
def test_shares_normalize_any_weights(weights: list[float]) -> None:
    assume(sum(weights) > 1e-9)
    dist = DistParams.model_validate({"from": "weights", **dict(zip(LEVELS, weights, strict=True))})
    shares = dist.shares()
    assert math.isclose(sum(shares.values()), 1.0, rel_tol=1e-9)
    assert all(share >= 0 for share in shares.values())
    total = sum(weights)
    for level, weight in zip(LEVELS, weights, strict=True):
        assert shares[level] == pytest.approx(weight / total, rel=1e-9, abs=1e-12)


def test_a_role_engine_overrides_only_its_keys(params_raw: dict[str, Any]) -> None:
    # A 4k-context judge and a 32k evaluation on two replicas, next to the top-level engine.
    params_raw["prm"]["engine"] = {"max_model_len": 4096}
    params_raw["evaluate"]["engine"] = {"max_model_len": 32768, "data_parallel_size": 2, "gpu_memory_utilization": 0.8}
    params = parse_params(params_raw)
    prm = params.role_engine("prm")
    assert prm.max_model_len == 4096
    assert prm.model_dump(exclude={"max_model_len"}) == params.engine.model_dump(exclude={"max_model_len"})
    evaluate = params.role_engine("evaluate")
    assert (evaluate.max_model_len, evaluate.data_parallel_size, evaluate.gpu_memory_utilization) == (32768, 2, 0.8)
    assert evaluate.batch_requests == params.engine.batch_requests  # the rest inherited
    assert params.role_engine("student") == params.engine == params.role_engine("teacher")


def test_a_role_can_use_its_own_servers(params_raw: dict[str, Any]) -> None:
    # Teacher on a paid API, student and judge on a local vLLM server: one params file.
    params_raw["api"] = {**params_raw["api"], "base_urls": ["http://127.0.0.1:8000/v1"], "api_key_env": None}
    params_raw["teacher"]["api"] = {
        "base_urls": ["https://api.deepseek.com/v1"],
        "api_key_env": "DEEPSEEK_API_KEY",
        "max_concurrency": 16,
    }
    params_raw["prm"]["api"] = {"api_key_env": None}  # an explicit null overrides too
    params = parse_params(params_raw)
    teacher = params.role_api("teacher")
    assert teacher.base_urls == ["https://api.deepseek.com/v1"] and teacher.api_key_env == "DEEPSEEK_API_KEY"
    assert teacher.max_concurrency == 16 and teacher.max_retries == params.api.max_retries  # the rest inherited
    assert params.role_api("student") == params.api
    assert params.role_api("prm").api_key_env is None
