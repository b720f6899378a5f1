"""The live path on the core thread: each device's newest messages to the alarms and the screen.

The live feed (:mod:`station.services.ingest.live_feed`) queues each device's newest messages
within its budget; :meth:`LivePath.drain` parses and checks them, and :meth:`LivePath.show` puts
one accepted message through live order, age, alarms and no-data, then onto the screen, in
batches (one queued event to the GUI per batch instead of one per message). A device the live
feed has not delivered for :data:`LIVE_STALE_S` (the live session down, refused by the broker's
ACL, or cut off for flooding) is fed here by the record path instead, within the same budget, so
the ward is never blind while either session works.

Ordering cannot be moved far ahead by one message (see :mod:`station.domain.sequence`): an
implausible ``seq`` or a device clock ahead of the station is flagged on the bed for
:data:`FLAG_HOLD_S`, audited, and cannot make later genuine data late. Data too old for the live
window (a replay, a device clock behind) is stored, never shown or alarmed, and said so on the bed.
"""

from __future__ import annotations

from collections.abc import Callable

from station.domain.alarms import Priority
from station.domain.ingest import parse
from station.domain.messages import Accepted, Rejection
from station.domain.sequence import Order, SequenceTracker
from station.domain.ward import MONITORED
from station.domain.watch import DeviceWatch
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.device_gate import DeviceGate
from station.services.ingest.live_inbox import LiveItem
from station.services.ingest.message_order import observe
from station.services.ingest.pacing import MAX_TRACKED, OneShot, flush_soon

LIVE_STALE_S = 2.0
"""A device the live feed has not delivered for this long is fed live by the record path."""
BATCH_MS = 50
"""Live messages reach the window in batches this far apart (alarms do not wait for them): one
queued event each, which costs the GUI a lock hand-over. The batch timer is the bound while the
core is idle; a busy core fires it late, so a batch this old also goes with the next message
(under a flood, batches came 1.4 s apart with 1,280 messages, 30-70 ms of the GUI's time each:
``station bench --beds 64 --flood --historian``)."""
FLAG_HOLD_S = 60.0
"""A flag (implausible seq, clock ahead) stays this long after its last message: a forgery must
be seen by a nurse, not blink for one message."""

Shown = tuple[str, Accepted]
"""A message gone live, with its bed."""


