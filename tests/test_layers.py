"""Layers that go one way (issue 27): read every module's imports with `ast`, not by importing them.

Three rules, each a test:
- no import cycle among the modules of `pipeline/`, counting imports inside functions (the lazy
  ones) and under `TYPE_CHECKING`;
- no module of `pipeline/`, `cli/`, `tests/` or `benchmarks/` imports or references another
  `pipeline` module's underscore name (`from .run import _settings`, `run._collect`,
  `monkeypatch.setattr(run, "_collect", ...)`), apart from `PRIVATE_ALLOWED`;
- no function of `pipeline/` or `cli/` longer than `MAX_FUNCTION_LINES`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "stylereel"  # `pipeline/` is installed as `stylereel.pipeline`, `cli/` as `stylereel.cli`
LIBRARY = f"{PACKAGE}.pipeline"
MAX_FUNCTION_LINES = 50

# (file, "module._name"): a test that must replace a private function to simulate a failure inside
# it, where no public name would serve. Each entry says why.
PRIVATE_ALLOWED: dict[tuple[str, str], str] = {}

# (file, function): a function allowed to be longer than MAX_FUNCTION_LINES, with the reason.
LONG_ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Module:
    name: str  # dotted: stylereel.pipeline.io.decode, tests.test_run
    path: Path
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]

    @property
    def where(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def _modules(folder: str, prefix: str) -> list[Module]:
    modules = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(Module(".".join([prefix, *parts]), path, ast.parse(path.read_text(), str(path))))
    return modules


LIBRARY_MODULES = _modules("pipeline", LIBRARY)
CLI_MODULES = _modules("cli", f"{PACKAGE}.cli")
ALL_MODULES = [*LIBRARY_MODULES, *CLI_MODULES, *_modules("tests", "tests"), *_modules("benchmarks", "benchmarks")]
KNOWN = {module.name for module in [*LIBRARY_MODULES, *CLI_MODULES]}


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, relative forms resolved."""
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@dataclass(frozen=True)
class Import:
    target: str  # the module imported from
    name: str | None  # the name taken from it (None: the module itself)
    line: int


def _imports(module: Module) -> Iterator[tuple[Import, str | None, str | None]]:
    """Every import of `module`, anywhere in it, with the local name it binds to a module and the
    dotted name that local stands for (None, None when it binds a name from a module)."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.partition(".")[0]  # `import a.b` binds `a`
                yield Import(alias.name, None, node.lineno), local, alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in KNOWN:
                    yield Import(submodule, None, node.lineno), alias.asname or alias.name, submodule
                else:
                    yield Import(source, alias.name, node.lineno), None, None


def _bindings(module: Module) -> dict[str, str]:
    """Local name -> the dotted name it stands for, for names that imports bind to modules."""
    return {local: dotted for _, local, dotted in _imports(module) if local is not None}


def _dotted(node: ast.AST, bound: dict[str, str]) -> str | None:
    """`run._collect` -> "stylereel.pipeline.run._collect" when `run` is bound to a module."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, bound)
        return f"{base}.{node.attr}" if base else None
    return None


def _split(dotted: str) -> tuple[str, str] | None:
    """"stylereel.pipeline.run._collect" -> ("stylereel.pipeline.run", "_collect"): the longest
    known module and the first name after it."""
    parts = dotted.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:end]) in KNOWN:
            return ".".join(parts[:end]), parts[end]
    return None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(module: Module) -> Iterator[tuple[int, str]]:
    """(line, "module._name") for every use in `module` of another library module's private name."""
    bound = _bindings(module)
    for found, _, _ in _imports(module):
        if found.name is not None and found.target.startswith(LIBRARY) and found.target in KNOWN \
                and found.target != module.name and _is_private(found.name):
            yield found.line, f"{found.target}.{found.name}"
    for node in ast.walk(module.tree):
        dotted = None
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node, bound)
        elif isinstance(node, ast.Call):
            dotted = _patched(node, bound)
        split = _split(dotted) if dotted else None
        if split is not None and split[0].startswith(LIBRARY) and split[0] != module.name and _is_private(split[1]):
            yield node.lineno, f"{split[0]}.{split[1]}"


