"""The alarm list's table follows the engine's snapshots row by row.

A frame inserts a new alarm's row and removes a cleared one instead of rewriting every row
below it; these tests check that the table still shows exactly the open alarms in display order
through raises, acknowledgements and clears, and that a new alarm leaves the rows below alone.
"""

from __future__ import annotations

import random
from dataclasses import replace

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from station.domain.alarms import Alarm, AlarmKind, AlarmState, Priority
from station.ui.alarm_list import AlarmList

MARK = Qt.ItemDataRole.UserRole + 1  # a tag the list never writes


def _alarm(n: int, priority: Priority, state: AlarmState = AlarmState.ACTIVE) -> Alarm:
    return Alarm(
        alarm_id=f"a{n}",
        device_id=f"dev-{n}",
        bed=f"Bed {n}",
        kind=AlarmKind.PHYSIOLOGICAL,
        parameter="heartrate",
        priority=priority,
        state=state,
        value=170.0,
        limit=120.0,
        message=f"HR high {n}",
        raised_at=1_700_000_000.0 + n,
        at=1_700_000_000.0 + n,
    )


def _shown(lst: AlarmList) -> list[tuple[str, str, str]]:
    table = lst.table
    rows = []
    for row in range(table.rowCount()):
        cells = [table.item(row, col) for col in range(table.columnCount())]
        assert all(c is not None for c in cells), f"row {row} has an empty cell"
        rows.append((cells[0].data(Qt.ItemDataRole.UserRole), cells[2].text(), cells[3].text()))
    return rows


def _expected(lst: AlarmList) -> list[tuple[str, str, str]]:
    return [
        (a.alarm_id, a.message, a.state.value + (f" by {a.by}" if a.by else ""))
        for a in lst.alarms()
    ]


def test_the_table_matches_the_open_alarms_through_raises_acks_and_clears(
    qtbot: QtBot,
) -> None:
    lst = AlarmList()
    qtbot.addWidget(lst)
    rnd = random.Random(7)
    live: dict[str, Alarm] = {}
    priorities = list(Priority)
    for step in range(300):
        choice = rnd.random()
        if choice < 0.45 or not live:
            a = _alarm(step, rnd.choice(priorities))
        elif choice < 0.75:
            a = replace(live[rnd.choice(sorted(live))], state=AlarmState.ACKNOWLEDGED, by="nurse")
        else:
            a = replace(live[rnd.choice(sorted(live))], state=AlarmState.CLEARED)
        if a.state == AlarmState.CLEARED:
            live.pop(a.alarm_id)
        else:
            live[a.alarm_id] = a
        lst.update_alarm(a)
        if rnd.random() < 0.4:  # several snapshots in one frame, as in a burst
            continue
        lst.render_if_dirty()
        assert _shown(lst) == _expected(lst), f"after step {step}"
    lst.render_if_dirty()
    assert _shown(lst) == _expected(lst)
    assert lst.table.rowCount() == len(live)


def test_a_new_alarm_on_top_leaves_the_rows_below_untouched(qtbot: QtBot) -> None:
    lst = AlarmList()
    qtbot.addWidget(lst)
    for n in range(20):
        lst.update_alarm(_alarm(n, Priority.MEDIUM))
    lst.render_if_dirty()
    for row in range(lst.table.rowCount()):
        lst.table.item(row, 2).setData(MARK, "kept")
    lst.update_alarm(_alarm(99, Priority.HIGH))
    lst.render_if_dirty()
    assert _shown(lst)[0][0] == "a99"
    assert lst.table.item(0, 2).data(MARK) is None  # the new row
    assert [lst.table.item(r, 2).data(MARK) for r in range(1, 21)] == ["kept"] * 20
    assert _shown(lst) == _expected(lst)


def test_the_selected_alarm_stays_selected_when_a_row_is_inserted_above(qtbot: QtBot) -> None:
    lst = AlarmList()
    qtbot.addWidget(lst)
    for n in range(5):
        lst.update_alarm(_alarm(n, Priority.MEDIUM))
    lst.render_if_dirty()
    lst.table.selectRow(2)
    chosen = lst.selected_id()
    assert chosen is not None
    lst.update_alarm(_alarm(50, Priority.HIGH))
    lst.render_if_dirty()
    assert lst.selected_id() == chosen
    assert lst.ack.isEnabled()
