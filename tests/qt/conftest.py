"""Qt fixtures: ``wire``, the station's screen wired as the composition root wires it
(:mod:`tests.qt.wiring`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.qt.wiring import Wiring


@pytest.fixture
def wire(qtbot: QtBot, tmp_path: Path) -> Iterator[Wiring]:
    """Build wired screens: ``wire(settings, clock, audit, ...)`` (see :class:`Wiring`)."""
    wiring = Wiring(qtbot, tmp_path)
    yield wiring
    wiring.close()


@pytest.fixture(autouse=True)
def collect_on_the_main_thread() -> Iterator[None]:
    """Free each Qt test's widgets and stations here, on the main thread, after the test. Left
    to chance, Python's cycle collector runs on whichever thread allocates next: in a later
    test that may be paho's or an embedded broker's, and PySide deleting QObjects there crashed
    the test process (a segmentation fault in tests/unit/test_demo_broker.py, seen in CI)."""
    yield
    gc.collect()
