"""Technical alarm ids that two stations of one ward agree on (issue 15.10).

Two "stations" here are two alarm engines, each with its own clock (station B's runs 3.7 s
ahead of A's and detects later), fed the same device messages, as two stations on one broker
are. A device's technical alarm must get one id on both, so an acknowledgement at one applies at
the other; a condition of one station itself must never share an id with another's. Pure: no
Qt, no network.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.domain.alarms import MAX_HEARD, AlarmEngine, AlarmLimits, AlarmState, Priority
from station.domain.ward_events import MAX_NAMED, TechnicalIds, technical_alarm_id
from tests.fakes import FakeClock

T0 = 1_738_411_200.0  # station A's clock
D0 = T0 - 3_600.0  # the device's clock: an hour behind
DEV, BED = "monitor-a", "Bed 1"


@dataclass
class Station:
    """One station's alarm engine and the names it gives technical alarms, as AlarmChanges
    wires them."""

    engine: AlarmEngine
    names: TechnicalIds
    clock: FakeClock

    def message(self, at: float, heartrate: float = 80.0, device: str = DEV) -> None:
        self.engine.evaluate(device, BED, {"heartrate": heartrate}, at=at)

    def technical(
        self, parameter: str, present: bool = True, device: str = DEV, bed: str = BED
    ) -> list[str]:
        def name() -> str:
            return self.names.name(device, bed, parameter, self.engine.heard(device))

        changes = self.engine.technical(
            device, bed, parameter, present, Priority.MEDIUM, "text", name
        )
        return [a.alarm_id for a in changes]


def station(station_id: str, start: float) -> Station:
    clock = FakeClock(start)
    limits = {"heartrate": AlarmLimits(low=50, high=120, priority=Priority.HIGH)}
    return Station(AlarmEngine(limits, clock), TechnicalIds(station_id, clock), clock)


def two_stations() -> tuple[Station, Station]:
    return station("ward-a", T0), station("ward-b", T0 + 3.7)


def test_a_silent_device_gets_one_id_on_both_stations() -> None:
    a, b = two_stations()
    for s in (a, b):
        for i in range(3):
            s.message(D0 + i)
    a.clock.advance(10.0)  # A notices the silence first ...
    (at_a,) = a.technical("no_data")
    b.clock.advance(11.2)  # ... B a little later, by its own clock
    (at_b,) = b.technical("no_data")
    assert at_a == at_b == technical_alarm_id(DEV, BED, "no_data", D0 + 2)


def test_a_peers_acknowledgement_of_a_technical_alarm_applies_by_its_id() -> None:
    a, b = two_stations()
    for s in (a, b):
        s.message(D0)
    (alarm_id,) = a.technical("battery")
    b.technical("battery")
    acked_a = a.engine.acknowledge(alarm_id, "nurse-ann")
    acked_b = b.engine.acknowledge(alarm_id, "nurse-ann")  # as CoreWorker.on_peer_event does
    assert acked_a is not None
    assert acked_b is not None
    assert acked_b.state is AlarmState.ACKNOWLEDGED


def test_the_next_episode_after_new_data_is_named_by_the_new_data() -> None:
    a, b = two_stations()
    for s in (a, b):
        s.message(D0)
        s.technical("no_data")
        s.message(D0 + 30)  # data again: the live path ends the alarm
        s.technical("no_data", present=False)
        s.clock.advance(20)
    assert a.technical("no_data") == b.technical("no_data")
    assert a.engine.open_alarms()[0].alarm_id == technical_alarm_id(DEV, BED, "no_data", D0 + 30)


def test_an_episode_with_the_same_anchor_gets_a_new_id_alike_on_both() -> None:
    """A flag raised again with no good message in between: the history keeps episodes by id,
    so the second must not reuse the first's, and both stations count it alike."""
    a, b = two_stations()
    ids: dict[str, list[str]] = {"a": [], "b": []}
    for key, s in (("a", a), ("b", b)):
        s.message(D0)
        for _ in range(3):
            ids[key] += s.technical("sequence")
            s.technical("sequence", present=False)
            s.clock.advance(61)
    assert ids["a"] == ids["b"]
    assert len(set(ids["a"])) == 3


def test_a_device_on_another_bed_is_another_alarm() -> None:
    names = TechnicalIds("ward-a", FakeClock(T0))
    assert names.name(DEV, "Bed 1", "no_data", D0) != names.name(DEV, "Bed 2", "no_data", D0)


def test_the_stations_own_alarms_never_share_an_id() -> None:
    """Same parameter, same moment, two stations: a peer's acknowledgement of its missing
    sound must not silence ours."""
    a, b = station("ward-a", T0), station("ward-b", T0)
    (own_a,) = a.technical("sound", device="", bed="")
    (own_b,) = b.technical("sound", device="", bed="")
    assert own_a != own_b
    assert b.engine.acknowledge(own_a, "nurse-ann") is None


def test_a_device_not_heard_since_the_start_is_named_per_station() -> None:
    """Nothing shared to name it by: each station's own id, so no acknowledgement of another
    station's (which may have seen the device) applies to it."""
    a, b = station("ward-a", T0), station("ward-b", T0)
    (never_a,) = a.technical("no_data")
    (never_b,) = b.technical("no_data")
    assert never_a != never_b
    assert never_a == technical_alarm_id(DEV, BED, "no_data", T0, "ward-a")


def test_a_name_is_taken_only_when_an_alarm_is_raised() -> None:
    a = station("ward-a", T0)
    a.message(D0)
    calls: list[str] = []

    def name() -> str:
        calls.append("called")
        return "0123456789abcdef"

    raised = a.engine.technical(DEV, BED, "battery", True, Priority.LOW, "Battery low", name)
    assert [x.alarm_id for x in raised] == ["0123456789abcdef"]
    assert a.engine.technical(DEV, BED, "battery", True, Priority.LOW, "Battery low", name) == []
    assert (
        a.engine.technical(DEV, BED, "battery", False, name=name)[0].alarm_id == raised[0].alarm_id
    )
    assert calls == ["called"]


def test_the_test_id_factory_still_wins() -> None:
    engine = AlarmEngine({}, FakeClock(T0), new_id=lambda: "fixed")
    (alarm,) = engine.technical(DEV, BED, "no_data", True, name=lambda: "shared")
    assert alarm.alarm_id == "fixed"


def test_a_forgotten_device_is_no_longer_an_anchor() -> None:
    a = station("ward-a", T0)
    a.message(D0)
    assert a.engine.heard(DEV) == D0
    a.engine.forget_device(DEV)
    assert a.engine.heard(DEV) is None


def test_anchors_and_names_stay_bounded() -> None:
    a = station("ward-a", T0)
    for i in range(MAX_HEARD + 10):
        a.message(D0, device=f"dev-{i}")
    assert a.engine.heard("dev-0") is None  # the oldest went first
    assert a.engine.heard(f"dev-{MAX_HEARD + 9}") == D0
    assert len(a.engine._heard) == MAX_HEARD
    names = TechnicalIds("ward-a", FakeClock(T0))
    for i in range(MAX_NAMED + 10):
        names.name(f"dev-{i}", BED, "battery", D0)
    assert len(names._last) == MAX_NAMED
