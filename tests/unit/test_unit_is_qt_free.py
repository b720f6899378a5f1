"""``tests/unit`` runs without Qt: no module here imports Qt, the GUI or pytest-qt, neither directly
(read from the source) nor through what it imports (checked in a fresh interpreter). A test that
needs Qt belongs in ``tests/qt``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

UNIT = Path(__file__).resolve().parent
REPO = UNIT.parents[1]
# Qt itself, what draws with it, pytest-qt, and the station's GUI (its window and the root).
QT = (
    "PySide6",
    "shiboken6",
    "PyQt5",
    "PyQt6",
    "pyqtgraph",
    "pytestqt",
    "station.ui",
    "station.app",
)
QT_FIXTURES = frozenset({"qtbot", "qapp", "qapp_args", "qapp_cls", "qtmodeltester", "qtlog"})
IMPORTERS = frozenset({"import_module", "importorskip", "__import__"})

# Imports every module (the suite's conftest too: pytest loads it for these tests) in a fresh
# interpreter; prints the first whose import brought Qt in, then the Qt modules loaded at the end.
CHILD = """
import importlib, json, sys
QT = {qt!r}
def loaded():
    return sorted(m for m in sys.modules if any(m == r or m.startswith(r + ".") for r in QT))
first = None
for name in sys.argv[1:]:
    importlib.import_module(name)
    if first is None and loaded():
        first = name
print(json.dumps({{"first": first, "loaded": loaded()}}))
"""


def unit_modules() -> list[Path]:
    return sorted(UNIT.glob("*.py"))


def is_qt(name: str) -> bool:
    return any(name == root or name.startswith(f"{root}.") for root in QT)


def imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Each module an import statement (or an ``importlib``/``importorskip`` call with a literal
    name) brings in, with its line; ``from a import b`` counts as ``a`` and ``a.b``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in IMPORTERS and isinstance(first, ast.Constant):
                yield node.lineno, str(first.value)


def qt_fixtures(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Parameters that ask pytest-qt for a fixture (it would start a QApplication)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
                if arg.arg in QT_FIXTURES:
                    yield node.lineno, arg.arg


def test_the_scan_sees_each_way_of_importing_qt() -> None:
    source = """
import PySide6.QtCore
from pyqtgraph import PlotWidget
from station import app
from station.ui.theme import COLOURS
importlib.import_module("pytestqt.qtbot")
def test_x(qtbot): ...
"""
    tree = ast.parse(source)
    found = {name for _line, name in imported_names(tree) if is_qt(name)}
    assert found >= {
        "PySide6.QtCore",
        "pyqtgraph",
        "station.app",
        "station.ui.theme",
        "pytestqt.qtbot",
    }
    assert [name for _line, name in qt_fixtures(tree)] == ["qtbot"]
    clean = ast.parse("import station.services.storage.spool\nfrom station.domain import ward\n")
    assert not [name for _line, name in imported_names(clean) if is_qt(name)]


def test_no_unit_test_module_imports_qt_directly() -> None:
    found = []
    for path in unit_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{path.name}:{n}: {name}" for n, name in imported_names(tree) if is_qt(name)]
        found += [f"{path.name}:{n}: fixture {name}" for n, name in qt_fixtures(tree)]
    assert found == [], "Qt in tests/unit (move the test to tests/qt):\n" + "\n".join(found)


def test_no_unit_test_module_brings_qt_in_through_what_it_imports() -> None:
    names = ["tests.conftest"] + [f"tests.unit.{path.stem}" for path in unit_modules()]
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(qt=QT), *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "PySide6" not in seen["loaded"], f"PySide6 brought in, first by {seen['first']}"
    assert seen["loaded"] == [], f"Qt brought in, first by {seen['first']}: {seen['loaded']}"
