"""pytest-qt: one bed's alarm audio pause (issue 15, point 1), as a nurse at the bed uses it.

The tile's menu pauses Bed 1 for 1 minute: Bed 1's alarm stops sounding while Bed 2's still
sounds, the tile and the alarm list count down, the pause is audited with the nurse and the bed,
and when it runs out the status bar says so and its end is sounded once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.alarms import Priority
from station.services.audit.writer import AuditWriter
from station.ui.main_window import MainWindow
from station.ui.tile import pause_text
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import NURSE, Screen, Wiring


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return from_mapping(
        {
            "station": {"data_dir": str(tmp_path)},
            "ward": {"beds": 2, "devices": {"mon-1": 1, "mon-2": 2}},
        }
    )


@pytest.fixture
def audit(tmp_path: Path, clock: FakeClock) -> Iterator[AuditWriter]:
    writer = AuditWriter(tmp_path / "audit", clock=clock)
    writer.start()
    yield writer
    writer.close(5.0)


@pytest.fixture
def screen(wire: Wiring, settings: Settings, clock: FakeClock, audit: AuditWriter) -> Screen:
    return wire(settings, clock, audit)


def _second(window: MainWindow, clock: FakeClock, seconds: float = 1.0) -> None:
    """Let ``seconds`` of station time pass, frame by frame at the render rate (the audio
    ticks in the frame that crosses a whole second)."""
    step = window.render_timer.interval() / 1000
    for _ in range(round(seconds / step)):
        clock.now += step
        window.paint_frame()


def test_pausing_one_bed_silences_it_counts_down_and_reminds_when_it_ends(
    qtbot: QtBot, screen: Screen, clock: FakeClock, audit: AuditWriter
) -> None:
    window, core = screen.window, screen.core
    assert core is not None
    core.on_accepted(accepted("mon-1", clock.now, heartrate=160))  # Bed 1: high
    _second(window, clock)
    assert window.audio.last_cue is not None
    assert window.audio.last_cue.priority == Priority.HIGH
    tile = window.tiles["Bed 1"]

    with qtbot.waitSignal(window.audio.action_taken) as taken:
        tile.audio_pause_wanted.emit("Bed 1", 60.0)  # the tile menu's "1 min"
    assert taken.args == ["alarm.audio_pause_bed", NURSE, {"bed": "Bed 1", "seconds": 60.0}]
    core.on_accepted(accepted("mon-2", clock.now, temperature=39.0))  # Bed 2: low, later
    window.audio.last_cue = None
    _second(window, clock, 11)  # past the high burst's 10 s repeat
    assert window.audio.last_cue is not None
    assert window.audio.last_cue.alarm_id != window.alarm_list.alarms()[0].alarm_id
    assert window.audio.last_cue.priority == Priority.LOW  # Bed 2 sounds, Bed 1 does not
    left = window.beds["Bed 1"].audio_paused_s
    assert left is not None
    assert 45 <= left <= 50
    assert f"AUDIO PAUSED {pause_text(left)}" in tile.banner.text()
    bed1_rows = [
        window.alarm_list.table.item(r, 3).text()
        for r in range(window.alarm_list.table.rowCount())
        if window.alarm_list.table.item(r, 1).text() == "Bed 1"
    ]
    assert bed1_rows == [f"active · audio paused {pause_text(left)}"]

    window.audio.last_cue = None
    _second(window, clock, 50)  # the minute is over
    assert window.beds["Bed 1"].audio_paused_s is None
    assert "AUDIO PAUSED" not in tile.banner.text()
    assert window.statusBar().currentMessage() == "Bed 1: alarm audio pause ended"
    assert window.audio.last_cue is not None
    assert window.audio.last_cue.priority == Priority.HIGH  # Bed 1 sounds again

    assert audit.close(5.0)
    actions = [json.loads(line)["action"] for line in audit.path.read_text().splitlines()]
    assert "alarm.audio_pause_bed" in actions


def test_a_nurse_resumes_a_paused_bed_early_and_it_is_audited(
    qtbot: QtBot, screen: Screen, clock: FakeClock
) -> None:
    window = screen.window
    tile = window.tiles["Bed 2"]
    tile.audio_pause_wanted.emit("Bed 2", 180.0)
    _second(window, clock)
    # The pause runs on the real monotonic clock: a loaded machine may have used a second.
    left = window.beds["Bed 2"].audio_paused_s
    assert left in (179, 180)
    assert tile.banner.text() == f"AUDIO PAUSED {pause_text(left)}"  # no alarm: the pause alone
    with qtbot.waitSignal(window.audio.action_taken) as taken:
        tile.audio_resume_wanted.emit("Bed 2")
    assert taken.args[0] == "alarm.audio_resume_bed"
    assert taken.args[2] == {"bed": "Bed 2"}
    _second(window, clock)
    assert window.beds["Bed 2"].audio_paused_s is None
    assert tile.banner.text() == ""
