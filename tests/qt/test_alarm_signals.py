"""pytest-qt: what a nurse sees and hears of an alarm — colour, mark and message on the tile,
blink rates measured off the painted widgets, the audio pause countdown, the acknowledging user."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.alarms import Priority
from station.services.audit.writer import AuditWriter
from station.ui import theme
from station.ui.audio_bar import AudioBar
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Wiring

# IEC 60601-1-8 flash frequencies → allowed periods in seconds.
HIGH_PERIOD = (1 / 2.8, 1 / 1.4)
MEDIUM_PERIOD = (1 / 0.8, 1 / 0.4)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return from_mapping(
        {
            "station": {"data_dir": str(tmp_path)},
            "ward": {"beds": 2, "devices": {"mon-1": 1}},
            "devices": {"admission": "open"},  # mon-9 and rogue-7 are walk-ins
        }
    )


@pytest.fixture
def ward(wire: Wiring, settings: Settings, clock: FakeClock, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The screen and a core as the app wires them, a nurse logged in (acknowledgements and
    limits pass the action layer's role check)."""
    audit = AuditWriter(tmp_path / "audit", clock=clock)
    audit.start()
    screen = wire(settings, clock, audit)
    yield screen.window, screen.core
    assert audit.close(5.0)


def _on_phases(sample: object, clock: FakeClock, seconds: float, step: float = 0.01) -> list[float]:
    """Times at which an indicator switched on, sampled every ``step`` of simulated time."""
    start = clock.now
    onsets: list[float] = []
    was_on = None
    while clock.now - start < seconds:
        on = sample()  # type: ignore[operator]
        if on and was_on is False:
            onsets.append(clock.now)
        was_on = on
        clock.now += step
    return onsets


def _period(onsets: list[float]) -> float:
    assert len(onsets) >= 3, onsets
    gaps = [b - a for a, b in itertools.pairwise(onsets)]
    return sum(gaps) / len(gaps)


def test_a_new_alarm_is_painted_at_once_not_at_the_render_tick(
    ward, clock: FakeClock, qtbot: QtBot
) -> None:  # type: ignore[no-untyped-def]
    window, core = ward
    window.render_timer.stop()  # no tick will come: only the alarm's own frame can paint it
    frames = len(window.paint_times.frame_ms)
    core.on_accepted(accepted("mon-1", clock.now, heartrate=134))
    qtbot.waitUntil(lambda: len(window.paint_times.alarm_paint_ms) == 1, timeout=2000)
    assert window.tiles["Bed 1"].banner.text().startswith("*** HR 134 > 120")
    assert window.alarm_list.table.item(0, 2).text() == "HR 134 > 120"
    # Not a whole frame: the curves and the other tiles wait for the tick.
    assert len(window.paint_times.frame_ms) == frames


