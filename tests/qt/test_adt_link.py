"""pytest-qt: the ADT link as the app builds it (``station.links``): off unless ``[adt] enabled``,
registered among the hospital's interfaces, its status in words for the status bar, and a
listener that cannot listen (a bed table the ward does not fit, a port in use) said as a
technical alarm and in the status, with the admit dialog's census reachable through the ward
admin. Its thread stops with it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.clock import StationClock
from station.links import HospitalLinks, LinkParts, StationConditions
from station.links.adt_in import AdtLink, build
from station.presenters.ward_admin import WardAdmin
from station.services.hospital import adt_listener
from station.services.hospital.adt_listener import THREAD_NAME


class Audit:
    fault: str | None = None

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(self, action: str, **fields: Any) -> None:
        self.records.append({"action": action, **fields})


@pytest.fixture
def parts(qtbot: QtBot, tmp_path: Path) -> Iterator[Any]:
    made: list[WardAdmin] = []

    def make(**adt: Any) -> LinkParts:
        settings: Settings = from_mapping(
            {"station": {"data_dir": str(tmp_path)}, "ward": {"beds": 4}, "adt": adt}
        )
        ward = WardAdmin(settings, Audit())
        made.append(ward)
        conditions = StationConditions()
        return LinkParts(settings, tmp_path, Audit(), conditions, ward, None, None, StationClock())

    yield make
    for ward in made:
        assert ward.stop(5.0)
    assert THREAD_NAME not in {t.name for t in threading.enumerate()}


def test_off_unless_enabled_and_registered_among_the_interfaces(parts: Any) -> None:
    assert build(parts()) is None
    assert HospitalLinks(parts()).links == []
    links = HospitalLinks(parts(enabled=True, port=0))
    assert [type(link) for link in links.links] == [AdtLink]


def test_a_listening_link_says_so_and_offers_its_census(qtbot: QtBot, parts: Any) -> None:
    given = parts(enabled=True, port=0)
    link = build(given)
    assert isinstance(link, AdtLink)
    assert given.ward.adt_feed is link.feed
    link.start()
    try:
        qtbot.waitUntil(lambda: (link.status() or "").startswith("ADT: listening"), timeout=5000)
        assert link.status() == f"ADT: listening :{link.listener.port}, 0 today"
    finally:
        assert link.stop(5.0)


def test_a_link_told_to_stop_ends_its_thread_without_being_waited_for(
    qtbot: QtBot, parts: Any
) -> None:
    """HospitalLinks tells every link to stop before it waits for any."""
    link = build(parts(enabled=True, port=0))
    assert isinstance(link, AdtLink)
    link.start()
    qtbot.waitUntil(lambda: link.listener.port > 0, timeout=5000)
    link.request_stop()
    qtbot.waitUntil(
        lambda: THREAD_NAME not in {t.name for t in threading.enumerate()}, timeout=5000
    )
    assert link.stop(0.0)


def test_a_bed_table_the_ward_does_not_fit_is_a_technical_alarm(qtbot: QtBot, parts: Any) -> None:
    given = parts(enabled=True, port=0, beds={"ICU^1^A": 9})
    link = build(given)
    assert link is not None
    with qtbot.waitSignal(given.conditions.changed, timeout=5000) as raised:
        link.start()
    parameter, present, priority, message = raised.args
    assert (parameter, present, priority) == ("adt", True, "medium")
    assert "bed 9" in message
    qtbot.waitUntil(lambda: "not listening" in (link.status() or ""), timeout=5000)
    assert link.stop(5.0)


def test_a_port_in_use_is_a_technical_alarm_audited_once_until_it_frees(
    qtbot: QtBot, parts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adt_listener, "RETRY_S", 0.05)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    given = parts(enabled=True, port=port)
    link = build(given)
    assert link is not None
    try:
        with qtbot.waitSignal(given.conditions.changed, timeout=5000) as raised:
            link.start()
        assert raised.args == ["adt", True, "medium", f"ADT feed not received: port {port} in use"]
        qtbot.waitUntil(lambda: link.status() == f"ADT: not listening: port {port} in use")
        qtbot.waitUntil(lambda: link.feed.version >= 3, timeout=5000)  # tried three times
        holder.close()
        with qtbot.waitSignal(
            given.conditions.changed, timeout=5000, check_params_cb=lambda *a: a[1] is False
        ):
            pass
        qtbot.waitUntil(lambda: (link.status() or "").startswith("ADT: listening"), timeout=5000)
    finally:
        holder.close()
        assert link.stop(5.0)
    said = [(r["action"], r.get("details")) for r in given.audit.records]
    assert said == [
        ("adt.fault", {"error": f"port {port} in use"}),
        ("adt.listening", {"state": f"listening :{port}"}),
    ]
