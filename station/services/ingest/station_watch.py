"""The station's watches on the core thread: what must raise a technical alarm when nothing
arrives to say so.

Run from the core's watch timer: devices gone quiet (every quarter second), and once a second
invalid data that stopped, flags and flooding that ended or began, a station clock step, the live
feed down while the broker is up, the alarm engine's escalations, the ingest loop, the audit
trail and the historian. Broker connection changes end or raise the "broker lost" alarm here too.

Time: durations (no-data, flags, flooding, the live feed's grace) run on the monotonic clock of
a :class:`~station.domain.clock.StationClock`; a station clock step raises a technical alarm and
changes no timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from station.domain.alarms import Priority
from station.domain.clock import STEP_ALARM_S
from station.domain.status import ConnectionState
from station.domain.ward import MONITORED
from station.domain.watch import DeviceWatch, InvalidDataWatch
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.historian import Historian
from station.services.ingest.live_inbox import Flooding
from station.services.ingest.live_path import FLAG_HOLD_S, LivePath
from station.services.ingest.pacing import MAX_TRACKED

log = logging.getLogger(__name__)

FLOOD_HOLD_S = 5.0
LIVE_GRACE_S = 10.0
"""The live feed may be down this long (connecting at start) before it is a technical alarm."""


class StationWatch:
    """Technical alarms raised by time passing: silences, ended flags, clock, feeds, health.

    Owned by the core worker and run on the core thread. ``flooding`` is the live feed's report
    of sources over their budget (set by the worker's ``attach``).
    """

    def __init__(
        self,
        state: CoreState,
        alarms: AlarmChanges,
        live: LivePath,
        watch: DeviceWatch,
        invalid: InvalidDataWatch,
        historian: Historian | None,
        ingest_alive: Callable[[], bool],
    ) -> None:
        self._settings = state.settings
        self._station = state.settings.station.id
        self._time = state.time
        self._ward = state.ward
        self._policy = state.policy
        self._engine = state.engine
        self._audit = state.audit
        self._alarms = alarms
        self._live = live
        self._watch = watch
        self._invalid = invalid
        self._historian = historian
        self._ingest_alive = ingest_alive
        self.flooding: Callable[[float], list[Flooding]] | None = None
        self._flooding: dict[str, float] = {}  # source device → monotonic time last flooding
        self._connected: bool | None = None
        self._live_down_since: float | None = None
        self._step_reported = 0.0
        self._step_at: float | None = None
        self._historian_failing = False

    def silence(self) -> None:
        """Devices gone quiet (monotonic: a clock step neither delays nor hastens it)."""
        mono = self._time.monotonic()
        for device in self._watch.newly_silent(mono):
            bed = self._ward.assigned(device) or ""
            if self._policy.get(bed, MONITORED).standby:
                continue
            timeout = self._watch.timeout(device)
            self._alarms.technical(
                device, bed, "no_data", True, Priority.MEDIUM, f"No data for {timeout:.0f} s"
            )

    def tick(self, mono: float) -> None:
        """Once a second: quiet devices, ended and new flags, clock, live feed, escalations,
        and the ingest loop, the audit trail and the historian."""
        self.silence()
        for device in self._invalid.recovered(mono):
            self._alarms.technical(device, "", "invalid_data", False)
        self._flags(mono)
        self._clock(mono)
        self._live_feed(mono)
        self._alarms.emit(self._engine.tick())
        self._alarms.station(
            "ingest", not self._ingest_alive(), Priority.HIGH, "Ingest stopped: no MQTT loop"
        )
        fault = self._audit.fault
        self._alarms.station("audit", fault is not None, Priority.HIGH, f"Audit trail: {fault}")
        if self._historian is not None:
            st = self._historian.status()
            if st.ok == self._historian_failing:  # a change either way is audited once
                self._historian_failing = not st.ok
                self._audit.record(
                    "historian.fault" if not st.ok else "historian.recovered",
                    target="historian",
                    outcome="failure" if not st.ok else "success",
                    details={"error": (st.error or "")[:300], "backlog": st.backlog},
                )
            self._alarms.station(
                "historian",
                not st.ok,
                Priority.LOW,
                f"Historian failing ({st.backlog} queued): {st.error}",
            )

    def live_connection(self, connected: bool) -> None:
        """The live feed connected or was lost (also: attached, not yet connected)."""
        self._live_down_since = None if connected else self._time.monotonic()

    def connection(self, state: ConnectionState) -> None:
        """Audit a broker connection change and keep the 'broker lost' alarm in step."""
        if state.deliberate:
            self._audit.record(
                "mqtt.disconnected",
                target=f"{self._settings.mqtt.host}:{self._settings.mqtt.port}",
                details={"detail": state.detail},
            )
            return
        if state.connected == self._connected:
            return  # a reconnect attempt failing again is not news for the audit trail
        self._connected = state.connected
        self._audit.record(
            "mqtt.connected" if state.connected else "mqtt.disconnected",
            target=f"{self._settings.mqtt.host}:{self._settings.mqtt.port}",
            outcome="success" if state.connected else "failure",
            details={"detail": state.detail},
        )
        self._alarms.station(
            "broker", not state.connected, Priority.HIGH, f"Broker: {state.detail}"
        )

    def _flags(self, mono: float) -> None:
        """End flags and flooding that have stopped; raise flooding where it started."""
        self._live.end_flags(mono)
        for f in self.flooding(mono) if self.flooding is not None else []:
            self._flooded(f, mono)
        for device, since in list(self._flooding.items()):
            if mono - since > FLOOD_HOLD_S:
                del self._flooding[device]
                self._alarms.technical(device, "", "flooding", False)
                self._audit.record("device.flooding_ended", target=device, details={})

    def _flooded(self, f: Flooding, mono: float) -> None:
        """A source over its live budget: a technical alarm on its bed when the topic proves
        the device (or admission is open, where the shared topic is how devices speak), and an
        audit record when it starts. Its excess is kept for the record, not shown."""
        self._live.cut_off(f.source)
        attributable = f.proven or self._ward.admission == "open"
        bed = self._ward.assigned(f.source) if attributable else None
        first = f.source not in self._flooding
        if first and len(self._flooding) >= MAX_TRACKED:
            return
        self._flooding[f.source] = mono
        if not first:
            return
        budget = self._settings.devices.live_budget_hz
        self._audit.record(
            "device.flooding",
            target=f.source,
            outcome="failure",
            details={
                "device": f.source,
                "proven": f.proven,
                "bed": bed,
                "rate": f.rate,
                "budget": budget,
                "excess": "kept for the record; the newest value shown at the budget rate",
            },
        )
        log.warning("device %s floods: %d msg/s over a budget of %d", f.source, f.rate, budget)
        self._alarms.technical(
            f.source,
            bed or "",
            "flooding",
            True,
            Priority.MEDIUM,
            f"Device flooding: {f.rate} msg/s (live budget {budget}/s); excess recorded, not shown",
        )

    def _clock(self, mono: float) -> None:
        """A station clock step: a technical alarm for a minute and an audit record. Nothing
        else changes: timeouts are monotonic and ages are judged by both readings."""
        step = self._time.step()
        if abs(step - self._step_reported) > STEP_ALARM_S:
            self._audit.record(
                "clock.step",
                target=self._station,
                outcome="failure",
                details={"step_s": round(step - self._step_reported, 3), "since_start": step},
            )
            self._step_reported, self._step_at = step, mono
            self._alarms.station("clock", False, Priority.MEDIUM, "")
            self._alarms.station(
                "clock",
                True,
                Priority.MEDIUM,
                f"Station clock changed by {step:+.0f} s: timers and alarms unaffected",
            )
        elif self._step_at is not None and mono - self._step_at > FLAG_HOLD_S:
            self._step_at = None
            self._alarms.station("clock", False, Priority.MEDIUM, "")

    def _live_feed(self, mono: float) -> None:
        """The live feed down while the broker is up: the screen is fed by the recording
        session, which may lag behind a backlog; the nurse should know."""
        down = self._live_down_since
        missing = (
            self._live.take is not None
            and self._connected is True
            and down is not None
            and mono - down > LIVE_GRACE_S
        )
        self._alarms.station(
            "live",
            missing,
            Priority.MEDIUM,
            "Live feed down: screen and alarms fed by the recording session (may lag)",
        )
