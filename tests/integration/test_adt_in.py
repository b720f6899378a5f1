"""Issue 18, acceptance: ADT A01 → A02 → A03 sent to a running station over MLLP by a client
built on hl7apy move what the beds show exactly as the admit dialog would, with audit records
naming the interface; a malformed or conflicting message gets AE and changes nothing.

A real Mosquitto, a real station in this process (its window offscreen, its ward admin saving
the encrypted patient table), and the station's own MLLP listener on a free loopback port. The
client frames each message, waits for its ACK and checks it with hl7apy's strict validation.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import date
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message
from pytestqt.qtbot import QtBot

from station.app import Station
from station.domain.adt.framing import END, wrap
from station.domain.alarms import AlarmKind
from station.links.adt_in import AdtLink
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import running_station, station_settings
from tests.unit.test_adt_messages import adt, loose

ACTOR, ROLE = "adt:HOSP", "interface"
MRN = "MRN-4711"


class MllpClient:
    """The hospital's engine: one connection, one message at a time, each answered. It talks on
    a thread of its own while the test's thread (the station's GUI thread) runs the event loop
    that applies the message."""

    def __init__(self, port: int, qtbot: QtBot) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self._qtbot = qtbot

    def send(self, text: str) -> Message:
        """Send ``text`` (an ER7 message) and return the ACK, validated strictly."""
        got: list[bytes] = []
        engine = threading.Thread(target=lambda: got.append(self._exchange(text)), daemon=True)
        engine.start()
        self._qtbot.waitUntil(lambda: not engine.is_alive(), timeout=15_000)
        [raw] = got
        assert raw, "the station closed the connection without an ACK"
        ack = parse_message(raw.decode("utf-8"), validation_level=VALIDATION_LEVEL.STRICT,
                            find_groups=True)  # fmt: skip
        assert ack.validate()
        return ack

    def _exchange(self, text: str) -> bytes:
        self._sock.sendall(wrap(text.encode("utf-8")))
        got = b""
        while not got.endswith(END):
            chunk = self._sock.recv(4096)
            if not chunk:
                return b""
            got += chunk
        return got[1 : -len(END)]

    def close(self) -> None:
        self._sock.close()


def adt_link(station: Station) -> AdtLink:
    [link] = [link for link in station.links.links if isinstance(link, AdtLink)]
    return link


def shown(station: Station, bed: str) -> tuple[str, bool]:
    """What a bed's tile shows of its patient, and whether it is on standby."""
    data = station.window.tiles[bed].data
    return data.patient_text, data.standby


def in_force(station: Station, bed: str) -> bool:
    """The core thread has the ward's bed policy for ``bed`` (sent queued)."""
    return station.core._policy.get(bed) == station.ward.policy()[bed]


def codes(ack: Message) -> tuple[str, str]:
    return ack.msa.msa_1.to_er7(), ack.msa.msa_2.to_er7()


