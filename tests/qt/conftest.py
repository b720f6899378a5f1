"""Qt fixtures: ``wire``, the station's screen wired as the composition root wires it
(:mod:`tests.qt.wiring`)."""

from __future__ import annotations

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
