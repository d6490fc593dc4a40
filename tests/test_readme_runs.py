"""The README's documented runs, exactly as written: the `-S` sets of "The paper's math run" and its tiny
version go through DVC's own override code (what `dvc exp run -S` does) onto params.yaml and must give valid
params; the tiny run's sources and every shipped benchmark entry of the README's table must load with the
questions they promise. (The tiny run itself is run end to end by hand: its figures are in the README.)"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import PARAMS_PATH, ROOT

from adacot.config import BenchmarkParams, Params, load_params
from adacot.pools import build_pool_and_benchmarks
from adacot.sources import load_source

README = (ROOT / "README.md").read_text()


def readme_block(name: str) -> list[list[str]]:
    """The commands (as argv lists) of the bash block after ``<!-- readme-test: name -->``."""
    match = re.search(rf"<!-- readme-test: {name} -->\n```bash\n(.*?)```", README, re.S)
    assert match, f"README has no block marked readme-test: {name}"
    text = match.group(1).replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in text.splitlines() if line.strip()]


def params_after(argv: list[str], tmp_path: Path) -> Params:
    """params.yaml as `dvc exp run` leaves it for this command: its -S values applied by DVC's own code."""
    from dvc.utils.hydra import apply_overrides

    assert argv[:3] == ["dvc", "exp", "run"], argv
    overrides = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-S"]
    assert overrides
    path = tmp_path / "params.yaml"
    shutil.copy(PARAMS_PATH, path)
    apply_overrides(path, overrides)
    return load_params(path)


def test_the_paper_math_run_gives_the_papers_protocol(tmp_path: Path) -> None:
    (command,) = readme_block("paper-math")
    params = params_after(command, tmp_path)
    by_name = {b.name: b for b in params.benchmarks}
    assert sorted(by_name) == ["aime24", "math500"]
    assert (by_name["aime24"].samples, by_name["math500"].samples) == (64, 4)
    assert (params.evaluate.temperature, params.evaluate.top_p, params.evaluate.max_tokens) == (0.6, 0.95, 32768)
    assert params.teacher.backend == "openai" and params.api.api_key_env == "DEEPSEEK_API_KEY"
    assert [s.gold for s in params.pool.sources] == ["latex"] and params.sample.size == 2000


def test_the_tiny_math_run_loads_its_pool_and_benchmarks(tmp_path: Path) -> None:
    command, diff = readme_block("math-tiny")
    assert diff == ["dvc", "metrics", "diff"]
    params = params_after(command, tmp_path)
    pool_sources = [load_source(s, params.seed, "pool") for s in params.pool.sources]
    bench_sources = [load_source(b, params.seed, "test") for b in params.benchmarks]
    pool, _, rejects, metrics = build_pool_and_benchmarks(
        pool_sources, bench_sources, ngram=params.pool.decontam_ngram, min_overlap=params.pool.decontam_min_overlap
    )
    assert metrics["benchmark_questions"] == {"aime24": 5, "math500": 10}
    assert 30 <= pool.height <= 40 and set(pool["source"]) == {"math_train"}
    assert pool["solution"].null_count() == 0
    assert rejects.height == 40 - pool.height


def _table_entries() -> dict[str, dict[str, object]]:
    section = README.split("## Benchmarks and the evaluation protocol", 1)[1].split("\n\n", 3)[2]
    rows = re.findall(r"^\| (\w+) \| `(\{.*?\})`", section, re.M)
    return {name: yaml.safe_load(entry) for name, entry in rows}


SHIPPED = {"gsm8k_test": 1319, "synthetic_heldout": 30, "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40}


def test_the_readme_lists_every_shipped_benchmark() -> None:
    assert sorted(_table_entries()) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_benchmark_loads_every_row(name: str) -> None:
    spec = BenchmarkParams.model_validate(_table_entries()[name])
    spec = spec.model_copy(update={"path": str(ROOT / spec.path)}) if spec.path else spec
    loaded = load_source(spec, 0, "test")
    assert loaded.questions.height == SHIPPED[name] and loaded.rejects.height == 0
    assert loaded.questions["question_id"].n_unique() == SHIPPED[name]


def test_the_math_benchmarks_golds_are_all_gradable() -> None:
    entries = _table_entries()
    specs = [BenchmarkParams.model_validate(entries[n]) for n in ("math500", "aime24", "aime25", "amc23")]
    loaded = [load_source(s.model_copy(update={"path": str(ROOT / (s.path or ""))}), 0, "test") for s in specs]
    pool = [load_source(load_params(PARAMS_PATH).pool.sources[1], 0, "pool")]
    _, bench, rejects, _ = build_pool_and_benchmarks(pool, loaded, ngram=8, verify_workers=2)
    assert rejects.height == 0 and bench.height == 600


def test_the_pool_sources_example_is_valid_params() -> None:
    section = README.split("## Your own questions: `pool.sources`", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block
    from adacot.config import PoolParams

    pool = PoolParams.model_validate(yaml.safe_load(block.group(1))["pool"])
    assert [(s.name, s.kind) for s in pool.sources] == [
        ("numina", "file"),
        ("hub_pool", "hub"),
        ("synthetic", "synthetic"),
    ]
    assert pool.sources[0].fields.id == "uid" and pool.sources[0].gold == "latex"


def _make_variable(name: str) -> str:
    """A variable of the Makefile, continuation lines joined."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name} \?= (.*)$", text, re.M)
    assert match, f"Makefile has no {name}"
    return match.group(1)


def test_the_code_run_is_the_make_target_and_loads_the_code_sources(tmp_path: Path) -> None:
    # README block: `make repro-code` and the `dvc exp run` it stands for; the Makefile runs exactly those -S.
    make, spelled_out, _show = readme_block("code")
    assert make == ["make", "repro-code"]
    assert spelled_out[:3] == ["dvc", "exp", "run"]
    assert spelled_out[3:] == shlex.split(_make_variable("CODE_PARAMS"))
    assert "dvc exp run $(CODE_PARAMS)" in (ROOT / "Makefile").read_text()
    params = params_after(spelled_out, tmp_path)
    assert params.domain == "code" and params.grade.max_tokens >= 256
    from adacot.config import in_domain
    from adacot.verify.code import Limits

    pool_sources = [load_source(s, params.seed, "pool") for s in in_domain(params.pool.sources, "code")]
    bench_sources = [load_source(b, params.seed, "test") for b in in_domain(params.benchmarks, "code")]
    pool, bench, rejects, metrics = build_pool_and_benchmarks(
        pool_sources,
        bench_sources,
        ngram=params.pool.decontam_ngram,
        min_overlap=params.pool.decontam_min_overlap,
        domain="code",
        sandbox=Limits.from_params(params.verify.sandbox),
        sandbox_workers=2,
    )
    # MBPP's references pass their own tests in the sandbox: nothing is rejected.
    assert rejects.height == 0
    assert set(pool["source"]) == {"mbpp"} and pool.height == in_domain(params.pool.sources, "code")[0].limit
    assert set(metrics["benchmark_questions"]) == {"humaneval", "mbpp_test"}
    assert all(601 <= int(q.rsplit("-", 1)[1]) <= 974 for q in pool["question_id"])
    mbpp_test = bench.filter(bench["benchmark"] == "mbpp_test")["question_id"]
    assert all(11 <= int(q.rsplit("-", 1)[1]) <= 510 for q in mbpp_test)