class LivePath:
    """Live order, age, alarms and the screen for accepted messages, and the live flags.

    Owned by the core worker and run on the core thread. ``take`` is the live feed's queue (set
    by the worker's ``attach``); ``timer`` is the worker's single-shot batch timer (None before
    the thread runs: each message is handed on at once). ``batch`` is the worker's
    ``vitals_batch`` signal: the one hand-over of what went live. (A signal per message as well,
    connected to nothing on the station, was measured a third of the live path's time while 64
    beds published at once: ``py-spy`` during ``station bench --scenario alarms``.)
    """

    def __init__(
        self,
        state: CoreState,
        alarms: AlarmChanges,
        devices: DeviceGate,
        watch: DeviceWatch,
        batch: Callable[[tuple[Shown, ...]], None],
    ) -> None:
        self._settings = state.settings
        self._time = state.time
        self._ward = state.ward
        self._policy = state.policy
        self._engine = state.engine
        self._alarms = alarms
        self._devices = devices
        self._watch = watch
        self._on_batch = batch
        self.take: Callable[[], list[LiveItem]] | None = None
        self.timer: OneShot | None = None
        self.late = 0
        """Messages kept off the live view: out of order, or older than the live window."""
        self.rejected = 0
        """Live messages refused (counted only here: the record path counts every rejection)."""
        self._order = SequenceTracker()  # what is newest, what is flagged
        self._seen: dict[str, float] = {}  # device → monotonic time the live feed had it
        self._fallback: dict[str, tuple[float, int]] = {}  # device → (second began, count)
        self._flags: dict[tuple[str, str], float] = {}  # (device, parameter) → last flagged
        self._skewed: set[str] = set()
        self._battery_low: set[str] = set()
        self._shown: list[Shown] = []
        self._batch_since = 0.0  # monotonic time of the first message of the batch

    def drain(self) -> None:
        """Everything the live feed queued (each device within its budget): parse, check,
        alarm, show. Rejections are the record path's to count: it sees every message."""
        if self.take is None:
            return
        filters = self._settings.mqtt.topics
        for item in self.take():
            result = parse(item.topic, item.payload, item.received_at, filters)
            if isinstance(result, Rejection) or (
                self._devices.refusal(result, audit=False) is not None
            ):
                self.rejected += 1
                continue
            self.show(result, from_feed=True)

    def fallback(self, device: str) -> bool:
        """Whether a record-path message of ``device`` goes live: the live feed has not had
        the device for :data:`LIVE_STALE_S`, and the device is within its budget this second."""
        mono = self._time.monotonic()
        seen = self._seen.get(device)
        if seen is not None and mono - seen <= LIVE_STALE_S:
            return False
        start, count = self._fallback.pop(device, (mono, 0))
        if mono - start >= 1.0:
            start, count = mono, 0
        if len(self._fallback) >= MAX_TRACKED:
            del self._fallback[next(iter(self._fallback))]
        self._fallback[device] = (start, count + 1)
        return count < self._settings.devices.live_budget_hz

    def show(self, msg: Accepted, from_feed: bool) -> None:
        """Live order, age, alarms, screen for one accepted message."""
        device = msg.device_id
        bed = self._ward.assigned(device)
        if bed is None and self._ward.admission == "open":
            bed = self._ward.bed_of(device, msg.received_at)
        if bed is None:
            return
        mono = self._time.monotonic()
        if from_feed:
            self._seen[device] = mono
        policy = self._policy.get(bed, MONITORED)
        if policy.standby:
            self._watch.seen(device, mono)
            return  # discharged: kept, never shown or alarmed until the next admission
        values = msg.payload.numeric_fields()
        verdict = observe(self._order, msg)
        if verdict.order is Order.DUPLICATE:
            return  # the other session's copy, or a redelivery
        if verdict.order is Order.LATE:
            self.late += 1  # out of order: stored at its device time, never live
            return
        if verdict.suspect is not None:
            self._flag(msg, bed, verdict.suspect, mono)
            if verdict.order is Order.SUSPECT:
                return
        lag = self._time.lag(msg.received_at, msg.device_time)
        if lag > self._settings.alarms.live_window_s:
            # Old data (retained, replayed after an outage) is stored, never alarmed or shown
            # live. A device whose every message is late has a clock behind the station's:
            # say so, or its bed would sit silent with no alarm at all.
            self.late += 1
            if device not in self._skewed:
                self._skewed.add(device)
                self._alarms.technical(
                    device,
                    bed,
                    "clock",
                    True,
                    Priority.MEDIUM,
                    f"Device data {lag:.0f} s old: not shown live (clock or replay)",
                )
            return
        if device in self._skewed:
            self._skewed.discard(device)
            self._alarms.technical(device, bed, "clock", False)
        if self._watch.seen(device, mono):
            self._alarms.technical(device, bed, "no_data", False)
        self._alarms.emit(
            self._engine.evaluate(device, bed, values, msg.payload.device_alert, at=msg.device_time)
        )
        self._check_battery(device, bed, msg.payload.battery)
        if not self._shown:
            self._batch_since = mono
        self._shown.append((bed, msg))
        # No event loop yet (tests): at once.
        flush_soon(self.timer, self.flush, full=mono - self._batch_since >= BATCH_MS / 1000)

    def flush(self) -> None:
        """Hand the window what went live since the last batch."""
        if self._shown:
            batch, self._shown = tuple(self._shown), []
            self._on_batch(batch)

    def fresh(self, device: str) -> None:
        """Watch a device as new (moved, or its bed back from standby): its no-data, clock and
        battery alarms must be raised again where it now is."""
        self._watch.restart(device, self._time.monotonic())
        self._skewed.discard(device)
        self._battery_low.discard(device)

    def cut_off(self, device: str) -> None:
        """The live session no longer delivers ``device`` (it floods): the record path feeds
        its bed from now on, not after :data:`LIVE_STALE_S` of silence."""
        self._seen.pop(device, None)

    def end_flags(self, mono: float) -> None:
        """End the flags whose device has sent nothing flagged for :data:`FLAG_HOLD_S`."""
        for (device, parameter), since in list(self._flags.items()):
            if mono - since > FLAG_HOLD_S:
                del self._flags[(device, parameter)]
                self._alarms.technical(device, "", parameter, False)

    def _flag(self, msg: Accepted, bed: str, kind: str, mono: float) -> None:
        """A message that could have moved the device's order far ahead: a technical alarm on
        the bed, held :data:`FLAG_HOLD_S`, and an audit record (at most one a minute)."""
        parameter = "sequence" if kind == "sequence" else "clock_ahead"
        if kind == "sequence":
            text = f"Implausible sequence number {msg.payload.seq}: message not shown"
        else:
            ahead = msg.device_time - msg.received_at
            text = f"Device clock {ahead:.0f} s ahead of the station"
        key = (msg.device_id, parameter)
        if key not in self._flags:
            self._alarms.technical(msg.device_id, bed, parameter, True, Priority.MEDIUM, text)
        self._flags[key] = mono
        self._devices.audit_refusal(msg, f"suspect_{kind}", text)

    def _check_battery(self, device: str, bed: str, battery: float | None) -> None:
        if battery is None:
            return
        threshold = self._settings.alarms.battery_low_pct
        # Hysteresis of 5 points: a battery hovering at the threshold does not flap the alarm.
        low = battery < threshold or (device in self._battery_low and battery < threshold + 5)
        (self._battery_low.add if low else self._battery_low.discard)(device)
        self._alarms.technical(
            device, bed, "battery", low, Priority.LOW, f"Battery low: {battery:.0f} %"
        )
