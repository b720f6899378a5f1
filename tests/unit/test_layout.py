"""The package's layout rules that import-linter cannot state (docs/architecture.md).

- no module under ``station/`` is over 500 lines: past that a module is several things;
- no import cycle between the station's modules, counting imports made only for type checking
  (import-linter ignores those, and a cycle hidden there is still two modules that each need the
  other's internals);
- ``station/domain`` writes no files: it is data and rules, and the services own the disk.

Pure AST reads of the source, so this runs without Qt and without importing the station.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "station"
MAX_LINES = 500
PATH_WRITES = frozenset({"write_text", "write_bytes", "mkdir", "touch", "unlink", "rmdir"})
OS_WRITES = frozenset({"open", "fdopen", "replace", "rename", "remove", "unlink", "makedirs"})


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every station module ``name`` imports, anywhere in the file (TYPE_CHECKING included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            # `from station.ui import theme` imports the module station.ui.theme
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        yield from (t for t in targets if t in MODULES and t != name)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_modules_hold_at_most_five_hundred_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert len(sizes) > 50, "the layout test found too few modules to judge"
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_no_import_cycle_even_under_type_checking() -> None:
    graph = {name: set(_imports(name, path)) for name, path in MODULES.items()}
    assert sum(map(len, graph.values())) > 100, "the import graph is implausibly small"
    assert _cycle(graph) is None


@pytest.mark.parametrize(
    ("imports", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, ["b", "b2", "b"]),
    ],
)
def test_the_cycle_finder_finds_cycles(
    imports: dict[str, set[str]], cycle: list[str] | None
) -> None:
    assert _cycle(imports) == cycle


def test_the_domain_writes_no_files() -> None:
    writes = []
    for name, path in MODULES.items():
        if not name.startswith("station.domain"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            if _writes(node.func, node):
                writes.append(f"{name}:{node.lineno}")
    assert writes == []


def _writes(func: ast.expr, call: ast.Call) -> bool:
    """Whether a call writes to the file system: ``os.replace(...)`` and its kin, a path's
    ``write_text`` and its kin, or ``open``/``path.open`` with a writing mode."""
    if isinstance(func, ast.Attribute):
        on_os = isinstance(func.value, ast.Name) and func.value.id == "os"
        if (on_os and func.attr in OS_WRITES) or func.attr in PATH_WRITES:
            return True
        return func.attr == "open" and _writing_mode(call, path_open=True)
    return isinstance(func, ast.Name) and func.id == "open" and _writing_mode(call)


def _writing_mode(call: ast.Call, path_open: bool = False) -> bool:
    """Whether an ``open(...)`` call names a mode that writes (a literal mode with w, a or x)."""
    modes = [k.value for k in call.keywords if k.arg == "mode"]
    modes += call.args[:1] if path_open else call.args[1:2]
    return any(
        isinstance(m, ast.Constant) and isinstance(m.value, str) and set(m.value) & set("wax")
        for m in modes
    )


@pytest.mark.parametrize(
    ("source", "writes"),
    [
        ("os.replace(a, b)", True),
        ("path.write_text('x')", True),
        ("open(p, 'wb')", True),
        ("path.open(mode='a')", True),
        ("open(p)", False),
        ("path.open('rb')", False),
        ("text.replace('a', 'b')", False),
        ("dataclasses.replace(x, y=1)", False),
    ],
)
def test_the_write_finder_tells_writes_from_reads(source: str, writes: bool) -> None:
    call = ast.parse(source).body[0]
    assert isinstance(call, ast.Expr)
    assert isinstance(call.value, ast.Call)
    assert _writes(call.value.func, call.value) is writes