@pytest.mark.parametrize(
    ("values", "priority", "mark", "message"),
    [
        ({"heartrate": 134}, Priority.HIGH, "***", "HR 134 > 120"),
        (
            {"bloodpressure": {"systolic": 170, "diastolic": 80}},
            Priority.MEDIUM,
            "**",
            "NIBP sys 170 > 160",
        ),
        ({"temperature": 38.9}, Priority.LOW, "*", "Temp 38.9 > 38.5"),
    ],
    ids=["high", "medium", "low"],
)
def test_limit_crossing_shows_priority_colour_mark_and_message(
    ward, clock: FakeClock, values: dict[str, object], priority: Priority, mark: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    window, core = ward
    core.on_accepted(accepted("mon-1", clock.now, **values))
    window.paint_frame()
    tile = window.tiles["Bed 1"]
    assert tile.banner.text().startswith(f"{mark} {message}")
    assert tile.border == theme.ALARM_BG[priority]  # the border takes the colour
    # Colour is never the only cue: the mark and the words are in the alarm list too.
    row = window.alarm_list.table
    assert row.item(0, 0).text() == mark
    assert row.item(0, 2).text() == message


@pytest.mark.parametrize(
    ("values", "priority", "allowed"),
    [
        ({"heartrate": 150}, Priority.HIGH, HIGH_PERIOD),
        ({"bloodpressure": {"systolic": 175, "diastolic": 80}}, Priority.MEDIUM, MEDIUM_PERIOD),
    ],
    ids=["high", "medium"],
)
def test_measured_blink_period_is_within_iec_range(
    ward,
    clock: FakeClock,
    values: dict[str, object],
    priority: Priority,
    allowed: tuple[float, float],
) -> None:  # type: ignore[no-untyped-def]
    window, core = ward
    core.on_accepted(accepted("mon-1", clock.now, **values))
    tile = window.tiles["Bed 1"]
    bg = theme.ALARM_BG[priority]

    def banner_on() -> bool:
        window.paint_frame()
        return tile.banner.look[1] == bg  # filled: on; outlined: off

    period = _period(_on_phases(banner_on, clock, seconds=8.0))
    assert allowed[0] <= period <= allowed[1], period

    def lamp_on() -> bool:
        window.paint_frame()
        return bg in window.audio.lamp.styleSheet()

    lamp_period = _period(_on_phases(lamp_on, clock, seconds=8.0))
    assert allowed[0] <= lamp_period <= allowed[1], lamp_period


def test_low_priority_does_not_flash(ward, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    window, core = ward
    core.on_accepted(accepted("mon-1", clock.now, temperature=39.0))
    bg = theme.ALARM_BG[Priority.LOW]
    states = set()
    for _ in range(300):
        window.paint_frame()
        states.add(window.tiles["Bed 1"].banner.look[1] == bg)
        clock.now += 0.01
    assert states == {True}


def test_audio_pause_shows_its_countdown_and_expires(qtbot: QtBot, clock: FakeClock) -> None:
    bar = AudioBar("nurse-ann", clock, pause_s=120, reminder_s=180)
    qtbot.addWidget(bar)
    with qtbot.waitSignal(bar.action_taken) as paused:
        bar.toggle_pause()
    assert paused.args[0] == "alarm.audio_pause"
    assert paused.args[1] == "nurse-ann"
    assert bar.countdown.text() == "AUDIO PAUSED 2:00"
    assert bar.pause_button.text() == "Resume audio"
    clock.now += 65
    bar.tick()
    assert bar.countdown.text() == "AUDIO PAUSED 0:55"
    clock.now += 56
    bar.tick()
    assert bar.countdown.text() == ""
    assert bar.pause_button.text() == "Pause audio"


def test_a_higher_priority_alarm_sounds_through_the_pause(ward, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    window, core = ward
    core.on_accepted(accepted("mon-1", clock.now, temperature=39.0))  # low
    window.audio.tick()
    assert window.audio.last_cue is not None
    assert window.audio.last_cue.priority == Priority.LOW
    window.audio.toggle_pause()
    clock.now += 40
    window.audio.last_cue = None
    window.audio.tick()
    assert window.audio.last_cue is None  # the low alarm is silenced
    core.on_accepted(accepted("mon-1", clock.now, heartrate=160))  # new, high
    window.audio.tick()
    assert window.audio.last_cue is not None
    assert window.audio.last_cue.priority == Priority.HIGH


def test_acknowledgement_records_the_user(ward, clock: FakeClock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window, core = ward
    core.on_accepted(accepted("mon-1", clock.now, heartrate=150))
    alarm = window.alarm_list.alarms()[0]
    window.acknowledge_requested.emit(alarm.alarm_id, "nurse-ann")
    acked = window.alarm_list.alarms()[0]
    assert (acked.state.value, acked.by) == ("acknowledged", "nurse-ann")
    episode = window.history.episodes()[0]
    assert episode.acknowledged_by == "nurse-ann"
    assert episode.time_to_ack_s == 0


def test_a_nurse_changes_a_beds_limits_and_the_change_is_audited(
    qtbot: QtBot, ward, clock: FakeClock, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from station.domain.alarms import AlarmLimits

    window, core = ward
    new = {"heartrate": AlarmLimits(low=50, high=140, priority=Priority.HIGH, hysteresis=2)}
    window.limits_requested.emit("Bed 1", new, None, "nurse-ann")
    assert window.bed_limits["Bed 1"].limits["heartrate"].high == 140
    core.on_accepted(accepted("mon-1", clock.now, heartrate=134))
    assert window.alarm_list.alarms() == []  # 134 is within Bed 1's new limit
    core.on_accepted(accepted("mon-1", clock.now, heartrate=145))
    assert window.alarm_list.alarms()[0].message == "HR 145 > 140"
    # Other beds keep the ward's limits.
    assert core._engine.limits_for("Bed 2")["heartrate"].high == 120
    import json

    path = tmp_path / "audit" / "audit.jsonl"

    def change_record() -> dict[str, object] | None:  # the audit writer is on its own thread
        records = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        return next((r for r in records if r["action"] == "alarm.limits_change"), None)

    qtbot.waitUntil(lambda: change_record() is not None, timeout=5000)
    change = change_record()
    assert change is not None
    assert change["actor"] == "nurse-ann"
    assert change["target"] == "Bed 1"
    assert change["details"]["changes"] == {"heartrate": {"high": [120.0, 140.0]}}


def test_an_escalated_alarm_can_still_be_acknowledged_from_the_list(
    qtbot: QtBot, ward, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    window, core = ward
    core.on_accepted(accepted("mon-1", clock.now, heartrate=150))
    clock.now += 61
    core.tick()
    window.paint_frame()
    assert window.alarm_list.alarms()[0].state.value == "escalated"
    window.alarm_list.table.selectRow(0)
    assert window.alarm_list.ack.isEnabled()
    qtbot.mouseClick(window.alarm_list.ack, Qt.MouseButton.LeftButton)
    assert window.alarm_list.alarms()[0].state.value == "acknowledged"


def test_a_latched_alarm_shows_latched_and_clears_on_acknowledge(
    tmp_path: Path, wire: Wiring, clock: FakeClock
) -> None:
    settings = from_mapping(
        {
            "station": {"data_dir": str(tmp_path)},
            "ward": {"beds": 1, "devices": {"mon-1": 1}},
            "alarms": {"heartrate": {"latching": True}},
        }
    )
    audit = AuditWriter(tmp_path / "audit", clock=clock)
    audit.start()
    screen = wire(settings, clock, audit)
    window, core = screen.window, screen.core
    assert core is not None
    try:
        core.on_accepted(accepted("mon-1", clock.now, heartrate=150))
        clock.now += 1
        core.on_accepted(accepted("mon-1", clock.now, heartrate=80))
        window.paint_frame()
        latched = window.alarm_list.alarms()[0]
        assert latched.state.value == "latched"
        assert "(latched)" in window.tiles["Bed 1"].banner.text()
        window.alarm_list.table.selectRow(0)
        window.alarm_list.acknowledge_selected()
        assert window.alarm_list.alarms() == []
    finally:
        assert audit.close(5.0)


def test_invalid_data_alarms_only_the_bed_whose_topic_proves_the_sender(
    ward, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    from station.domain.messages import Rejection

    window, core = ward
    shared, own = "healthcare/sensor_data", "healthcare/devices/{}/vitals"
    # Anyone may claim mon-1's id on the shared topic: no alarm on Bed 1 for that.
    for _ in range(5):
        core.on_rejected(Rejection("schema", "heartrate: bad", shared, clock.now, "mon-1", ""))
    # A device without a bed, proven by its topic: listed for an admin, no alarm, no bed.
    for _ in range(5):
        core.on_rejected(Rejection("schema", "bad", own.format("rogue-7"), clock.now, "rogue-7"))
    assert window.alarm_list.alarms() == []
    # mon-1 on its own topic (the broker's ACL vouches): its bed gets the technical alarm.
    for _ in range(5):
        core.on_rejected(Rejection("schema", "bad", own.format("mon-1"), clock.now, "mon-1", ""))
    alarms = window.alarm_list.alarms()
    assert [(a.device_id, a.parameter, a.bed) for a in alarms] == [
        ("mon-1", "invalid_data", "Bed 1")
    ]
    # The next valid device still finds Bed 2 free: the rogue did not take it.
    core.on_accepted(accepted("mon-9", clock.now))
    assert core._ward.assigned("mon-9") == "Bed 2"
    assert core._ward.assigned("rogue-7") is None


def test_the_sound_state_is_reported_again_so_a_lost_report_heals(
    qtbot: QtBot, clock: FakeClock
) -> None:
    bar = AudioBar("nurse-ann", clock)
    qtbot.addWidget(bar)
    reports: list[str] = []
    bar.sound_problem.connect(reports.append)
    bar.self_test()
    state = bar.sound.problem or ""  # "no audio output device" here; "" where sound works
    assert reports == [state]
    for _ in range(25):
        clock.now += 1
        bar.tick()
    assert reports == [state] * 3  # at start, after 10 s and after 20 s


def test_rejections_are_audited_once_a_minute_per_reason_with_the_count(
    ward, clock: FakeClock, tmp_path: Path, qtbot: QtBot
) -> None:  # type: ignore[no-untyped-def]
    import json

    from station.domain.messages import Rejection

    _window, core = ward
    topic = "healthcare/sensor_data"
    for _ in range(50):  # a flood of forgeries: one record, not fifty
        core.on_rejected(Rejection("schema", "heartrate: 999", topic, clock.now, "mon-1", "{}"))
    core.on_rejected(Rejection("json", "not JSON", topic, clock.now, None, "{"))
    clock.advance(61)
    core.on_rejected(Rejection("schema", "heartrate: 999", topic, clock.now, "mon-1", "{}"))
    trail = tmp_path / "audit" / "audit.jsonl"

    def rejected() -> list[dict[str, object]]:
        lines = trail.read_text().splitlines() if trail.exists() else []
        return [r for r in map(json.loads, lines) if r["action"] == "ingest.rejected"]

    qtbot.waitUntil(lambda: len(rejected()) >= 3, timeout=5000)
    records: list = rejected()  # type: ignore[type-arg]
    assert [(r["details"]["reason"], r["details"]["not_recorded_before"]) for r in records] == [
        ("schema", 0),
        ("json", 0),
        ("schema", 49),
    ], records  # what was recorded, should it differ
    assert {r["outcome"] for r in records} == {"failure"}
    assert records[0]["details"]["claimed_device"] == "mon-1"
    assert "999" not in json.dumps(records)  # the payload's values stay in the quarantine