def test_a01_a02_a03_move_the_beds_as_the_dialog_would(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = station_settings(
        mosquitto,
        tmp_path / "data",
        ward={"beds": 4, "devices": {}},
        adt={"enabled": True, "port": 0, "receiving_facility": "ICU"},
    )
    with running_station(qtbot, mosquitto, settings, monkeypatch) as st:
        link = adt_link(st)
        qtbot.waitUntil(lambda: link.listener.port > 0, timeout=10_000)
        qtbot.waitUntil(lambda: (link.status() or "").startswith("ADT: listening"), timeout=5_000)
        # The dialog's admission of another patient, for comparison.
        st.ward.admit_now("Bed 3", "Dialog Patient", "MRN-D", date(1960, 5, 6), "nurse-test")
        engine = MllpClient(link.listener.port, qtbot)
        try:
            # -- A01: admitted to Bed 2, shown as the dialog's admission in Bed 3 is --------------
            ack = engine.send(adt("A01", control_id="ADT-1", bed=("ICU", "101", "2")))
            assert codes(ack) == ("AA", "ADT-1")
            patient = st.ward.occupant("Bed 2")
            assert patient is not None
            assert (patient.mrn, patient.admitted_by) == (MRN, ACTOR)
            qtbot.waitUntil(lambda: in_force(st, "Bed 2"), timeout=5_000)
            assert shown(st, "Bed 2") == shown(st, "Bed 3") == ("Name hidden (no consent)", False)
            assert st.ward.policy()["Bed 2"].store == st.ward.policy()["Bed 3"].store

            # -- A02: moved to Bed 4; Bed 2 empty again ------------------------------------------
            ack = engine.send(
                adt("A02", control_id="ADT-2", bed=("ICU", "102", "4"), prior=("ICU", "101", "2"))
            )
            assert codes(ack) == ("AA", "ADT-2")
            assert st.ward.occupant("Bed 2") is None
            moved = st.ward.occupant("Bed 4")
            assert moved is not None
            assert moved.patient_id == patient.patient_id
            qtbot.waitUntil(lambda: in_force(st, "Bed 4"), timeout=5_000)
            assert shown(st, "Bed 4") == ("Name hidden (no consent)", False)
            assert shown(st, "Bed 2") == ("", False)

            # -- a conflicting message: AE with the reason, nothing changes -----------------------
            before = st.ward.table.to_dict()
            ack = engine.send(adt("A01", control_id="ADT-3", mrn="MRN-9", bed=("ICU", "1", "3")))
            assert codes(ack) == ("AE", "ADT-3")
            assert "Bed 3 is occupied" in ack.err.err_8.to_er7()
            # -- a malformed one: AE naming the field, nothing changes ----------------------------
            broken = loose(adt("A03", control_id="ADT-4", bed=("ICU", "102", "4")))
            broken.pid.pid_7 = "1950x102"
            ack = engine.send(broken.to_er7())
            assert codes(ack) == ("AE", "ADT-4")
            assert ack.err.err_2.to_er7() == "PID^1^7"
            assert st.ward.table.to_dict() == before
            qtbot.waitUntil(
                lambda: any(a.parameter == "adt_refused" for a in st.window.alarm_list.alarms()),
                timeout=5_000,
            )
            [refused] = [a for a in st.window.alarm_list.alarms() if a.parameter == "adt_refused"]
            assert refused.kind is AlarmKind.TECHNICAL
            assert MRN not in refused.message

            # -- A03: discharged; the bed goes to standby as after the dialog's discharge --------
            ack = engine.send(adt("A03", control_id="ADT-5", bed=("ICU", "102", "4")))
            assert codes(ack) == ("AA", "ADT-5")
            assert st.ward.occupant("Bed 4") is None
            qtbot.waitUntil(lambda: in_force(st, "Bed 4"), timeout=5_000)
            st.ward.discharge_now("Bed 3", "nurse-test")
            qtbot.waitUntil(lambda: in_force(st, "Bed 3"), timeout=5_000)
            assert shown(st, "Bed 4") == shown(st, "Bed 3") == ("", True)

            # -- a resend of the A01 after all this changes nothing -------------------------------
            ack = engine.send(adt("A01", control_id="ADT-1", bed=("ICU", "101", "2")))
            assert codes(ack) == ("AA", "ADT-1")
            assert st.ward.occupant("Bed 2") is None
            assert link.status() == f"ADT: listening :{link.listener.port}, 6 today"
        finally:
            engine.close()

    records = [json.loads(line) for line in st.audit.path.read_text().splitlines()]
    changes = [r for r in records if r["action"].startswith("patient.") and r["actor"] == ACTOR]
    assert [(r["action"], r["target"]) for r in changes] == [
        ("patient.admit", "Bed 2"),
        ("patient.transfer", "Bed 4"),
        ("patient.discharge", "Bed 4"),
    ]
    assert {r["role"] for r in changes} == {ROLE}
    received = [r for r in records if r["action"] == "adt.received"]
    assert [(r["details"]["control_id"], r["details"]["ack"], r["details"]["outcome"])
            for r in received] == [
        ("ADT-1", "AA", "applied"),
        ("ADT-2", "AA", "applied"),
        ("ADT-3", "AE", "refused"),
        ("ADT-4", "AE", "rejected"),
        ("ADT-5", "AA", "applied"),
        ("ADT-1", "AA", "duplicate"),
    ]  # fmt: skip
    assert {(r["actor"], r["role"]) for r in received} == {(ACTOR, ROLE)}
    trail = json.dumps(records)
    for identity in ("Vandersloot", "Ottilie", MRN, "1950-01-02", "19500102"):
        assert identity not in trail


def test_the_links_stop_before_the_ward_admin(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after it, the ADT listener could still hand the ward admin a message while it
    stops (or once it has)."""
    settings = station_settings(
        mosquitto, tmp_path / "data", ward={"beds": 2, "devices": {}},
        adt={"enabled": True, "port": 0, "receiving_facility": "ICU"},
    )  # fmt: skip
    order: list[str] = []
    with running_station(qtbot, mosquitto, settings, monkeypatch) as st:
        link = adt_link(st)
        qtbot.waitUntil(lambda: link.listener.port > 0, timeout=10_000)
        links_stop, ward_stop = st.links.stop, st.ward.stop

        def stop_links(timeout: float) -> bool:
            order.append("links")
            return links_stop(timeout)

        def stop_ward(timeout: float) -> bool:
            order.append("ward")
            return ward_stop(timeout)

        monkeypatch.setattr(st.links, "stop", stop_links)
        monkeypatch.setattr(st.ward, "stop", stop_ward)
    assert order == ["links", "ward"]
