"""Code tests: the one form a code question's gold takes, and readers from the test formats of code datasets.

A code question's ``gold`` column holds its tests as JSON, ``{"setup": str, "cases": [...]}``: ``setup``
is code run before the candidate program (the imports HumanEval's prompt gives it); each case
is what the sandbox runs (``adacot.verify.code``): ``{"kind": "assert", "code": str}`` (appended to the
program; passing = exit 0) or ``{"kind": "stdio", "input": str, "output": str}`` (stdin in, stdout
compared line by line). ``read_tests`` reads the formats code datasets ship into that form:

- MBPP: a list of ``assert`` lines (``test_list``); ``test_setup_code`` runs after the program, before each;
- HumanEval: a ``check(candidate)`` function and an entry point; setup = the prompt's import lines;
- LiveCodeBench: a list (or JSON text of a list) of ``{input, output, testtype}``; ``stdin`` cases are
  stdio, ``functional`` ones call the entry point (a function, or a method of ``class Solution``) with
  the input's lines as JSON arguments and compare with the JSON output;
- APPS: ``{inputs, outputs[, fn_name]}`` (or its JSON text): stdio, or calls when ``fn_name`` is given;
- this form itself (``{setup, cases}``), for users who write their own.

Anything else is a ``UnreadableTests`` naming what was found, so prepare_pool keeps the row as a reject.
``code_question`` adds to a question what its tests need the program to do (the MBPP tests, stdin/stdout,
the function's name). This module neither runs programs (``verify/code.py``) nor reads files (``sources.py``).
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from dataclasses import dataclass
from typing import Any

CASE_KINDS = ("assert", "stdio")


class UnreadableTests(ValueError):
    """A question's tests are missing or in a format this module does not read; the message says which."""


@dataclass(frozen=True)
class CodeTests:
    """A code question's tests: setup code and cases, with the dataset format they were read from."""

    setup: str
    cases: tuple[dict[str, str], ...]
    format: str

    def to_json(self) -> str:
        """The gold column's text (stable: sorted keys)."""
        return json.dumps({"format": self.format, "setup": self.setup, "cases": list(self.cases)}, sort_keys=True)

    @staticmethod
    def from_json(text: str | None) -> CodeTests:
        """Read a gold column's text back; ``UnreadableTests`` when it is not this form."""
        if not isinstance(text, str) or not text.strip():
            raise UnreadableTests("the question has no tests")
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise UnreadableTests(f"tests are not JSON ({error.msg})") from None
        if not isinstance(raw, dict) or "cases" not in raw:
            raise UnreadableTests(f"tests are JSON but not {{setup, cases}}: {text[:80]!r}")
        return _own_form(raw, str(raw.get("format") or "adacot"))


