"""How the HL7 interface's state reaches people: connection changes audited once per change (not
per retry), the ``hl7`` technical alarm after ``down_alarm_s`` of trouble on the monotonic clock
and cleared by the next accepted message, ``hl7_outbox`` for a full or unusable outbox, and the
status bar's words."""

from __future__ import annotations

from typing import Any

from station.services.hospital.hl7_health import Health
from tests.fakes import FakeClock

DOWN_S = 60.0


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.fault: str | None = None

    def record(self, action: str, **fields: Any) -> None:
        self.records.append((action, fields))

    def actions(self) -> list[str]:
        return [action for action, _ in self.records]


class Conditions:
    def __init__(self) -> None:
        self.changes: list[tuple[str, bool, str, str]] = []

    def __call__(self, parameter: str, present: bool, priority: str, message: str) -> None:
        self.changes.append((parameter, present, priority, message))


def _health() -> tuple[Health, Audit, Conditions, FakeClock]:
    audit, conditions, clock = Audit(), Conditions(), FakeClock(1000.0)
    health = Health(audit=audit, condition=conditions, monotonic=clock, down_alarm_s=DOWN_S,
                    peer="engine:2575")  # fmt: skip
    return health, audit, conditions, clock


def test_a_down_engine_is_audited_once_and_alarmed_after_the_down_time() -> None:
    health, audit, conditions, clock = _health()
    assert health.status() == "HL7: connecting"
    health.queue(3, False)
    for _ in range(10):  # ten retries in the first minute
        health.failed("cannot connect: ECONNREFUSED")
        clock.advance(5.9)
        health.tick()
    assert conditions.changes == []
    assert health.status() == "HL7: down 59 s, 3 queued"
    clock.advance(1)
    health.tick()
    health.tick()
    ((parameter, present, priority, message),) = conditions.changes
    assert (parameter, present, priority) == ("hl7", True, "medium")
    assert "down for 1 min (cannot connect: ECONNREFUSED): 3 messages waiting" in message
    health.accepted()
    assert conditions.changes[-1][:2] == ("hl7", False)
    assert [f["details"]["state"] for a, f in audit.records if a == "hl7.connection"] == [
        "down",
        "up",
    ]
    health.queue(0, False)
    assert health.status() == "HL7: up"


def test_an_engine_refusing_everything_is_trouble_too_and_counted() -> None:
    health, audit, conditions, clock = _health()
    health.accepted()
    health.refused("AE")
    clock.advance(DOWN_S)
    health.refused("AR")
    assert conditions.changes[0][0] == "hl7"
    assert "refusing messages" in conditions.changes[0][3]
    assert health.status() == "HL7: refused 1 min, 2 rejected"
    health.unsendable()  # a station fault: counted, not the engine's trouble
    assert health.rejected == 3
    assert [f["details"]["state"] for a, f in audit.records if a == "hl7.connection"] == ["up"]


def test_a_connection_with_nothing_waiting_ends_the_trouble() -> None:
    health, _audit, conditions, clock = _health()
    health.failed("no answer within the time allowed (waiting for the ACK)")
    clock.advance(DOWN_S)
    health.tick()
    health.queue(1, False)
    health.connected()  # something waits: only an accepted message says it works
    assert [c[1] for c in conditions.changes] == [True]
    health.queue(0, False)
    health.connected()
    assert [c[1] for c in conditions.changes] == [True, False]


def test_a_full_or_unusable_outbox_is_its_own_alarm_and_audited_on_change() -> None:
    health, audit, conditions, _clock = _health()
    health.queue(50_000, True)
    health.queue(50_001, True)
    assert health.status() == "HL7: connecting, 50001 queued · outbox full"
    health.fault("outbox not written: disk I/O error")
    health.fault("outbox not written: disk I/O error")
    assert health.status().startswith("HL7: fault")
    health.fault(None, "stores")  # another part: nothing to say
    health.fault(None)
    health.queue(10, False)
    assert [(c[0], c[1]) for c in conditions.changes] == [
        ("hl7_outbox", True),
        ("hl7_outbox", True),  # the message changed: from full to unusable
        ("hl7_outbox", True),  # back to full
        ("hl7_outbox", False),
    ]
    assert audit.actions() == ["hl7.outbox_full", "hl7.fault", "hl7.fault", "hl7.outbox_full"]
