"""Code tests read from every dataset format into one form, bad tests refused with reasons, and the
LiveCodeBench-format fixture through the field map, prepare_pool's reference check and the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adacot.codetests import CodeTests, UnreadableTests, code_question, read_tests
from adacot.config import SourceParams
from adacot.pools import build_pool_and_benchmarks
from adacot.sources import load_source
from adacot.verify.code import Limits, run_program

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(wall_s=5.0, cpu_s=3, memory_mb=512, output_bytes=16 * 1024, total_wall_s=20.0)
LCB_FIELDS = {
    "id": "question_id",
    "question": "question_content",
    "tests": "public_test_cases",
    "entry_point": "metadata",
    "solution": "reference",
}


def _runs(tests: CodeTests, program: str) -> str:
    return run_program(program, tests.cases, LIMITS, setup=tests.setup, count_all=True).status


def test_mbpp_assert_lines_with_setup() -> None:
    # MBPP's setup runs after the program and may use its names (task 367 builds trees of its Node).
    tests = read_tests(["assert f(T) == 4", "assert f(3) == 9"], setup="T = Box(2).v")
    assert tests.format == "asserts" and tests.setup == "" and len(tests.cases) == 2
    assert tests.cases[0]["code"] == "T = Box(2).v\nassert f(T) == 4"
    program = "class Box:\n    def __init__(self, v):\n        self.v = v\n\ndef f(x):\n    return x * x\n"
    assert _runs(tests, program) == "correct"
    shown = code_question("Square x.", tests)
    assert shown == "Square x.\nYour code should pass these tests:\nassert f(T) == 4\nassert f(3) == 9"


def test_humaneval_check_needs_entry_point_and_keeps_prompt_imports() -> None:
    prompt = "from typing import List\nimport math\n\ndef g(xs: List[int]) -> int:\n    '''sum'''\n"
    test = "def check(candidate):\n    assert candidate([1, 2]) == 3\n"
    tests = read_tests(test, entry_point="g", question=prompt)
    assert tests.format == "humaneval"
    assert tests.setup == "from typing import List\nimport math"
    # The model's program may omit the prompt's imports: the setup supplies them.
    assert _runs(tests, "def g(xs: List[int]) -> int:\n    return sum(xs)\n") == "correct"
    assert _runs(tests, "def g(xs):\n    return 0\n") == "wrong"
    with pytest.raises(UnreadableTests, match="entry point"):
        read_tests(test, question=prompt)
    assert code_question(prompt, tests).startswith("Complete the following Python function")


@pytest.mark.parametrize("as_text", [False, True])
def test_livecodebench_stdin_and_functional(as_text: bool) -> None:
    stdin = [{"input": "2 3\n", "output": "5\n", "testtype": "stdin"}]
    stdio = read_tests(json.dumps(stdin) if as_text else stdin)
    assert stdio.format == "stdio" and stdio.cases[0] == {"kind": "stdio", "input": "2 3\n", "output": "5\n"}
    assert _runs(stdio, "a, b = map(int, input().split())\nprint(a + b)\n") == "correct"
    assert "standard input" in code_question("Add.", stdio)

    functional = [{"input": "[1, 2, 3]\n2", "output": "5", "testtype": "functional"}]
    raw = json.dumps(functional) if as_text else functional
    call = read_tests(raw, entry_point=json.dumps({"func_name": "best"}))
    assert call.format == "call"
    method = (
        "class Solution:\n    def best(self, nums, k):\n"
        "        return max(sum(nums[i:i + k]) for i in range(len(nums) - k + 1))\n"
    )
    function = "def best(nums, k):\n    return sum(sorted(nums)[-k:])\n"
    assert _runs(call, method) == "correct"
    assert _runs(call, function) == "correct"
    assert _runs(call, "def best(nums, k):\n    return 0\n") == "wrong"
    assert "`best`" in code_question("Best window.", call)


def test_apps_stdio_and_call_based() -> None:
    stdio = read_tests(json.dumps({"inputs": ["1\n", ["2"]], "outputs": ["1\n", ["4"]]}))
    assert stdio.format == "stdio" and stdio.cases[1]["input"] == "2"
    assert _runs(stdio, "n = int(input())\nprint(n * n)\n") == "correct"
    call = read_tests({"inputs": [[2, 3], [1, 1]], "outputs": [[5], [2]], "fn_name": "add"})
    assert call.format == "call"
    assert _runs(call, "def add(a, b):\n    return a + b\n") == "correct"


def test_own_form_round_trips() -> None:
    tests = read_tests({"setup": "X = 2", "cases": [{"kind": "assert", "code": "assert f() == X"}]})
    again = CodeTests.from_json(tests.to_json())
    assert again.cases == tests.cases and again.setup == "X = 2"
    assert _runs(again, "def f():\n    return X\n") == "correct"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (None, "no tests"),
        ("", "no tests"),
        ([], "no tests"),
        ({}, "no tests"),
        (b"assert f()", "bytes"),
        (42, "int"),
        ([1, 2], "neither assert lines"),
        (["print(1)"], "not an assert"),
        ("just words", "neither JSON"),
        ({"examples": [1]}, "without `cases`"),
        ({"inputs": ["1"], "outputs": []}, "same length"),
        ([{"input": "1", "output": "1", "testtype": "functional"}], "function's name"),
        ([{"input": "not json", "output": "1", "testtype": "functional"}], "function's name"),
        ([{"input": "1", "output": "1", "testtype": "interactive"}], "unknown testtype"),
        ({"cases": [{"kind": "shell", "code": "ls"}]}, "kind: assert | stdio"),
        ({"cases": [{"kind": "stdio", "input": 1, "output": "1"}]}, "text `input`"),
        # Hostile or odd rows seen in real datasets: each is a reject reason, never another exception.
        ("[" * 100_000 + "]" * 100_000, "RecursionError"),
        ({"inputs": [[{1, 2}]], "outputs": [[1]], "fn_name": "f"}, "TypeError"),
        ({"inputs": [[1, 2]], "outputs": [[3]], "fn_name": "my-func"}, "not a Python function name"),
        ({"inputs": [["1", None]], "outputs": ["1"]}, "neither text nor a list of lines"),
        (['print("assert")'], "not an assert"),
        ('[{"input": "\\ud800", "output": "1", "testtype": "stdin"}]', "UnicodeEncodeError"),
        (
            [
                {"input": "1", "output": "2", "testtype": "stdin"},
                {"input": "1", "output": "2", "testtype": "functional"},
            ],
            "function's name",
        ),
    ],
)
def test_unreadable_tests_are_refused_with_a_reason(raw: object, says: str) -> None:
    with pytest.raises(UnreadableTests, match=says):
        read_tests(raw)


def test_functional_input_that_is_not_json() -> None:
    with pytest.raises(UnreadableTests, match="not JSON"):
        read_tests([{"input": "not json", "output": "1", "testtype": "functional"}], entry_point="f")


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]", '{"cases": []}'])
def test_gold_text_that_is_not_the_form(text: str | None) -> None:
    with pytest.raises(UnreadableTests):
        CodeTests.from_json(text)


def test_livecodebench_fixture_through_the_field_map_and_reference_check() -> None:
    spec = SourceParams.model_validate(
        {"name": "lcb", "path": str(FIXTURES / "livecodebench_like.jsonl"), "fields": LCB_FIELDS, "gold": "code"}
    )
    loaded = load_source(spec, 0, "test")
    reasons = dict(zip(loaded.rejects["question_id"], loaded.rejects["reason"], strict=True))
    assert reasons == {
        "lcb-abc003_a": "tests in column 'public_test_cases': the question has no tests",  # the text "[]"
        "lcb-abc003_b": "tests in column 'public_test_cases': tests are a mapping without `cases` or "
        "`inputs`/`outputs`: keys ['examples']",
        "lcb-2003": "tests in column 'public_test_cases': functional tests need the function's name "
        "(fields.entry_point)",
    }
    assert loaded.questions.height == 5
    mbpp = SourceParams.model_validate(
        {
            "name": "mbpp",
            "path": "data/benchmarks/code/mbpp.jsonl",
            "fields": {
                "id": "task_id",
                "question": "text",
                "tests": "test_list",
                "setup": "test_setup_code",
                "solution": "code",
            },
            "gold": "code",
            "id_range": [601, 974],
            "limit": 3,
        }
    )
    pool_source = load_source(mbpp, 0, "pool")
    assert all(601 <= int(q.split("-")[1]) <= 974 for q in pool_source.questions["question_id"])
    pool, bench, rejects, metrics = build_pool_and_benchmarks(
        [pool_source], [loaded], ngram=8, domain="code", sandbox=LIMITS, sandbox_workers=2
    )
    assert pool.height == 3
    # The broken reference (prints A + B for "A - B") is rejected on both sides; the other four pass.
    broken = rejects.filter(rejects["question_id"] == "lcb-abc003_c")["reason"].to_list()
    assert broken and all(r.startswith("reference solution fails its own tests: wrong: test 0") for r in broken)
    assert sorted(bench["question_id"].to_list()) == ["lcb-2001", "lcb-2002", "lcb-abc001_a", "lcb-abc002_b"]
    assert metrics["rejects_by_reason"]["reference solution fails its own tests"] >= 1


def test_code_sources_need_a_tests_column_and_ids_for_a_range() -> None:
    with pytest.raises(ValueError, match=r"fields\.tests"):
        SourceParams.model_validate({"name": "x", "path": "data/pools/x.jsonl", "gold": "code"})
    with pytest.raises(ValueError, match=r"fields\.id"):
        SourceParams.model_validate(
            {"name": "x", "path": "d.jsonl", "gold": "code", "fields": {"tests": "t"}, "id_range": [1, 2]}
        )


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["humaneval", "mbpp"])
def test_every_shipped_reference_passes_through_the_pipelines_reading(dataset: str) -> None:
    # The path prepare_pool takes: the source row's tests read into the one form, then run in the sandbox.
    from adacot.verify.code import run_programs

    rows = [json.loads(line) for line in (ROOT / f"data/benchmarks/code/{dataset}.jsonl").read_text().splitlines()]
    if dataset == "humaneval":
        pairs = [
            (
                r["prompt"] + r["canonical_solution"],
                read_tests(r["test"], entry_point=r["entry_point"], question=r["prompt"]),
            )
            for r in rows
        ]
    else:
        pairs = [(r["code"], read_tests(r["test_list"], setup=r["test_setup_code"])) for r in rows]
    verdicts = run_programs(
        [(program, tests.cases) for program, tests in pairs],
        Limits(wall_s=30.0, cpu_s=10, memory_mb=1024, total_wall_s=60.0),
        workers=2,
        setups=[tests.setup for _, tests in pairs],
    )
    failed = [(i, v.reason) for i, v in enumerate(verdicts) if not v.is_correct]
    assert failed == [] and len(verdicts) == {"humaneval": 164, "mbpp": 974}[dataset]


@pytest.mark.parametrize(
    ("program", "says"),
    [(b"print(1)", "not text but bytes"), (None, "not text but NoneType"), ("print(1)\x00", "NUL bytes")],
)
def test_a_program_that_is_not_text_is_a_verdict_not_a_crash(program: object, says: str) -> None:
    tests = read_tests(["assert True"])
    verdict = run_program(program, tests.cases, LIMITS)
    assert verdict.status == "runtime_error" and says in verdict.reason
    assert (verdict.tests_passed, verdict.tests_total) == (0, 1)


def test_unreadable_gold_tests_are_a_sandbox_error_verdict() -> None:
    from adacot.verify.code import check_responses

    answer = "```python\ndef f():\n    return 1\n```"
    good = read_tests(["assert f() == 1"]).to_json()
    verdicts = check_responses([good, "not json", None], [answer] * 3, ["stop"] * 3, LIMITS, 1)
    assert [v.status for v in verdicts] == ["correct", "sandbox_error", "sandbox_error"]
    assert "tests do not read" in verdicts[1].reason and verdicts[1].extracted is not None


def test_the_readme_livecodebench_entry_reads_the_fixture() -> None:
    import re

    import yaml

    readme = (ROOT / "README.md").read_text()
    entry = yaml.safe_load(re.search(r"`(\{name: lcb, .*?\})`", readme).group(1))  # type: ignore[union-attr]
    entry["path"] = str(FIXTURES / "livecodebench_like.jsonl")  # the README's path is the user's file
    loaded = load_source(SourceParams.model_validate(entry), 0, "test")
    assert loaded.questions.height == 5 and loaded.rejects.height == 3


def test_mixed_stdin_and_functional_cases_and_keyword_names_are_refused() -> None:
    mixed = [
        {"input": "1", "output": "2", "testtype": "stdin"},
        {"input": "1", "output": "2", "testtype": "functional"},
    ]
    with pytest.raises(UnreadableTests, match="mix stdin and functional"):
        read_tests(mixed, entry_point="f")
    with pytest.raises(UnreadableTests, match="function's name"):
        read_tests([{"input": "1", "output": "1", "testtype": "functional"}], entry_point="class")


def test_apps_integers_of_thousands_of_digits_read_and_run() -> None:
    big = 10**5000 - 1
    tests = read_tests({"inputs": [[1]], "outputs": [[big]], "fn_name": "f"})
    assert _runs(tests, "def f(x):\n    return 10 ** 5000 - x\n") == "correct"
    # LiveCodeBench has no APPS-style unwrapping: [5] expected is not 5 returned.
    lcb = read_tests([{"input": "1", "output": "[5]", "testtype": "functional"}], entry_point="g")
    assert _runs(lcb, "def g(x):\n    return 5\n") == "wrong"
    assert (
        _runs(read_tests({"inputs": [[1]], "outputs": [[5]], "fn_name": "g"}), "def g(x):\n    return 5\n") == "correct"
    )


@pytest.mark.parametrize(
    ("program", "status"),
    [
        ("import sys\ndef f():\n    return 2\nsys.exit(0)\n", "wrong"),  # exits 0 before the asserts
        ("import os\ndef f():\n    return 2\nos._exit(0)\n", "wrong"),
        ("def f():\n    return 1\nif __name__ == '__main__':\n    input()\n", "correct"),  # its main stays out
    ],
)
def test_a_program_cannot_skip_its_tests_and_its_main_block_stays_out(program: str, status: str) -> None:
    verdict = run_program(program, read_tests(["assert f() == 1"]).cases, LIMITS)
    assert verdict.status == status, verdict.reason
    if status == "wrong":
        assert "ended the process before its tests ran" in verdict.reason


def test_id_range_reads_numeric_and_text_ids() -> None:
    from adacot.sources import in_range

    assert in_range(601.0, (601, 974)) and in_range(700, (601, 974)) and in_range("HumanEval/12", (0, 20))
    assert not in_range(600, (601, 974)) and not in_range("no digits", (0, 9)) and not in_range(None, (0, 9))
    assert in_range(None, None)
