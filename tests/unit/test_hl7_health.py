"""How the HL7 interface's state reaches people: connection changes audited once per change (not
per retry), the ``hl7`` technical alarm after ``down_alarm_s`` of trouble on the monotonic clock
and cleared by the next accepted message (refusals only when they persist, ``AR``/``CE`` like no
answer), ``hl7_outbox`` for a full or unusable outbox, and the status bar's words."""

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
    for _ in range(3):  # three in a row, nothing accepted between: the engine's trouble
        health.refused("AE")
        clock.advance(DOWN_S / 2)
        health.tick()
    assert conditions.changes[0][0] == "hl7"  # dated from the first refusal
    assert "refusing messages" in conditions.changes[0][3]
    assert health.status() == "HL7: refused 1 min, 3 rejected"
    health.unsendable()  # a station fault: counted, not the engine's trouble
    assert health.rejected == 4
    health.queue(0, False)
    health.connected()  # a connection says nothing of what the engine takes
    assert [c[1] for c in conditions.changes] == [True]
    health.accepted()
    assert [c[1] for c in conditions.changes] == [True, False]
    assert [f["details"]["state"] for a, f in audit.records if a == "hl7.connection"] == ["up"]


def test_one_refused_message_is_not_the_engines_trouble() -> None:
    health, _audit, conditions, clock = _health()
    health.accepted()
    health.refused("AE")  # observations off: nothing else is sent for a long while
    for _ in range(10):
        clock.advance(DOWN_S)
        health.tick()
    health.refused("CR")  # two in a row, hours apart: still not three
    clock.advance(DOWN_S)
    health.tick()
    assert conditions.changes == []
    assert health.status() == "HL7: up, 2 rejected"
    health.accepted()  # the streak starts again
    health.refused("AE")
    health.refused("AE")
    clock.advance(DOWN_S)
    health.tick()
    assert conditions.changes == []


def test_an_engine_not_accepting_for_the_down_time_is_alarmed_like_a_down_one() -> None:
    health, audit, conditions, clock = _health()
    health.queue(1, False)
    for _ in range(7):  # AR/CE: the message is tried again, and again
        health.deferred("AR")
        clock.advance(10)
        health.tick()
    ((parameter, present, _priority, message),) = conditions.changes
    assert (parameter, present) == ("hl7", True)
    assert "not accepting messages for 1 min (answered AR): 1 messages waiting" in message
    assert health.status() == "HL7: not accepting 1 min, 1 queued"
    health.gave_up("AR")  # quarantined after too many: counted, still in trouble
    assert health.rejected == 1
    assert health.status().startswith("HL7: not accepting")
    health.accepted()
    assert [c[1] for c in conditions.changes] == [True, False]
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
