"""The ablation sweep's plan, commands, result reading and table (fast: a scripted `dvc`), and the accuracy
breakdown by level and tier it reads. The sweep run for real through `make ablation` is in
tests/test_ablation_run.py (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from conftest import PARAMS_PATH, ROOT

from adacot.ablation import (
    AblationPlan,
    ablation_table,
    check_experiments,
    experiments,
    level_plot_rows,
    load_plan,
    markdown,
    plot_png,
    queue_states,
    results_by_name,
    run_sweep,
)
from adacot.breakdown import accuracy_breakdown, level_plot_table
from adacot.errors import StageFailure
from adacot.estimate import params_with_overrides
from adacot.stats import mean_and_stderr

PLAN = ROOT / "configs" / "ablation.yaml"


def small_plan(**update: Any) -> AblationPlan:
    raw: dict[str, Any] = {
        "prefix": "t",
        "jobs": 1,
        "seeds": [0, 1],
        "params": {"teacher.backend": "reference", "sample.size": 6},
        "arms": {"adaptive_pc": {"sample.strategy": "adaptive"}, "random": {"sample.strategy": "random"}},
    }
    raw.update(update)
    return AblationPlan.model_validate(raw)


# --- the plan ---------------------------------------------------------------------------------------------


def test_the_shipped_plan_is_three_arms_by_at_least_three_seeds_and_every_experiment_parses() -> None:
    plan = load_plan(PLAN)
    assert set(plan.arms) == {"adaptive_pc", "adaptive_peval", "random"} and len(plan.seeds) >= 3
    exps = experiments(plan)
    assert len(exps) == 3 * len(plan.seeds) and len({e.name for e in exps}) == len(exps)
    check_experiments(exps, PARAMS_PATH)  # raises on any bad key or value
    by_arm = {e.arm: params_with_overrides(PARAMS_PATH, e.overrides) for e in exps if e.seed == plan.seeds[1]}
    assert by_arm["adaptive_pc"].sample.strategy == "adaptive" and by_arm["adaptive_pc"].dist.source == "weights"
    assert by_arm["adaptive_peval"].dist.source == "eval" and by_arm["random"].sample.strategy == "random"
    sizes = {p.sample.size for p in by_arm.values()}
    assert len(sizes) == 1  # equal N
    # Everything upstream of the sample is the same in every experiment: grading runs once.
    shared = {
        arm: p.model_dump(include={"seed", "pool", "benchmarks", "grade", "prm", "levels", "engine", "model"})
        for arm, p in by_arm.items()
    }
    assert shared["adaptive_pc"] == shared["adaptive_peval"] == shared["random"]
    assert {p.seed_of("sample") for p in by_arm.values()} == {plan.seeds[1]}
    assert {p.seed_of("sft") for p in by_arm.values()} == {plan.seeds[1]}
    assert by_arm["random"].teacher.backend == "reference"


@pytest.mark.parametrize(
    ("update", "needle"),
    [
        ({"arms": {"a": {"grade.max_tokens": 9}, "b": {}}}, "grade.max_tokens is not an arm's key"),
        ({"arms": {"a": {"sample.size": 9}, "b": {}}}, "sample.size is not an arm's key"),
        ({"arms": {"a": {"sample.seed": 9}, "b": {}}}, "sample.seed is not an arm's key"),
        ({"arms": {"a": {}}}, "arms"),
        ({"arms": {"A B": {}, "b": {}}}, "arm name"),
        ({"seeds": [1, 1]}, "seeds repeat"),
        ({"seeds": []}, "seeds"),
        ({"params": {"sft.seed": 3}}, "set per experiment"),
        ({"prefix": "Bad Prefix"}, "prefix"),
        ({"jobs": 0}, "jobs"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_plan_fails_naming_the_key(tmp_path: Path, update: dict[str, Any], needle: str) -> None:
    raw = yaml.safe_load(PLAN.read_text()) | update
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(StageFailure, match=r"plan\.yaml") as failure:
        load_plan(path)
    assert needle in str(failure.value)


def test_a_missing_plan_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(StageFailure, match="no ablation plan"):
        load_plan(tmp_path / "nope.yaml")


def test_an_experiment_with_bad_params_fails_before_anything_is_queued() -> None:
    plan = small_plan(params={"sample.size": -3})
    calls: list[list[str]] = []
    with pytest.raises(StageFailure, match=r"experiment t-adaptive-pc-s0: .*sample.size"):
        run_sweep(plan, PARAMS_PATH, lambda argv: calls.append(argv) or "[]")
    assert calls == []
    with pytest.raises(StageFailure, match="t-adaptive-pc-s0"):
        check_experiments(experiments(small_plan(params={"no_such.key": 1})), PARAMS_PATH)


def test_overrides_quote_strings_and_spell_null_and_booleans_for_dvc(tmp_path: Path) -> None:
    plan = small_plan(
        params={
            "sft.accelerate_config": "configs/accelerate/cpu.yaml",
            "sft.lora": True,
            "sft.attn_implementation": None,
            "sft.learning_rate": 0.0005,
        }
    )
    (exp,) = [e for e in experiments(plan) if e.arm == "random" and e.seed == 1]
    assert "sft.accelerate_config='configs/accelerate/cpu.yaml'" in exp.overrides
    assert {"sft.lora=true", "sft.attn_implementation=null", "sft.learning_rate=0.0005"} <= set(exp.overrides)
    assert {"sample.seed=1", "sft.seed=1", "sample.strategy='random'"} <= set(exp.overrides)
    params = params_with_overrides(PARAMS_PATH, exp.overrides)
    assert params.sft.accelerate_config == "configs/accelerate/cpu.yaml" and params.sft.learning_rate == 0.0005
    assert params.sample.strategy == "random" and params.seed_of("sample") == 1


# --- a scripted dvc ---------------------------------------------------------------------------------------


def breakdown_metrics(student: float, base: float = 0.1) -> dict[str, Any]:
    def figures(p: float) -> dict[str, Any]:
        return {
            "pass@1": p,
            "stderr": 0.01,
            "questions": 10,
            "truncation_rate": 0.0,
            "by_level": {"easy": {"pass@1": p + 0.2}, "extreme": {"pass@1": p / 2}},
            "by_generator_tier": {"1": {"pass@1": p + 0.1}},
        }

    return {
        "base": {"bench": figures(base), "all": figures(base)},
        "student": {"bench": figures(student), "all": figures(student)},
    }


def exp_show(results: dict[str, float]) -> list[dict[str, Any]]:
    # The shape of `dvc exp show --json` (DVC 3): baselines, each with experiments holding revs.
    def data(student: float | None) -> dict[str, Any]:
        metrics = {} if student is None else {"metrics/breakdown.json": {"data": breakdown_metrics(student)}}
        metrics["metrics/sample_questions.json"] = {"data": {"effective_quota": {"easy": 2, "medium": 4}}}
        metrics["metrics/train_student.json"] = {"data": {"train_rows": 6}}
        return {"rev": "x", "params": {}, "metrics": metrics}

    return [
        {"rev": "workspace", "name": None, "data": data(None), "experiments": None},
        {
            "rev": "abc",
            "name": "main",
            "data": data(None),
            "experiments": [
                {"name": name, "revs": [{"rev": "r" + name, "name": name, "data": data(p), "experiments": None}]}
                for name, p in results.items()
            ],
        },
    ]


class ScriptedDvc:
    """Answers the dvc commands run_sweep sends: a queue that runs each queued experiment to the given
    outcome (a pass@1, or None: the experiment fails), one status poll later."""

    def __init__(self, outcomes: dict[str, float | None], finished: dict[str, float] | None = None) -> None:
        self.outcomes = outcomes
        self.finished = dict(finished or {})
        self.queued: list[str] = []
        self.failed: list[str] = []
        self.calls: list[list[str]] = []
        self.polls = 0

    def __call__(self, argv: list[str]) -> str:
        self.calls.append(argv)
        if argv[:2] == ["exp", "show"]:
            return json.dumps(exp_show(self.finished))
        if argv[:3] == ["exp", "run", "--queue"]:
            self.queued.append(argv[argv.index("-n") + 1])
            return ""
        if argv[:2] == ["queue", "status"]:
            self.polls += 1
            lines = ["Task     Name     Created    Status"]
            if self.polls > 1:  # the workers ran everything
                for name in self.queued:
                    outcome = self.outcomes[name]
                    if outcome is None:
                        self.failed.append(name)
                    else:
                        self.finished[name] = outcome
                self.queued = []
            lines += [f"1a2b3c4  {n}  10:00 AM   Queued" for n in self.queued]
            lines += [f"5d6e7f8  {n}  10:00 AM   Failed" for n in self.failed]
            lines += [f"9a9b9c9  {n}  10:00 AM   Success" for n in self.finished]
            return "\n".join(lines) + "\n"
        return ""


def test_the_sweep_queues_every_experiment_runs_the_queue_and_reads_every_result() -> None:
    plan = small_plan()
    names = [e.name for e in experiments(plan)]
    dvc = ScriptedDvc(dict.fromkeys(names, 0.3))
    results = run_sweep(plan, PARAMS_PATH, dvc, sleep=lambda _: None, rev="abc123")
    assert sorted(results) == sorted(names)
    # Results are read under the commit the experiments were queued on, even if HEAD moved meanwhile.
    assert dvc.calls[-1] == ["exp", "show", "--json", "--rev", "abc123"]
    queued = [c for c in dvc.calls if c[:3] == ["exp", "run", "--queue"]]
    assert [c[c.index("-n") + 1] for c in queued] == names
    assert ["queue", "start", "-j", "1"] in dvc.calls
    first = queued[0]
    assert first[first.index("-S") :].count("-S") == len(experiments(plan)[0].overrides)


def test_a_rerun_queues_only_what_has_no_result_and_a_failure_names_the_experiment() -> None:
    plan = small_plan()
    names = [e.name for e in experiments(plan)]
    outcomes: dict[str, float | None] = dict.fromkeys(names, 0.3)
    outcomes[names[1]] = None
    dvc = ScriptedDvc(outcomes, finished={names[0]: 0.3})
    with pytest.raises(StageFailure, match=rf"1 experiment\(s\) failed: {names[1]}"):
        run_sweep(plan, PARAMS_PATH, dvc, sleep=lambda _: None)
    assert [c[c.index("-n") + 1] for c in dvc.calls if c[:3] == ["exp", "run", "--queue"]] == names[1:]
    # The rerun: the failed entry is removed from the queue and queued again; nothing else is.
    dvc.outcomes[names[1]] = 0.4
    dvc.calls.clear()
    results = run_sweep(plan, PARAMS_PATH, dvc, sleep=lambda _: None)
    assert sorted(results) == sorted(names)
    assert ["queue", "remove", names[1]] in dvc.calls
    assert [c[c.index("-n") + 1] for c in dvc.calls if c[:3] == ["exp", "run", "--queue"]] == [names[1]]
    # Everything done: nothing queued, the queue not started.
    dvc.calls.clear()
    run_sweep(plan, PARAMS_PATH, dvc, sleep=lambda _: None)
    assert not [c for c in dvc.calls if c[0] == "queue"]


def test_queue_states_reads_dvc_queue_status_lines() -> None:
    status = (
        "Task     Name        Created    Status\n0f1e2d3  t-a-s0  01:02 PM   Running\n"
        "9e8d7c6  t-a-s1  01:02 PM   Queued\n1234567  other  01:00 PM   Failed\n"
    )
    assert queue_states(status, ["t-a-s0", "t-a-s1", "t-a-s2"]) == {"t-a-s0": "Running", "t-a-s1": "Queued"}


def test_results_by_name_skips_experiments_without_a_breakdown() -> None:
    show = exp_show({"t-random-s0": 0.5})
    show[1]["experiments"].append({"name": "t-random-s1", "revs": [{"name": "t-random-s1", "data": {"metrics": {}}}]})
    assert list(results_by_name(show, ["t-random-s0", "t-random-s1"])) == ["t-random-s0"]


# --- the table --------------------------------------------------------------------------------------------


def test_the_table_is_the_mean_and_standard_error_over_seeds_per_arm_benchmark_level_and_tier(tmp_path: Path) -> None:
    plan = small_plan(seeds=[0, 1, 2])
    scores = {"adaptive_pc": [0.2, 0.3, 0.4], "random": [0.1, 0.1, 0.4]}
    results = {}
    for exp in experiments(plan):
        results[exp.name] = {
            "metrics/breakdown.json": breakdown_metrics(scores[exp.arm][exp.seed]),
            "metrics/sample_questions.json": {"effective_quota": {"easy": exp.seed, "medium": 6 - exp.seed}},
            "metrics/train_student.json": {"train_rows": 6},
            "metrics/build_database.json": {
                "questions": 20,
                "level_histogram": {"easy": 4, "extreme": 16},
                "truncation_rate": 0.05,
                "truncation_by_level": {"easy": 0.0, "extreme": 0.0625},
                "eval": {"questions": 10, "level_histogram": {"easy": 2, "extreme": 8}, "truncation_by_level": {}},
            },
        }
    table = ablation_table(plan, results)
    assert table["grading"]["pool"]["truncation_by_level"]["extreme"] == 0.0625
    for arm, values in scores.items():
        cell = table["arms"][arm]["benchmarks"]["bench"]["pass@1"]
        assert (cell["mean"], cell["stderr"]) == pytest.approx(mean_and_stderr(values))
        assert cell["values"] == values and cell["runs"] == 3
        easy = table["arms"][arm]["benchmarks"]["all"]["by_level"]["easy"]
        assert easy["mean"] == pytest.approx(sum(v + 0.2 for v in values) / 3)
        assert table["arms"][arm]["benchmarks"]["bench"]["by_generator_tier"]["1"]["mean"] == pytest.approx(
            sum(v + 0.1 for v in values) / 3
        )
        assert table["arms"][arm]["sample_by_level"]["easy"] == pytest.approx(1.0)
    assert table["base"]["bench"]["pass@1"] == 0.1 and table["base"]["all"]["by_level"]["easy"] == pytest.approx(0.3)
    rows = level_plot_rows(table)
    assert [r["level"] for r in rows] == ["easy", "extreme"]
    assert rows[0]["random"] == pytest.approx(0.4) and rows[0]["base"] == pytest.approx(0.3)
    text = markdown(table)
    assert "| adaptive_pc | 0.300 ± 0.058 | 0.300 ± 0.058 |" in text and "| base (untuned) | 0.100 | 0.100 |" in text
    assert "| extreme | 0.0 | 0.0 | 16 (6%) | 8 |" in text
    assert plot_png(table, tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    del results[experiments(plan)[-1].name]
    with pytest.raises(StageFailure, match="no results for 1 experiment"):
        ablation_table(plan, results)


# --- the breakdown stage's library ------------------------------------------------------------------------


def test_the_breakdown_groups_questions_by_level_and_tier_and_counts_truncation() -> None:
    benchmarks = pl.DataFrame(
        {
            "question_id": ["q1", "q2", "q3", "g1"],
            "generator_tier": [1, 1, 3, None],
        },
        schema={"question_id": pl.String, "generator_tier": pl.Int32},
    )
    levels = pl.DataFrame({"question_id": ["q1", "q2", "q3"], "level": ["easy", "hard", "hard"]})

    def responses(correct: dict[str, list[bool]]) -> pl.DataFrame:
        rows = []
        for qid, marks in correct.items():
            bench = "gsm" if qid.startswith("g") else "syn"
            for i, ok in enumerate(marks):
                rows.append(
                    {
                        "benchmark": bench,
                        "question_id": qid,
                        "sample_index": i,
                        "status": "correct" if ok else "wrong",
                        "finish_reason": "stop" if ok else "length",
                    }
                )
        return pl.DataFrame(rows)

    metrics, long = accuracy_breakdown(
        {
            "base": responses({"q1": [True, False], "q2": [False, False], "q3": [False, False], "g1": [False, False]}),
            "student": responses({"q1": [True, True], "q2": [True, False], "q3": [False, False], "g1": [True, False]}),
        },
        benchmarks,
        levels,
    )
    syn = metrics["student"]["syn"]
    assert syn["pass@1"] == pytest.approx(0.5) and syn["questions"] == 3
    assert syn["by_level"]["easy"]["pass@1"] == 1.0 and syn["by_level"]["hard"]["pass@1"] == pytest.approx(0.25)
    assert list(syn["by_level"]) == ["easy", "hard"]  # the vocabulary's order
    assert (
        syn["by_generator_tier"]["1"]["pass@1"] == pytest.approx(0.75) and syn["by_generator_tier"]["3"]["pass@1"] == 0
    )
    assert syn["by_level"]["hard"]["truncation_rate"] == pytest.approx(0.75)
    # g1 has neither level nor tier: it counts in its benchmark and in "all", in no grouping.
    assert "by_level" not in metrics["student"]["gsm"] and metrics["student"]["all"]["questions"] == 4
    assert metrics["base"]["all"]["pass@1"] == pytest.approx(0.125)
    table = level_plot_table(long)
    assert table.columns == ["level", "base", "student"] and table["level"].to_list() == ["easy", "hard"]
    assert table.filter(pl.col("level") == "hard")["student"].item() == pytest.approx(0.25)


def test_with_several_workers_the_first_experiment_runs_alone_so_grading_happens_once() -> None:
    plan = small_plan(jobs=3)
    names = [e.name for e in experiments(plan)]
    dvc = ScriptedDvc(dict.fromkeys(names, 0.3))
    run_sweep(plan, PARAMS_PATH, dvc, sleep=lambda _: None)
    order = [
        c[c.index("-n") + 1] if c[:2] == ["exp", "run"] else " ".join(c)
        for c in dvc.calls
        if c[:2] in (["exp", "run"], ["queue", "start"])
    ]
    assert order == [names[0], "queue start -j 1", *names[1:], "queue start -j 3"]
    # Once something is done (a rerun), the rest go to the workers together.
    dvc = ScriptedDvc(dict.fromkeys(names, 0.3), finished={names[0]: 0.3})
    run_sweep(plan, PARAMS_PATH, dvc, sleep=lambda _: None)
    assert [c for c in dvc.calls if c[:2] == ["queue", "start"]] == [["queue", "start", "-j", "3"]]
