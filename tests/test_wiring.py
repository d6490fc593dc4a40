"""dvc.yaml says exactly what each stage runs and reads: module deps and params, checked from the code.

DVC reruns a stage only when one of its declared deps or params changed, so a module a stage runs but
does not list, or a params key it reads but does not declare, leaves `dvc repro` saying "up to date" over
stale outputs. This test reads dvc.yaml and, for every stage:

- follows the stage script's imports transitively inside ``adacot`` (module-level and function-level
  imports alike, since a function-level import runs when the function does; imports under
  ``if TYPE_CHECKING:`` never run and are skipped; importing ``a.b.c`` runs the ``__init__`` of ``a`` and
  ``a.b``) and fails when a module file is not covered by a dep (the file itself or a folder above it);
- follows ``params`` through the stage script, into every ``adacot`` function it is passed to (and the
  sections taken from it, into the functions they are passed to), resolving each attribute against the
  typed params models in ``config.py``, and fails when a key it reads is not declared under the stage's
  ``params`` (the key itself or its section). A section handed whole to code the checker cannot follow
  counts as reading the whole section.

The checker is tested on itself too: dropping a dep or a params entry from dvc.yaml makes it report the
stage.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from adacot.config import Params

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


# --- modules -----------------------------------------------------------------------------------------


def module_file(name: str) -> Path | None:
    """The file of an ``adacot`` module (a package's ``__init__.py``), or None if there is none."""
    base = SRC.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except what sits under ``if TYPE_CHECKING:`` (never executed)."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return out


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(path: Path) -> set[str]:
    """``adacot`` modules a file imports anywhere it can run (parent packages included)."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from adacot.llm import roles` imports the submodule adacot.llm.roles too.
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "adacot":
                found.update(m for m in _with_parents(name) if module_file(m) is not None)
    return found


def module_closure(script: Path) -> set[Path]:
    """The stage script and every ``adacot`` module file it may run, transitively."""
    files = {script}
    todo = list(imported_modules(script))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        target = module_file(name)
        assert target is not None
        files.add(target)
        todo.extend(imported_modules(target) - seen)
    return files


# --- params ------------------------------------------------------------------------------------------


def _function_index(path: Path) -> tuple[dict[str, ast.FunctionDef], dict[str, tuple[str, str]]]:
    """A module's top-level functions by name, and the names it imports from ``adacot`` modules."""
    tree = ast.parse(path.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    imports: dict[str, tuple[str, str]] = {}
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adacot"):
            for alias in node.names:
                imports[alias.asname or alias.name] = (node.module, alias.name)
    return functions, imports


@cache
def _module_index(name: str) -> tuple[dict[str, ast.FunctionDef], dict[str, tuple[str, str]]]:
    path = module_file(name)
    assert path is not None, name
    return _function_index(path)


def _resolve(name: str, module: str, seen: frozenset[str] = frozenset()) -> tuple[str, ast.FunctionDef] | None:
    """The (module, function definition) a name in ``module`` refers to, following re-exports."""
    functions, imports = _module_index(module)
    if name in functions:
        return module, functions[name]
    if name in imports and module not in seen:
        source, original = imports[name]
        if module_file(source) is None:
            return None
        return _resolve(original, source, seen | {module})
    return None


def _field_model(model: type[BaseModel], attr: str) -> tuple[str, Any] | None:
    """(params key, annotation) of field ``attr`` of a params model, or None if it is no field."""
    info = model.model_fields.get(attr)
    if info is None:
        return None
    return (info.alias or attr), info.annotation


def _section_type(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


@dataclass
class Reads:
    """Params keys read (dotted, as dvc.yaml writes them), and why a read could not be followed."""

    keys: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Tracked:
    """A variable bound to part of the params: its dotted key ('' = all params) and its model type."""

    key: str
    model: type[BaseModel] | None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class ParamsReads(ast.NodeVisitor):
    """Collect the params keys a function reads, given which of its variables hold params or sections."""

    def __init__(
        self,
        module: str,
        tracked: dict[str, Tracked],
        reads: Reads,
        depth: int = 0,
        visited: set[tuple[str, str, str]] | None = None,
    ) -> None:
        self.module = module
        self.tracked = dict(tracked)
        self.reads = reads
        self.depth = depth
        self.visited = visited if visited is not None else set()

    # A chain `x.a.b` rooted at a tracked variable: walk it through the params models.
    def _chain(self, node: ast.expr) -> tuple[Tracked, list[str]] | None:
        attrs: list[str] = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.tracked:
            return self.tracked[node.id], list(reversed(attrs))
        return None

    def _descend(self, start: Tracked, attrs: list[str]) -> tuple[Tracked, list[str]]:
        """Follow field attributes as far as the models go; return where it stopped and what is left."""
        current = start
        for i, attr in enumerate(attrs):
            if current.model is None:
                return current, attrs[i:]
            found = _field_model(current.model, attr)
            if found is None:
                return current, attrs[i:]
            key, annotation = found
            current = Tracked(_join(current.key, key), _section_type(annotation))
        return current, []

    def _read(self, tracked: Tracked, why: str) -> None:
        if not tracked.key:
            self.reads.notes.append(f"{self.module}: the whole params object is read ({why})")
        self.reads.keys.add(tracked.key)

    def visit_Assign(self, node: ast.Assign) -> None:
        value = node.value
        chain = self._chain(value) if isinstance(value, (ast.Attribute, ast.Name)) else None
        if chain is not None and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            where, rest = self._descend(*chain)
            if not rest:  # an alias of params or of a section: follow the name instead
                self.tracked[node.targets[0].id] = where
                return
        # `args, params = setup(...)`: the stage's params.
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "setup"
            and isinstance(node.targets[0], ast.Tuple)
        ):
            target = node.targets[0].elts[-1]
            if isinstance(target, ast.Name):
                self.tracked[target.id] = Tracked("", Params)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = self._chain(node)
        if chain is None:
            self.generic_visit(node)
            return
        where, rest = self._descend(*chain)
        if rest:
            # Not a field: a method (`dist.shares()`) or something past a plain value; `role_api` is the
            # one Params method with a known reach (visit_Call), anything else reads what it stands on.
            if where.key == "" and rest[0] in ("role_api", "role_engine", "seed_of"):
                return
            self._read(where, f"`.{rest[0]}`")
        else:
            self._read(where, "attribute")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        # params.role_api("teacher") reads `api` and `teacher.api`.
        chain = self._chain(func) if isinstance(func, ast.Attribute) else None
        if chain is not None and chain[0].key == "" and chain[1] == ["role_api"]:
            role = node.args[0]
            if isinstance(role, ast.Constant) and isinstance(role.value, str):
                self.reads.keys.update({"api", f"{role.value}.api"})
            else:
                self.reads.keys.update({"api", "student.api", "teacher.api", "prm.api"})
            return
        # params.role_engine("prm") reads `engine` and `prm.engine`.
        if chain is not None and chain[0].key == "" and chain[1] == ["role_engine"]:
            role = node.args[0]
            if isinstance(role, ast.Constant) and isinstance(role.value, str):
                self.reads.keys.update({"engine", f"{role.value}.engine"})
            else:
                self.reads.keys.update({"engine", "student.engine", "teacher.engine", "prm.engine", "evaluate.engine"})
            return
        # params.seed_of("sample") reads `seed` and `sample.seed`.
        if chain is not None and chain[0].key == "" and chain[1] == ["seed_of"]:
            section = node.args[0]
            if isinstance(section, ast.Constant) and isinstance(section.value, str):
                self.reads.keys.update({"seed", f"{section.value}.seed"})
            else:
                self.reads.keys.update({"seed", "sample.seed", "sft.seed"})
            return
        passed: list[tuple[int | str, Tracked]] = []
        for index, arg in enumerate(node.args):
            held = self._held(arg)
            if held is not None:
                passed.append((index, held))
        for keyword in node.keywords:
            held = self._held(keyword.value)
            if held is not None and keyword.arg is not None:
                passed.append((keyword.arg, held))
        if passed:
            target = _resolve(func.id, self.module) if isinstance(func, ast.Name) else None
            if target is None:
                for _, held in passed:
                    self._read(held, f"passed to `{ast.unparse(func)}`, which the checker cannot follow")
            else:
                self._follow(target, passed)
        for arg in node.args:
            if self._held(arg) is None:
                self.visit(arg)
        for keyword in node.keywords:
            if self._held(keyword.value) is None:
                self.visit(keyword.value)
        if not isinstance(func, ast.Name):
            self.visit(func)

    def _held(self, node: ast.expr) -> Tracked | None:
        """The params part an argument expression is, when it is exactly a params object or section."""
        chain = self._chain(node) if isinstance(node, (ast.Name, ast.Attribute)) else None
        if chain is None:
            return None
        where, rest = self._descend(*chain)
        if rest:
            return None
        if where.model is None:
            self._read(where, "value")
            return None
        return where

    def _follow(self, target: tuple[str, ast.FunctionDef], passed: list[tuple[int | str, Tracked]]) -> None:
        module, definition = target
        names = [a.arg for a in definition.args.posonlyargs + definition.args.args]
        kwonly = {a.arg for a in definition.args.kwonlyargs}
        tracked: dict[str, Tracked] = {}
        for where, held in passed:
            if isinstance(where, int):
                name = names[where] if where < len(names) else None
            else:
                name = where if where in names or where in kwonly else None
            if name is None:
                self._read(held, f"passed as *args/**kwargs to {module}.{definition.name}")
            else:
                tracked[name] = held
        signature = ",".join(f"{k}={v.key}" for k, v in sorted(tracked.items()))
        visit_key = (module, definition.name, signature)
        if visit_key in self.visited:
            return
        self.visited.add(visit_key)
        inner = ParamsReads(module, tracked, self.reads, self.depth + 1, self.visited)
        for statement in definition.body:
            inner.visit(statement)


def stage_params_reads(script: Path) -> Reads:
    """The params keys a stage script reads, directly and through the ``adacot`` functions it calls."""
    reads = Reads()
    tree = ast.parse(script.read_text())
    index = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    imports: dict[str, tuple[str, str]] = {}
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adacot"):
            for alias in node.names:
                imports[alias.asname or alias.name] = (node.module, alias.name)
    if "main" not in index:
        reads.notes.append(f"{script.name}: no main()")
        return reads
    # The script is treated as a module whose functions resolve through its own imports.
    visitor = _ScriptReads(script.stem, imports, {}, reads)
    for statement in index["main"].body:
        visitor.visit(statement)
    return reads


class _ScriptReads(ParamsReads):
    """``ParamsReads`` for a stage script, which is not an importable module: names resolve by its imports."""

    def __init__(
        self, name: str, imports: dict[str, tuple[str, str]], tracked: dict[str, Tracked], reads: Reads
    ) -> None:
        super().__init__(name, tracked, reads)
        self._imports = imports

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self._imports:
            module, original = self._imports[func.id]
            if module_file(module) is not None:
                # Resolve through the imported module and continue as an ordinary call there.
                target = _resolve(original, module)
                if target is not None:
                    passed = [(i, h) for i, a in enumerate(node.args) if (h := self._held(a)) is not None]
                    passed += [
                        (k.arg, h)
                        for k in node.keywords
                        if k.arg is not None and (h := self._held(k.value)) is not None
                    ]
                    if passed:
                        self._follow(target, passed)
                    for arg in node.args:
                        if self._held(arg) is None:
                            self.visit(arg)
                    for keyword in node.keywords:
                        if self._held(keyword.value) is None:
                            self.visit(keyword.value)
                    return
        super().visit_Call(node)


# --- dvc.yaml ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    script: Path
    deps: tuple[str, ...]
    params: tuple[str, ...]


def _stage_entries(dvc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every stage of dvc.yaml (a foreach stage once per item: they share deps and params patterns)."""
    out = []
    for name, body in dvc["stages"].items():
        if "foreach" in body:
            items = body["foreach"]
            keys = list(items)  # a dict's keys, or a list's items
            for key in keys:
                out.append((f"{name}@{key}", body["do"]))
        else:
            out.append((name, body))
    return out


def stages_of(dvc: dict[str, Any]) -> list[Stage]:
    stages = []
    for name, body in _stage_entries(dvc):
        match = re.match(r"python (stages/\S+\.py)", body["cmd"])
        assert match, f"{name}: cmd does not run a stage script: {body['cmd']!r}"
        params: list[str] = []
        for entry in body.get("params", []):
            if isinstance(entry, str):
                params.append(entry)
            else:  # {params_file: [keys]}
                params.extend(k for keys in entry.values() for k in keys)
        stages.append(Stage(name, ROOT / match.group(1), tuple(body.get("deps", [])), tuple(params)))
    return stages


def missing_deps(stage: Stage) -> list[str]:
    """Module files the stage may run that no dep covers (relative to the repo)."""
    deps = [d.rstrip("/") for d in stage.deps if "${" not in d]
    missing = []
    for path in sorted(module_closure(stage.script)):
        rel = path.relative_to(ROOT).as_posix()
        if not any(rel == d or rel.startswith(d + "/") for d in deps):
            missing.append(rel)
    return missing


def _covered(key: str, declared: tuple[str, ...]) -> bool:
    parts = key.split(".")
    return any(".".join(parts[: i + 1]) in declared for i in range(len(parts)))


def undeclared_params(stage: Stage) -> list[str]:
    """Params keys the stage reads that its dvc.yaml entry does not declare (nor their section)."""
    reads = stage_params_reads(stage.script)
    problems = [n for n in reads.notes]
    for key in sorted(reads.keys):
        if key and not _covered(key, stage.params):
            # A whole section read counts as declared when every one of its keys is declared one by one.
            section = Params.model_fields.get(key)
            model = _section_type(section.annotation) if section else None
            if model is not None and all(f"{key}.{k}" in stage.params for k in model.model_fields):
                continue
            problems.append(key)
    return problems


DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = stages_of(DVC)


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_stage_depends_on_every_module_it_runs(stage: Stage) -> None:
    missing = missing_deps(stage)
    assert not missing, f"dvc.yaml stage {stage.name} runs these modules but does not list them as deps: {missing}"


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_stage_declares_every_params_key_it_reads(stage: Stage) -> None:
    problems = undeclared_params(stage)
    assert not problems, f"dvc.yaml stage {stage.name} reads params it does not declare: {problems}"


def test_stage_reads_are_found() -> None:
    """The checker sees what the stages really read (so the tests above cannot pass by finding nothing)."""
    by_name = {s.name: s for s in STAGES}
    generate = stage_params_reads(by_name["generate_solutions"].script).keys
    # Directly, through a section alias, through sampling_from, through role_api and open_teacher_model.
    assert {
        "teacher.attempts",
        "teacher.max_tokens",
        "teacher.temperature",
        "teacher.top_p",
        "api",
        "teacher.api",
        "teacher.backend",
        "teacher.model",
        "seed",
        "engine",
    } <= generate
    assert "teacher.keep_unverified" not in generate
    assert "teacher.engine" in generate  # params.role_engine("teacher"), through open_teacher_model
    assert not {"student.engine", "prm.engine", "evaluate.engine"} & generate
    assert {"prm.engine", "engine"} <= stage_params_reads(by_name["score_failures@pool"].script).keys
    assert "evaluate.engine" in stage_params_reads(by_name["evaluate@base"].script).keys
    assert "dist.from" in stage_params_reads(by_name["sample_questions"].script).keys
    assert "prm" in {k.split(".")[0] for k in stage_params_reads(by_name["score_failures@pool"].script).keys}
    grade = stage_params_reads(by_name["grade_questions@pool"].script).keys
    assert {"student.backend", "student.api", "student.engine", "grade.attempts", "engine"} <= grade
    assert not any(k.startswith("teacher") for k in grade)
    closure = {p.relative_to(ROOT).as_posix() for p in module_closure(by_name["evaluate@base"].script)}
    assert {
        "src/adacot/evaluation.py",
        "src/adacot/verify/frames.py",
        "src/adacot/verify/math.py",
        "src/adacot/llm/vllm_backend.py",
        "src/adacot/__init__.py",
    } <= closure
    assert "src/adacot/verify/code.py" in closure  # domain: code runs the answers in the sandbox


def test_dropping_a_dep_or_a_param_is_reported() -> None:
    """The checker fails on dvc.yaml with one module dep or one params entry removed."""
    broken = copy.deepcopy(DVC)
    deps = broken["stages"]["evaluate"]["do"]["deps"]
    deps.remove("src/adacot/evaluation.py")
    evaluate = next(s for s in stages_of(broken) if s.name == "evaluate@student")
    assert "src/adacot/evaluation.py" in missing_deps(evaluate)

    broken = copy.deepcopy(DVC)
    broken["stages"]["sample_questions"]["params"].remove("dist")
    sample = next(s for s in stages_of(broken) if s.name == "sample_questions")
    assert any(p.startswith("dist") for p in undeclared_params(sample))

    broken = copy.deepcopy(DVC)
    broken["stages"]["generate_solutions"]["params"].remove("teacher.engine")
    generate = next(s for s in stages_of(broken) if s.name == "generate_solutions")
    assert "teacher.engine" in undeclared_params(generate)


def _fill(path: str, key: Any, item: Any) -> str:
    """A foreach stage's path with ${key}, ${item} and ${item.field} filled in."""
    path = path.replace("${key}", str(key)).replace("${item}", str(item))
    return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), path)


def _resolved_paths(dvc: dict[str, Any], section: str) -> dict[str, list[str]]:
    """``section`` (deps or outs) of every stage, a foreach stage once per item with its paths filled in."""
    paths: dict[str, list[str]] = {}
    for name, body in dvc["stages"].items():
        entries = [e if isinstance(e, str) else next(iter(e)) for e in body.get("do", body).get(section, [])]
        items = body.get("foreach")
        if items is None:
            paths[name] = entries
            continue
        for key, item in items.items() if isinstance(items, dict) else zip(items, items, strict=True):
            paths[f"{name}@{key}"] = [_fill(e, key, item) for e in entries]
    return paths


def deps_inside_folder_outputs(dvc: dict[str, Any]) -> list[str]:
    """Deps that name a file inside another stage's folder output (what `dvc exp run` trips over in a clone
    whose DVC cache lacks the committed folder listing: see the note at the top of dvc.yaml)."""
    outs = [out for stage_outs in _resolved_paths(dvc, "outs").values() for out in stage_outs]
    return [
        f"{stage}: {dep} in {out}"
        for stage, deps in _resolved_paths(dvc, "deps").items()
        for dep in deps
        for out in outs
        if dep.startswith(out.rstrip("/") + "/")
    ]


def test_no_stage_reads_a_file_inside_a_folder_output() -> None:
    """Outputs another stage reads from are declared file by file; the check catches a folder output."""
    assert deps_inside_folder_outputs(DVC) == []
    broken = copy.deepcopy(DVC)
    broken["stages"]["grade_questions"]["do"]["outs"] = ["data/grading/${key}"]
    assert "score_failures@pool: data/grading/pool/attempts.parquet in data/grading/pool" in (
        deps_inside_folder_outputs(broken)
    )


def test_the_stage_time_bench_times_every_stage_of_dvc_yaml_in_run_order() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("stage_times", ROOT / "bench" / "stage_times.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    names = {
        f"{name}@{item}" if "foreach" in body else name
        for name, body in stages.items()
        for item in (body.get("foreach") or [None])
    }
    assert set(bench.STAGES) == names and len(bench.STAGES) == len(names)
    order = bench.STAGES.index  # run order: what a stage reads is written before it
    for before, after in [
        ("prepare_pool", "grade_questions@pool"),
        ("grade_questions@pool", "score_failures@pool"),
        ("score_failures@eval", "build_database"),
        ("sample_questions", "generate_solutions"),
        ("train_student", "evaluate@student"),
        ("evaluate@student", "breakdown"),
    ]:
        assert order(before) < order(after)