def _checked_cases(cases: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(cases, list) or not cases:
        raise UnreadableTests("no test cases")
    out = []
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or case.get("kind") not in CASE_KINDS:
            raise UnreadableTests(f"case {i} is not {{kind: assert | stdio, ...}}: {str(case)[:80]!r}")
        if case["kind"] == "assert":
            if not isinstance(case.get("code"), str) or not case["code"].strip():
                raise UnreadableTests(f"assert case {i} has no code")
            out.append({"kind": "assert", "code": case["code"]})
        else:
            if not isinstance(case.get("input"), str) or not isinstance(case.get("output"), str):
                raise UnreadableTests(f"stdio case {i} needs text `input` and `output`")
            out.append({"kind": "stdio", "input": case["input"], "output": case["output"]})
    return tuple(out)


def _own_form(raw: dict[str, Any], fmt: str) -> CodeTests:
    setup = raw.get("setup") or ""
    if not isinstance(setup, str):
        raise UnreadableTests("tests' `setup` is not text")
    return CodeTests(setup, _checked_cases(raw.get("cases")), fmt)


_IMPORT = re.compile(r"^(?:from\s+\S+\s+)?import\s+.+$", re.M)


def _function_name(entry_point: Any) -> str | None:
    """The function name of an entry-point value: a name, or LiveCodeBench's ``{"func_name": ...}`` JSON."""
    if isinstance(entry_point, dict):
        entry_point = entry_point.get("func_name") or entry_point.get("fn_name")
    if isinstance(entry_point, str) and entry_point.strip().startswith("{"):
        try:
            return _function_name(json.loads(entry_point))
        except json.JSONDecodeError:
            return None
    name = entry_point.strip() if isinstance(entry_point, str) else ""
    return name if name.isidentifier() and not keyword.iskeyword(name) else None


def _call_case(name: str, args: list[Any], expected: Any, unwrap: bool = False) -> dict[str, str]:
    """An assert case calling ``name`` (a function, or a method of ``Solution``) with JSON arguments.

    ``unwrap``: APPS's convention, where an expected ``[x]`` also accepts a returned ``x``."""
    accept = " or [_adacot_got] == _adacot_expected" if unwrap else ""
    code = (
        "import json as _adacot_json\n"
        "import sys as _adacot_sys\n"
        "if hasattr(_adacot_sys, 'set_int_max_str_digits'):\n"
        "    _adacot_sys.set_int_max_str_digits(0)  # APPS holds integers of thousands of digits\n"
        f"_adacot_args = _adacot_json.loads({json.dumps(json.dumps(args))})\n"
        f"_adacot_expected = _adacot_json.loads({json.dumps(json.dumps(expected))})\n"
        f"_adacot_f = getattr(Solution(), {name!r}) if 'Solution' in globals() else {name}\n"
        "_adacot_got = _adacot_f(*_adacot_args)\n"
        "if isinstance(_adacot_got, tuple):\n"
        "    _adacot_got = list(_adacot_got)\n"
        f"assert _adacot_got == _adacot_expected{accept}, "
        "f'expected {_adacot_expected!r}, got {_adacot_got!r}'\n"
    )
    return {"kind": "assert", "code": code}


def _lines_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if isinstance(value, str):
        return value
    raise UnreadableTests(f"stdin/stdout value is neither text nor a list of lines: {str(value)[:60]!r}")


def _livecodebench(cases: list[dict[str, Any]], name: str | None) -> CodeTests:
    out = []
    for i, case in enumerate(cases):
        kind = case.get("testtype", "stdin")
        if kind == "stdin":
            out.append({"kind": "stdio", "input": _lines_text(case["input"]), "output": _lines_text(case["output"])})
        elif kind == "functional":
            if name is None:
                raise UnreadableTests("functional tests need the function's name (fields.entry_point)")
            try:
                args = [json.loads(line) for line in str(case["input"]).splitlines() if line.strip()]
                expected = json.loads(str(case["output"]))
            except json.JSONDecodeError as error:
                raise UnreadableTests(f"functional case {i}: input or output is not JSON ({error.msg})") from None
            out.append(_call_case(name, args, expected))
        else:
            raise UnreadableTests(f"case {i}: unknown testtype {kind!r} (stdin or functional)")
    kinds = {c["kind"] for c in out}
    if kinds == {"stdio", "assert"}:
        raise UnreadableTests("the tests mix stdin and functional cases")
    fmt = "stdio" if kinds == {"stdio"} else "call"
    return CodeTests("", _checked_cases(out), fmt)


def _apps(raw: dict[str, Any], name: str | None) -> CodeTests:
    inputs, outputs = raw.get("inputs"), raw.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise UnreadableTests("APPS-style tests need `inputs` and `outputs` lists of the same length")
    if raw.get("fn_name") not in (None, ""):
        name = _function_name(raw.get("fn_name"))
        if name is None:
            raise UnreadableTests(f"APPS fn_name {str(raw.get('fn_name'))[:40]!r} is not a Python function name")
        cases = [
            _call_case(name, args if isinstance(args, list) else [args], expected, unwrap=True)
            for args, expected in zip(inputs, outputs, strict=True)
        ]
        return CodeTests("", _checked_cases(cases), "call")
    cases = [
        {"kind": "stdio", "input": _lines_text(i), "output": _lines_text(o)}
        for i, o in zip(inputs, outputs, strict=True)
    ]
    return CodeTests("", _checked_cases(cases), "stdio")


def read_tests(raw: Any, *, entry_point: Any = None, setup: Any = None, question: str = "") -> CodeTests:
    """A source row's tests in the one form, whatever dataset format they come in (see the module doc).

    ``entry_point`` is the row's function name (HumanEval ``entry_point``, LiveCodeBench ``metadata``),
    ``setup`` its test setup code (MBPP ``test_setup_code``: run after the program, before each test; for
    HumanEval and the case-list forms it runs before the program), ``question`` its text (HumanEval's
    imports are read from it). Anything that does not read is ``UnreadableTests`` saying why, never another
    error (a source row with odd tests becomes a reject, not a crashed stage).
    """
    previous = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
    try:
        if previous is not None:
            sys.set_int_max_str_digits(0)  # APPS holds integers of thousands of digits
        tests = _read_tests(raw, entry_point=entry_point, setup=setup, question=question)
        for text in (tests.setup, *(v for case in tests.cases for v in case.values())):
            text.encode("utf-8")  # a lone surrogate (a JSON "\\ud800") could never be written for the sandbox
        return tests
    except UnreadableTests:
        raise
    except (ValueError, TypeError, KeyError, RecursionError, UnicodeError) as error:
        raise UnreadableTests(f"tests do not read ({type(error).__name__}: {str(error)[:80]})") from None
    finally:
        if previous is not None:
            sys.set_int_max_str_digits(previous)


def _read_tests(raw: Any, *, entry_point: Any = None, setup: Any = None, question: str = "") -> CodeTests:
    """``read_tests`` without its guard: any error here is a format this module does not read."""
    name = _function_name(entry_point)
    setup_code = setup if isinstance(setup, str) else ""
    if raw is None or (isinstance(raw, (str, list, dict)) and not raw):
        raise UnreadableTests("the question has no tests")
    if isinstance(raw, (bytes, bytearray)):
        raise UnreadableTests("tests are bytes, not text or a list")
    if isinstance(raw, str):
        text = raw.strip()
        if text[:1] in "[{":
            try:
                return _read_tests(json.loads(text), entry_point=entry_point, setup=setup, question=question)
            except json.JSONDecodeError:
                pass  # Python code that starts with a bracket: read as code below
        if re.search(r"^[ \t]*def[ \t]+check[ \t]*\(", text, re.M):
            if name is None:
                raise UnreadableTests("HumanEval-style check() tests need the entry point (fields.entry_point)")
            imports = "\n".join(m.group(0) for m in _IMPORT.finditer(question))
            head = "\n".join(s for s in (imports, setup_code) if s.strip())
            return CodeTests(head, ({"kind": "assert", "code": f"{text}\n\ncheck({name})\n"},), "humaneval")
        if re.search(r"^[ \t]*assert\b", text, re.M):
            head = f"{setup_code}\n" if setup_code.strip() else ""
            return CodeTests("", ({"kind": "assert", "code": f"{head}{text}"},), "asserts")
        raise UnreadableTests(f"tests are text but neither JSON, asserts nor a check() function: {text[:60]!r}")
    if isinstance(raw, list):
        if all(isinstance(t, str) for t in raw):
            lines = [t for t in raw if t.strip()]
            bad = [t for t in lines if not re.search(r"^[ \t]*assert\b", t, re.M)]
            if bad:
                raise UnreadableTests(f"a test line is not an assert: {bad[0][:60]!r}")
            # MBPP's test_setup_code builds the tests' inputs from the program's own names (task 367: trees
            # of the program's `Node`): it runs after the program, before each assert.
            head = f"{setup_code}\n" if setup_code.strip() else ""
            cases = [{"kind": "assert", "code": f"{head}{t}"} for t in lines]
            return CodeTests("", _checked_cases(cases), "asserts")
        if all(isinstance(t, dict) and "input" in t and "output" in t for t in raw):
            return _livecodebench(raw, name)
        if all(isinstance(t, dict) and "kind" in t for t in raw):
            return CodeTests(setup_code, _checked_cases(raw), "adacot")
        raise UnreadableTests(f"a list of tests that is neither assert lines nor input/output cases: {str(raw)[:80]!r}")
    if isinstance(raw, dict):
        if "cases" in raw:
            return _own_form(raw, "adacot")
        if "inputs" in raw or "outputs" in raw:
            return _apps(raw, name)
        raise UnreadableTests(f"tests are a mapping without `cases` or `inputs`/`outputs`: keys {sorted(raw)[:6]}")
    raise UnreadableTests(f"tests are a {type(raw).__name__}, not text, a list or a mapping")


def code_question(question: str, tests: CodeTests, shown_asserts: int = 3) -> str:
    """The question as the models see it: what the tests expect of the program added where the text alone
    does not say (MBPP's tests, as in its paper's prompt; reading stdin; the function to define)."""
    text = question.strip()
    if tests.format == "asserts":
        # The assert itself, without the test setup before it (MBPP's prompt shows test_list only).
        lines = [
            re.split(r"^(?=assert\b)", c["code"], maxsplit=1, flags=re.M)[-1].strip()
            for c in tests.cases[:shown_asserts]
        ]
        return f"{text}\nYour code should pass these tests:\n" + "\n".join(lines)
    if tests.format == "stdio":
        return f"{text}\n\nRead the input from standard input and print the answer to standard output."
    if tests.format == "humaneval":  # the prompt is a signature with a docstring: ask for the whole function
        ask = "Complete the following Python function; give the whole function, imports included:"
        return f"{ask}\n```python\n{text}\n```"
    if tests.format == "call":
        name = re.search(r"getattr\(Solution\(\), '([^']+)'\)", tests.cases[0].get("code", ""))
        called = f"`{name.group(1)}`" if name else "the function the problem names"
        return f"{text}\n\nDefine {called} (a function, or a method of `class Solution`); it is called with the inputs."
    return text