def _patched(call: ast.Call, bound: dict[str, str]) -> str | None:
    """The name a `setattr`-like call names: `monkeypatch.setattr(run, "_collect", ...)` or
    `monkeypatch.setattr("stylereel.pipeline.run._collect", ...)`."""
    strings = [arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
               for arg in call.args[:2]]
    if strings and strings[0] is not None and strings[0].startswith(f"{PACKAGE}."):
        return strings[0]
    if len(strings) == 2 and strings[1] is not None:
        base = _dotted(call.args[0], bound)
        return f"{base}.{strings[1]}" if base else None
    return None


def _short(dotted: str) -> str:
    return dotted.removeprefix(f"{LIBRARY}.")


def test_no_import_cycle_in_pipeline() -> None:
    graph: dict[str, set[str]] = {module.name: set() for module in LIBRARY_MODULES}
    for module in LIBRARY_MODULES:
        for found, _, _ in _imports(module):
            if found.target in graph and found.target != module.name:
                graph[module.name].add(found.target)
    cycles = _cycles(graph)
    assert not cycles, "import cycles in pipeline/: " + "; ".join(" -> ".join(map(_short, cycle)) for cycle in cycles)


def test_run_imports_the_ray_path_only_inside_functions_and_nothing_imports_the_cli() -> None:
    """`cluster` (the Ray path) is imported lazily, where --ray asks for it; the library never imports `cli`."""
    cluster, found = f"{LIBRARY}.cluster", []
    for module in LIBRARY_MODULES:
        top = {id(node) for node in module.tree.body}
        for node in ast.walk(module.tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = {imported.target for imported, _, _ in _imports(Module(module.name, module.path,
                                                                             ast.Module([node], [])))}
            if cluster in targets and id(node) in top:
                found.append(f"{module.where}:{node.lineno}: imports cluster at the top")
            if any(target.startswith(f"{PACKAGE}.cli") for target in targets):
                found.append(f"{module.where}:{node.lineno}: imports the cli")
    assert not found, "\n".join(found)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each group of modules that import each other (depth-first search)."""
    cycles, state = [], dict.fromkeys(graph, "new")

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state[target] == "open":
                cycles.append([*path[path.index(target):], target])
            elif state[target] == "new":
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if state[node] == "new":
            visit(node, [node])
    return cycles


def test_the_graph_reader_finds_cycles_and_lazy_imports() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    lazy = Module(f"{LIBRARY}.run", ROOT / "pipeline/run.py",
                  ast.parse("def f():\n    from .cluster import go\n    from . import io, checkpoint as c\n"))
    assert {found.target for found, _, _ in _imports(lazy)} == {f"{LIBRARY}.cluster", f"{LIBRARY}.io", f"{LIBRARY}.checkpoint"}
    uses = Module("tests.test_x", ROOT / "tests/test_x.py", ast.parse(
        "from stylereel.pipeline import run\nfrom stylereel.pipeline.io.decode import _problem\n"
        "def test(monkeypatch):\n    run._collect()\n    monkeypatch.setattr(run, '_finish', None)\n"
        "    monkeypatch.setattr('stylereel.pipeline.cluster._finished', None)\n    run.__name__\n"))
    assert sorted(_short(name) for _, name in _private_uses(uses)) == [
        "cluster._finished", "io.decode._problem", "run._collect", "run._finish"]


def test_no_module_uses_another_modules_private_names() -> None:
    found = sorted({f"{module.where}:{line}: {_short(name)}" for module in ALL_MODULES
                    for line, name in _private_uses(module)
                    if (module.where, _short(name)) not in PRIVATE_ALLOWED})
    assert not found, "private names used outside their module:\n" + "\n".join(found)


def test_the_private_allow_list_is_current() -> None:
    used = {(module.where, _short(name)) for module in ALL_MODULES for _, name in _private_uses(module)}
    assert not set(PRIVATE_ALLOWED) - used, "PRIVATE_ALLOWED names a use that is gone"


def test_functions_fit_on_a_screen() -> None:
    long = []
    for module in [*LIBRARY_MODULES, *CLI_MODULES]:
        for node in ast.walk(module.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (module.where, node.name) not in LONG_ALLOWED:
                    long.append(f"{module.where}:{node.lineno}: {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
