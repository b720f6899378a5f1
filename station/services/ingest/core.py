"""The core worker: alarms, the no-data watch, the quarantine, and the fan-out of every event.

Thread model: lives in a ``QThread`` named ``core`` (moved there by the app). Its slots receive
accepted and rejected messages and connection changes from the ``mqtt`` thread over queued
connections; it evaluates alarms with the pure :class:`AlarmEngine`, then hands values on: to the
GUI (signals), the spool and the trend store, the audit writer (thread-safe ``record``) and the
broker (thread-safe ``publish_alarm``). Nothing here waits on the network or paints.

Durability (issue 4): each message's point is collected with its :class:`Delivery`; a group commit
(``[spool] commit_interval_ms``, or at once past :data:`COMMIT_BATCH_V5` messages over MQTT 5,
:data:`COMMIT_BATCH` over 3.1.1) writes the points to the spool in one transaction and only then
acknowledges the messages to the broker, in arrival order. A message's alarms are evaluated before
its commit; a commit (one fsync, a few ms) delays only the messages queued behind it, and never by a
network wait. When the spool refuses (budget, full disk) the policy of
:mod:`station.services.storage.spool` applies: acknowledge anyway, hand the points to the
historian's memory queue, raise and audit a technical alarm.

Order (issue 4): :class:`SequenceTracker` drops duplicates (QoS 1 redeliveries, replays) before
they reach a plot or the alarm engine, keeps late (out-of-order) data off the live view while
still storing it at its device time, and turns a jump in ``seq`` into a data gap on the bed and a
``data.gap`` audit record.

Two paths (issue 13): the **record path** takes every message of the persistent session in order
(:meth:`drain_record`: spool, acknowledgement, trends, duplicates and gaps, the quarantine) and
the **live path** takes each device's newest messages from the live feed within its budget
(:meth:`drain_live`: live order, age, alarms, no-data, the screen). Neither waits behind the
other: each producer has at most one wake-up queued here, and the record path is taken in chunks
of :data:`RECORD_CHUNK`. A device the live feed has not delivered for :data:`LIVE_STALE_S` (the
live session down, or refused by the broker's ACL) is fed to the live path by the record path, so
the ward is never blind while either session works. :meth:`on_accepted` runs both, for a message
that only one session brought.

Time: durations (no-data, escalation, flags) run on the monotonic clock of a
:class:`~station.domain.clock.StationClock`; a station clock step raises a technical alarm and
changes no timeout. Ordering cannot be moved far ahead by one message (see
:mod:`station.domain.sequence`): an implausible ``seq`` or a device clock ahead of the station is
flagged on the bed and cannot make later genuine data late. Rejections put a technical alarm on a
bed only when the topic proves which device sent them.

Signals:
    vitals_received(str bed, Accepted): a live message for a bed's tile (for direct watchers).
    vitals_batch(tuple[tuple[str, Accepted], ...]): the live messages of the last
        :data:`VITALS_BATCH_MS`, what the window takes: one queued event per batch instead of
        one per message (each costs the GUI thread an interpreter-lock hand-over).
    data_gap(str bed, int missing, float at): messages of the bed's device never arrived.
    alarm_changed(Alarm): every alarm state change.
    stats_changed(IngestStats): counters and the quarantine, once a second.
    connection_changed(ConnectionState): forwarded for the status bar after auditing.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from station.config.settings import Settings
from station.domain.alarms import (
    Alarm,
    AlarmEngine,
    AlarmLimits,
    AlarmState,
    Priority,
    event_payload,
)
from station.domain.clock import STEP_ALARM_S, StationClock
from station.domain.devices import DeviceBook, RegistryError
from station.domain.ingest import parse, topic_device
from station.domain.lineprotocol import alarm_line, vitals_line
from station.domain.messages import Accepted, Rejection
from station.domain.ports import AlarmSink, AuditSink
from station.domain.profiles import describe_change
from station.domain.roles import EMERGENCY_USER
from station.domain.sequence import Order, SequenceTracker
from station.domain.status import ConnectionState, IngestStats
from station.domain.ward import MONITORED, BedPolicy, Ward
from station.domain.watch import DeviceWatch, InvalidDataWatch
from station.services.ingest.historian import Historian
from station.services.ingest.live_inbox import Flooding, LiveItem
from station.services.ingest.mqtt_worker import Delivery
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.spool import Row, Spool, SpoolFull
from station.services.storage.trends import TrendSample, TrendStore

log = logging.getLogger(__name__)

QUARANTINE_SIZE = 200
LOG_WINDOW_S = 60.0
STATION_DEVICE = ""  # technical alarms of the station itself have no device and no bed
COMMIT_BATCH = 16
"""Messages that trigger a group commit before the interval ends, over MQTT 3.1.1: below
Mosquitto's default in-flight window of 20, since the broker sends no more until some are
acknowledged, and waiting for more than the window would only wait out the interval."""
COMMIT_BATCH_V5 = 128
"""The same over MQTT 5, where the station sets its own window (``RECEIVE_MAXIMUM`` = 256):
half of it, so the broker keeps sending while a commit is on disk."""
COMPACT_EVERY_S = 60.0  # trend store: raw samples past their window become 1-min aggregates
RECORD_CHUNK = 64
"""Record-path messages handled per turn of the core's event loop: a live wake-up waits at most
one chunk (a few ms), however long the persistent session's backlog."""
VITALS_BATCH_MS = 50
"""Live messages reach the window in batches this far apart (alarms do not wait for them)."""
TREND_BATCH = 256
"""Trend samples written at once when they come faster than :data:`WATCH_MS`."""
LIVE_STALE_S = 2.0
"""A device the live feed has not delivered for this long is fed live by the record path."""
WATCH_MS = 250
"""The no-data watch runs this often: a silence is reported within a quarter second of its
threshold (1 s on ``main``)."""
FLAG_HOLD_S = 60.0
"""A flag (implausible seq, clock ahead) stays this long after its last message: a forgery must
be seen by a nurse, not blink for one message."""
FLOOD_HOLD_S = 5.0
LIVE_GRACE_S = 10.0
"""The live feed may be down this long (connecting at start) before it is a technical alarm."""
MAX_TRACKED = 1024
"""Per-id counters (unknown keys, flooding sources) kept at once: random ids cannot grow them."""

Record = tuple[Accepted | Rejection, Delivery]


def _fingerprint(msg: Accepted) -> tuple[object, ...]:
    """What tells two messages of a device at the same time and ``seq`` apart: their values."""
    return (tuple(sorted(msg.payload.numeric_fields().items())), msg.payload.device_alert)


def _role_of(actor: str | None) -> str:
    """The role an alarm change is recorded under: the station's own, a nurse's, or none for
    an emergency acknowledge made without a login."""
    if not actor:
        return "system"
    return "none" if actor == EMERGENCY_USER else "nurse"


class CoreWorker(QObject):
    """See the module docstring. Construct on the GUI thread, then ``moveToThread``."""

    vitals_received = Signal(str, object)
    vitals_batch = Signal(object)
    devices_changed = Signal(object)
    data_gap = Signal(str, int, float)
    limits_changed = Signal(str, object)
    alarm_changed = Signal(object)
    stats_changed = Signal(object)
    connection_changed = Signal(object)
    _records_waiting = Signal()  # queued to itself: the next record chunk after live work

    def __init__(
        self,
        settings: Settings,
        audit: AuditSink,
        publisher: AlarmSink | None,
        historian: Historian | None,
        ingest_alive: Callable[[], bool],
        clock: Callable[[], float] = time.time,
        *,
        spool: Spool | None = None,
        trends: TrendStore | None = None,
        acknowledge: Callable[[list[Delivery]], None] | None = None,
        registry: DeviceRegistry | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        # Tests drive one fake clock; the station gives the wall and the monotonic one.
        mono = monotonic or (time.monotonic if clock is time.time else clock)
        self._time = StationClock(clock, mono)
        self._settings = settings
        self._station = settings.station.id
        self._audit = audit
        self._publisher = publisher
        self._historian = historian
        self._ingest_alive = ingest_alive
        self._clock = clock
        self._engine = AlarmEngine(
            settings.alarms.limits(),
            clock,
            escalate_after_s=settings.alarms.escalate_after_s,
            monotonic=mono,
        )
        self._registry = registry
        self._registry_stamp: tuple[int, int, int] | None = None
        self._registry_fault: str | None = None
        self._ward = Ward(
            settings.ward.beds,
            settings.ward.devices,
            settings.ward.bed_prefix,
            admission=settings.devices.admission,
        )
        self._policy: dict[str, BedPolicy] = {}
        # Devices pinned to a bed are expected from the start: one that never speaks after a
        # restart must still raise "no data".
        started = mono()
        self._watch = DeviceWatch(settings.alarms.no_data_s)
        for device in settings.ward.devices:
            self._watch.expect(device, started)
        self._invalid = InvalidDataWatch()
        self._battery_low: set[str] = set()
        self._skewed: set[str] = set()
        self._unknown_keys: Counter[str] = Counter()
        self._connected: bool | None = None
        self._accepted = 0
        self._late = 0
        self._reasons: Counter[str] = Counter()
        self._quarantine: deque[Rejection] = deque(maxlen=QUARANTINE_SIZE)
        self._logged_at: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._timer: QTimer | None = None
        self._spool, self._trends, self._ack = spool, trends, acknowledge
        v5 = settings.mqtt.protocol == "5"
        self._commit_batch = COMMIT_BATCH_V5 if v5 else COMMIT_BATCH
        self._sequence = SequenceTracker()  # record path: duplicates, gaps
        self._live_order = SequenceTracker()  # live path: what is newest, what is flagged
        self._live_seen: dict[str, float] = {}  # device → monotonic time the live feed had it
        self._fallback: dict[str, tuple[float, int]] = {}  # device → (second began, count)
        self._flags: dict[tuple[str, str], float] = {}  # (device, parameter) → last flagged
        self._flooding: dict[str, float] = {}  # source device → monotonic time last flooding
        self._step_reported = 0.0
        self._step_at: float | None = None
        self._take_records: Callable[[int], tuple[list[Record], bool]] | None = None
        self._take_live: Callable[[], list[LiveItem]] | None = None
        self._flood_check: Callable[[float], list[Flooding]] | None = None
        self._routed: Callable[[frozenset[str] | None], None] | None = None
        self._live_down_since: float | None = None
        self._watch_turn = 0
        self._shown: list[tuple[str, Accepted]] = []
        self._vitals_timer: QTimer | None = None
        self.live_rejected = 0
        self._rows: list[Row] = []
        self._deliveries: list[Delivery] = []
        self._samples: list[TrendSample] = []
        self._commit_timer: QTimer | None = None
        self._spool_fault: str | None = None
        self._unspooled = 0
        self._trend_fault: str | None = None
        self._compacted_at = clock()
        self._historian_failing = False
        self._ward.set_book(self._load_registry())
        for rec in self._ward.book:
            if rec.active and rec.bed:
                self._watch.expect(rec.device_id, started)  # onboarded: expected, like pins

    @property
    def book(self) -> DeviceBook:
        """The device registry in force (read by the app at start, before the thread runs)."""
        return self._ward.book

    @property
    def accepted(self) -> int:
        """Messages accepted so far (read by the bench from another thread: a plain int)."""
        return self._accepted

    @Slot()
    def start(self) -> None:
        """Start the 1 s watch; called in the core thread once it runs."""
        threading.current_thread().name = "core"  # Qt's thread is 'Dummy-N' in logs otherwise
        self._timer = QTimer(self)
        self._timer.setInterval(WATCH_MS)
        self._timer.timeout.connect(self._on_timer)
        self._timer.start()
        self._records_waiting.connect(self.drain_record, Qt.ConnectionType.QueuedConnection)
        self._vitals_timer = QTimer(self)
        self._vitals_timer.setSingleShot(True)
        self._vitals_timer.setInterval(VITALS_BATCH_MS)
        self._vitals_timer.timeout.connect(self.flush_vitals)
        self._commit_timer = QTimer(self)
        self._commit_timer.setSingleShot(True)
        self._commit_timer.setInterval(self._settings.spool.commit_interval_ms)
        self._commit_timer.timeout.connect(self.commit)

    @Slot()
    def shutdown(self) -> None:
        """Stop and release the timers and commit what is staged. Connected directly to the
        core thread's ``finished``, which Qt emits in that thread: a timer may only be stopped
        by its own thread."""
        if self._timer is not None:
            self._timer.stop()
            self._timer.deleteLater()
            self._timer = None
        if self._commit_timer is not None:
            self._commit_timer.stop()
            self._commit_timer.deleteLater()
            self._commit_timer = None
        if self._vitals_timer is not None:
            self._vitals_timer.stop()
            self._vitals_timer.deleteLater()
            self._vitals_timer = None
        self.commit()  # what arrived last is spooled; its acknowledgement goes nowhere now

    def attach(
        self,
        take_records: Callable[[int], tuple[list[Record], bool]],
        take_live: Callable[[], list[LiveItem]] | None = None,
        flooding: Callable[[float], list[Flooding]] | None = None,
        routed: Callable[[frozenset[str] | None], None] | None = None,
    ) -> None:
        """Where :meth:`drain_record` and :meth:`drain_live` take their messages (the MQTT
        worker's and the live feed's queues), and whom to tell which devices reach a bed (the
        live feed); set by the app before the thread runs."""
        self._take_records = take_records
        self._take_live = take_live
        self._flood_check = flooding
        self._routed = routed
        if routed is not None:
            routed(self._ward.routed())
        self._live_down_since = self._time.monotonic()

    # -- inbound: the record path ----------------------------------------------------------

    @Slot()
    def drain_record(self) -> None:
        """Take one chunk of the persistent session's messages; if more wait, come back after
        whatever else is queued here (a live wake-up goes first)."""
        if self._take_records is None:
            return
        items, more = self._take_records(RECORD_CHUNK)
        try:
            for result, delivery in items:
                try:
                    if isinstance(result, Accepted):
                        self.on_accepted(result, delivery)
                    else:
                        self.on_rejected(result, delivery)
                except Exception:
                    # A bug must cost one message, not the record path: staged, so it is
                    # acknowledged with the others (its redelivery would fail the same way).
                    log.exception("record path failed on a message; it goes on")
                    self._stage(None, None, delivery)
        finally:
            if more:
                self._records_waiting.emit()

    def on_accepted(self, msg: Accepted, delivery: Delivery | None = None) -> None:
        """A valid message of the persistent session (or of a test): recorded, and shown live
        unless the live feed already delivers its device, within the device's live budget (a
        flooding device cut off from the live session must not flood the screen from here)."""
        if self._record(msg, delivery) and self._live_fallback(msg.device_id):
            self._live(msg, from_feed=False)

    def _live_fallback(self, device: str) -> bool:
        """Whether a record-path message of ``device`` goes live: the live feed has not had
        the device for :data:`LIVE_STALE_S`, and the device is within its budget this second."""
        mono = self._time.monotonic()
        seen = self._live_seen.get(device)
        if seen is not None and mono - seen <= LIVE_STALE_S:
            return False
        start, count = self._fallback.pop(device, (mono, 0))
        if mono - start >= 1.0:
            start, count = mono, 0
        if len(self._fallback) >= MAX_TRACKED:
            del self._fallback[next(iter(self._fallback))]
        self._fallback[device] = (start, count + 1)
        return count < self._settings.devices.live_budget_hz

    def _record(self, msg: Accepted, delivery: Delivery | None) -> bool:
        """Order, bed, spool; acknowledged at the commit. True if the message may go live."""
        refused = self._registry_refusal(msg, audit=True)
        if refused is not None:
            self.on_rejected(refused, delivery)
            return False
        self._accepted += 1
        if msg.unknown_keys and (
            msg.device_id in self._unknown_keys or len(self._unknown_keys) < MAX_TRACKED
        ):
            self._unknown_keys[msg.device_id] += 1
        bed = self._ward.bed_of(msg.device_id, msg.received_at)
        policy = self._policy.get(bed, MONITORED) if bed is not None else MONITORED
        # A device without a bed is still recorded (bed tag empty): nothing accepted is lost.
        # Without the patient's storage consent nothing of theirs goes to the historian.
        point = vitals_line(self._station, bed or "", msg) if policy.store else None
        sample = None
        if bed is not None and self._trends is not None:
            values = msg.payload.numeric_fields()
            sample = TrendSample(bed, msg.device_id, round(msg.device_time * 1000), values)
        # Classified only once everything that could fail is built: a message the tracker has
        # seen is a duplicate on redelivery, so it must not be remembered and then dropped.
        verdict = self._sequence.observe(
            msg.device_id, msg.device_time, msg.payload.seq, _fingerprint(msg), msg.received_at
        )
        if verdict.order is Order.DUPLICATE:
            self._stage(None, None, delivery)  # stored already; acknowledged with the rest
            return False
        row = None if point is None else (msg.device_id, msg.payload.seq, point)
        self._stage(row, sample, delivery)
        if verdict.missing:
            self._gap(msg, bed, verdict.missing, verdict.after_seq)
        return True

    # -- inbound: the live path ------------------------------------------------------------

    @Slot()
    def drain_live(self) -> None:
        """Everything the live feed queued (each device within its budget): parse, check,
        alarm, show. Rejections are the record path's to count: it sees every message."""
        if self._take_live is None:
            return
        filters = self._settings.mqtt.topics
        for item in self._take_live():
            result = parse(item.topic, item.payload, item.received_at, filters)
            if isinstance(result, Rejection) or (
                self._registry_refusal(result, audit=False) is not None
            ):
                self.live_rejected += 1
                continue
            self._live(result, from_feed=True)

    def _live(self, msg: Accepted, from_feed: bool) -> None:
        """Live order, age, alarms, screen for one accepted message."""
        device = msg.device_id
        bed = self._ward.assigned(device)
        if bed is None and self._ward.admission == "open":
            bed = self._ward.bed_of(device, msg.received_at)
        if bed is None:
            return
        mono = self._time.monotonic()
        if from_feed:
            self._live_seen[device] = mono
        policy = self._policy.get(bed, MONITORED)
        if policy.standby:
            self._watch.seen(device, mono)
            return  # discharged: kept, never shown or alarmed until the next admission
        values = msg.payload.numeric_fields()
        verdict = self._live_order.observe(
            device, msg.device_time, msg.payload.seq, _fingerprint(msg), msg.received_at
        )
        if verdict.order is Order.DUPLICATE:
            return  # the other session's copy, or a redelivery
        if verdict.order is Order.LATE:
            self._late += 1  # out of order: stored at its device time, never live
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
            self._late += 1
            if device not in self._skewed:
                self._skewed.add(device)
                self._emit(
                    self._engine.technical(
                        device,
                        bed,
                        "clock",
                        True,
                        Priority.MEDIUM,
                        f"Device data {lag:.0f} s old: not shown live (clock or replay)",
                    )
                )
            return
        if device in self._skewed:
            self._skewed.discard(device)
            self._emit(self._engine.technical(device, bed, "clock", False))
        if self._watch.seen(device, mono):
            self._emit(self._engine.technical(device, bed, "no_data", False))
        self._emit(
            self._engine.evaluate(device, bed, values, msg.payload.device_alert, at=msg.device_time)
        )
        self._check_battery(device, bed, msg.payload.battery)
        self.vitals_received.emit(bed, msg)
        self._shown.append((bed, msg))
        timer = self._vitals_timer
        if timer is None:
            self.flush_vitals()  # no event loop yet (tests): at once
        elif not timer.isActive():
            timer.start()

    @Slot()
    def flush_vitals(self) -> None:
        """Hand the window what went live since the last batch."""
        if self._shown:
            batch, self._shown = tuple(self._shown), []
            self.vitals_batch.emit(batch)

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
            self._emit(
                self._engine.technical(msg.device_id, bed, parameter, True, Priority.MEDIUM, text)
            )
        self._flags[key] = mono
        self._audit_refusal(msg, f"suspect_{kind}", text)

    def _registry_refusal(self, msg: Accepted, audit: bool) -> Rejection | None:
        """A rejection for a revoked device, a bad or missing signature of a signing one, or a
        device pinned in ``[ward]`` on a shared topic under onboarded admission (anyone allowed
        to publish there could speak for it). Audited (``audit``) by the record path only: it
        sees every message, the live path a budgeted share of them."""
        rec = self._ward.book.get(msg.device_id)
        if rec is None:
            if (
                self._ward.admission != "open"
                and msg.device_id in self._settings.ward.devices
                and topic_device(msg.topic, self._settings.mqtt.topics) is None
            ):
                reason = "spoofed"
                detail = "pinned device on a topic that does not name it (admission onboarded)"
                if audit:
                    self._audit_refusal(msg, reason, detail)
                return Rejection(reason, detail, msg.topic, msg.received_at, msg.device_id)
            return None
        if not rec.active:
            reason, detail = "revoked", f"device {msg.device_id} was decommissioned"
        elif not rec.signing:
            if topic_device(msg.topic, self._settings.mqtt.topics) is not None:
                return None  # the topic names the device; the broker's ACL vouches for it
            # On a shared topic anyone allowed to publish there could speak for it.
            reason, detail = "spoofed", "unsigned message on a topic that does not name the device"
        else:
            why = rec.verifies(msg.payload.sig, msg.signed)
            if why is None:
                return None
            reason, detail = "spoofed", why
        if audit:
            self._audit_refusal(msg, reason, detail)
        return Rejection(reason, detail, msg.topic, msg.received_at, msg.device_id)

    def _audit_refusal(self, msg: Accepted, reason: str, detail: str) -> None:
        """Audit a refused or flagged device message: the first of each device and kind, then at
        most one record a minute with the count in between, so a flood cannot flood the trail.
        Callers pass only devices the registry, the config or a bed knows: the keys are bounded."""
        more = self._throttle(f"{reason}:{msg.device_id}")
        if more is None:
            return
        action = {"spoofed": "device.spoofed", "revoked": "device.revoked_message"}
        self._audit.record(
            action.get(reason, "device.suspect"),
            target=msg.device_id,
            outcome="failure",
            details={
                "device": msg.device_id,
                "reason": detail,
                "topic": msg.topic,
                "seq": msg.payload.seq,
                "more_since_last_record": more,
            },
        )

    def _throttle(self, key: str, count: int = 1) -> int | None:
        """None while ``key`` was recorded less than a minute ago (``count`` is added to what
        the next record will say it left out); else how much was left out since the last one.
        At most :data:`MAX_TRACKED` keys are remembered (the oldest go first)."""
        now = self._time.monotonic()
        if now - self._logged_at.get(key, -LOG_WINDOW_S) < LOG_WINDOW_S:
            self._suppressed[key] += count
            return None
        self._logged_at.pop(key, None)
        if len(self._logged_at) >= MAX_TRACKED:
            oldest = next(iter(self._logged_at))
            del self._logged_at[oldest]
            self._suppressed.pop(oldest, None)
        self._logged_at[key] = now
        return self._suppressed.pop(key, 0)

    def _load_registry(self) -> DeviceBook:
        """The registry on disk; a damaged file keeps the last good book in force and raises a
        technical alarm (never an empty registry, which would park every onboarded device)."""
        registry = self._registry
        if registry is None:
            return DeviceBook()
        self._registry_stamp = registry.stamp()
        try:
            book = registry.load()
        except (RegistryError, OSError) as exc:
            if self._registry_fault is None:
                log.error("device registry unreadable: %s", exc)
                self._audit.record(
                    "devices.fault", outcome="failure", details={"error": str(exc)[:300]}
                )
            self._registry_fault = str(exc)
            self._station_alarm(
                "devices", True, Priority.HIGH, f"Device registry unreadable: {exc}"
            )
            return self._ward.book
        if self._registry_fault is not None:
            self._registry_fault = None
            self._station_alarm("devices", False, Priority.HIGH, "")
        return book

    @Slot()
    def reload_devices(self) -> None:
        """Put the registry on disk in force (the onboarding dialog or ``station devices``
        changed it): audit each change, end the alarms of devices that left their bed."""
        old = self._ward.book
        book = self._load_registry()
        if book is old:
            return
        moves = self._ward.set_book(book)
        if self._routed is not None:
            self._routed(self._ward.routed())
        self._audit_registry(old, book)
        for device, (before, after) in moves.items():
            if before is not None:
                self._emit(self._engine.forget_device(device))
            if after is None:
                self._watch.forget(device)  # no bed: nobody to tell that it went quiet
            else:
                self._fresh_watch(device)
        self.devices_changed.emit(book)

    def _audit_registry(self, old: DeviceBook, new: DeviceBook) -> None:
        for rec in new:
            was = old.get(rec.device_id)
            extra: dict[str, object]
            if was is None:
                action, actor, extra = "device.onboard", rec.onboarded_by, {"signing": rec.signing}
            elif was.active and not rec.active:
                action, actor, extra = "device.revoke", rec.revoked_by or "", {"bed": was.bed}
            elif was.bed != rec.bed:
                action, actor, extra = "device.reassign", rec.assigned_by, {"from": was.bed}
            else:
                continue
            self._audit.record(
                action,
                actor=actor or "unknown",
                role="admin",
                target=rec.device_id,
                details={
                    "device": rec.device_id,
                    "bed": rec.bed,
                    "model": rec.model,
                    "serial": rec.serial,
                    "manufacturer": rec.manufacturer,
                    "voucher": rec.voucher_id,
                    **extra,
                },
            )

    def _fresh_watch(self, device: str) -> None:
        """Watch a device as new (moved, or its bed back from standby): its no-data, clock and
        battery alarms must be raised again where it now is."""
        self._watch.restart(device, self._time.monotonic())
        self._skewed.discard(device)
        self._battery_low.discard(device)

    @Slot(object)
    def set_bed_policy(self, policy: dict[str, BedPolicy]) -> None:
        """Admissions and consents changed (from the GUI's patient table): a bed put in
        standby loses its alarms at once, a bed back from standby is watched afresh; a bed
        whose patient changed gets the ward's default limits (limits belong to a patient, and
        follow them on a transfer); storage follows the patient's consent from the next
        message."""
        old, self._policy = self._policy, dict(policy)
        moved_limits = {
            p.patient: self._engine.limits_for(bed)
            for bed, p in old.items()
            if p.patient and self._engine.has_bed_limits(bed)
        }
        for bed in {*old, *self._policy}:
            before, now = old.get(bed, MONITORED), self._policy.get(bed, MONITORED)
            device = self._ward.device_of(bed)
            if now.standby and not before.standby and device is not None:
                self._emit(self._engine.forget_device(device))
            elif before.standby and not now.standby and device is not None:
                self._fresh_watch(device)
            if before.patient != now.patient:
                self._patient_limits(bed, moved_limits.get(now.patient))

    def _patient_limits(self, bed: str, limits: dict[str, AlarmLimits] | None) -> None:
        """Give ``bed`` the limits its new patient had on their previous bed, else the ward's."""
        had = self._engine.has_bed_limits(bed)
        if limits is None and not had:
            return
        self._engine.reset_bed_limits(bed)
        if limits is not None:
            self._engine.set_bed_limits(bed, limits)
        self._audit.record(
            "alarm.limits_change",
            target=bed,
            details={"reason": "patient changed", "profile": "moved" if limits else "default"},
        )
        self.limits_changed.emit(bed, self._engine.limits_for(bed))

    def _check_battery(self, device: str, bed: str, battery: float | None) -> None:
        if battery is None:
            return
        threshold = self._settings.alarms.battery_low_pct
        # Hysteresis of 5 points: a battery hovering at the threshold does not flap the alarm.
        low = battery < threshold or (device in self._battery_low and battery < threshold + 5)
        (self._battery_low.add if low else self._battery_low.discard)(device)
        self._emit(
            self._engine.technical(
                device, bed, "battery", low, Priority.LOW, f"Battery low: {battery:.0f} %"
            )
        )

    def _stage(
        self, row: Row | None, sample: TrendSample | None, delivery: Delivery | None
    ) -> None:
        """Collect a point and its acknowledgement for the next group commit."""
        if row is not None:
            self._rows.append(row)
        if sample is not None:
            self._samples.append(sample)
        if delivery is not None:
            self._deliveries.append(delivery)
        timer = self._commit_timer
        if timer is None or len(self._deliveries) >= self._commit_batch:
            self.commit()  # no event loop yet (tests), or a burst: commit now
        elif not timer.isActive():
            timer.start()

    def _gap(self, msg: Accepted, bed: str | None, missing: int, after: int | None) -> None:
        """A ``seq`` gap: shown on the bed every time, recorded and logged at most once a
        minute per device (with what was missed since), so a device with a bad link cannot
        flood the trail."""
        if bed is not None:
            self.data_gap.emit(bed, missing, msg.received_at)
        earlier = self._throttle(f"gap:{msg.device_id}", missing)
        if earlier is None:
            return
        log.warning("data gap: %s missed %d messages after seq %s", msg.device_id, missing, after)
        self._audit.record(
            "data.gap",
            target=bed or msg.device_id,
            outcome="failure",
            details={
                "device": msg.device_id,
                "bed": bed,
                "after_seq": after,
                "seq": msg.payload.seq,
                "missing": missing,
                "missing_since_last_record": earlier,
                "device_time": msg.payload.timestamp.isoformat(),
            },
        )

    @Slot()
    def commit(self) -> None:
        """Group commit: the staged points to the spool (durable), then the acknowledgements,
        then the trend store. Never raises: a refusal is the budget policy, not a crash."""
        rows, self._rows = self._rows, []
        deliveries, self._deliveries = self._deliveries, []
        if rows:
            self._store(rows)
        if deliveries and self._ack is not None:
            self._ack(deliveries)
        if self._timer is None or len(self._samples) >= TREND_BATCH:
            self.flush_trends()

    def flush_trends(self) -> None:
        """Write the collected trend samples. The trend store is the screen's history, not the
        durable record (the spool is): it is written every :data:`WATCH_MS` or per
        :data:`TREND_BATCH` samples rather than at every commit, a quarter of the cost a sample
        (measured: 12–19 µs at 16 a batch, 4.5 µs at 256)."""
        samples, self._samples = self._samples, []
        if samples and self._trends is not None:
            try:
                self._trends.add(samples)
            except sqlite3.Error as exc:
                self._trend_failed(f"{exc}")
            else:
                self._trend_failed(None)

    def _store(self, rows: list[Row]) -> None:
        historian = self._historian
        if self._spool is None:
            if historian is not None:
                for _, _, text in rows:
                    historian.submit(text)
            return
        try:
            added = self._spool.append(rows)
        except (SpoolFull, sqlite3.Error) as exc:
            self._unspooled += len(rows)
            if historian is not None:
                for _, _, text in rows:
                    historian.submit(text)
            if self._spool_fault is None:
                self._spool_fault = str(exc)
                log.error("spool refused points; keeping them in memory: %s", exc)
                self._audit.record(
                    "spool.full",
                    target=str(self._spool.path),
                    outcome="failure",
                    details={"error": str(exc)[:300], "points": len(rows)},
                )
                self._station_alarm(
                    "spool",
                    True,
                    Priority.HIGH,
                    "Local record full: new data not saved to disk (display and alarms go on)",
                )
            return
        if historian is not None:
            historian.notify(added)
        if self._spool_fault is not None:
            log.info("spool takes points again after %d held in memory", self._unspooled)
            self._audit.record(
                "spool.recovered",
                target=str(self._spool.path),
                details={"points_in_memory": self._unspooled, "error": self._spool_fault[:300]},
            )
            self._spool_fault = None
            self._station_alarm("spool", False, Priority.HIGH, "")

    def _trend_failed(self, error: str | None) -> None:
        if (error is None) == (self._trend_fault is None):
            return
        self._trend_fault = error
        if error is not None:
            log.error("trend store: %s", error)
            self._audit.record("trends.fault", outcome="failure", details={"error": error[:300]})
        self._station_alarm(
            "trends", error is not None, Priority.LOW, f"Trend store failing: {error}"
        )

    def on_rejected(self, rej: Rejection, delivery: Delivery | None = None) -> None:
        """Count, keep in the quarantine, log without flooding. Never slows ingest. A technical
        alarm goes on a bed only when the topic names the device that sent the message (the
        broker's ACL vouches for it): on a shared topic anyone can claim any id, and a claimed
        id must not let one credential put alarms on every bed."""
        self._stage(None, None, delivery)  # acknowledged in order with the accepted ones
        self._reasons[rej.reason] += 1
        self._quarantine.append(rej)
        now = self._time.monotonic()
        device = topic_device(rej.topic, self._settings.mqtt.topics)
        bed = self._ward.assigned(device) if device is not None else None
        if device is not None and bed is not None and self._invalid.rejected(device, now):
            self._emit(
                self._engine.technical(
                    device,
                    bed,
                    "invalid_data",
                    True,
                    Priority.MEDIUM,
                    f"Invalid data from device: {rej.reason}"
                    f" ({self._invalid.count(device)} in 60 s)",
                )
            )
        more = self._throttle(rej.reason)
        if more is not None:
            log.warning(
                "rejected message on %s from %s: %s: %s (%d more like it not logged)",
                rej.topic,
                rej.device_id or "?",
                rej.reason,
                rej.detail,
                more,
            )

    @Slot(bool, str)
    def on_live_connection(self, connected: bool, detail: str) -> None:
        """The live feed connected or was lost (the record path feeds the screen meanwhile)."""
        log.info("live feed: %s", detail)
        self._live_down_since = None if connected else self._time.monotonic()

    @Slot(object)
    def on_connection(self, state: ConnectionState) -> None:
        """Audit the change and keep the 'broker lost' technical alarm in step."""
        log.info("broker %s: %s", "connected" if state.connected else "down", state.detail)
        self.connection_changed.emit(state)
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
        self._emit(
            self._engine.technical(
                STATION_DEVICE,
                "",
                "broker",
                not state.connected,
                Priority.HIGH,
                f"Broker: {state.detail}",
            )
        )

    @Slot(str, str)
    def acknowledge(self, alarm_id: str, user: str) -> None:
        """A nurse acknowledges an alarm (user named; the login arrives with the roles)."""
        alarm = self._engine.acknowledge(alarm_id, user)
        if alarm is None:
            self._audit.record(
                "alarm.acknowledge",
                actor=user,
                role="none" if user == EMERGENCY_USER else "nurse",
                target=alarm_id,
                outcome="failure",
                details={"reason": "not active"},
            )
            return
        self._emit([alarm], acknowledged=True)

    @Slot(str, object)
    def on_peer_event(self, station: str, event: dict[str, object]) -> None:
        """An alarm event published by another station of the ward. Alarm ids are derived
        from the condition, so the same alarm has the same id there; an acknowledgement made
        there is applied here, so both screens show the same state."""
        # A latched alarm acknowledged there is published as 'cleared' with its user.
        if event.get("state") not in ("acknowledged", "cleared"):
            return
        alarm_id, by = event.get("alarm_id"), event.get("by")
        if not isinstance(alarm_id, str) or not isinstance(by, str):
            return
        alarm = self._engine.acknowledge(alarm_id, by)
        if alarm is not None:
            self._emit([alarm], via=station, acknowledged=True)

    @Slot(str, object, object, str)
    def change_limits(
        self, bed: str, limits: dict[str, AlarmLimits], profile: str | None, user: str
    ) -> None:
        """A nurse changed a bed's limits at the station: applied from the next value and
        recorded with who, when, and old → new."""
        old = self._engine.limits_for(bed)
        self._engine.set_bed_limits(bed, limits)
        self._audit.record(
            "alarm.limits_change",
            actor=user,
            role="nurse",
            target=bed,
            details={
                "profile": profile,
                "changes": describe_change(old, self._engine.limits_for(bed)),
            },
        )
        self.limits_changed.emit(bed, self._engine.limits_for(bed))

    @Slot(str)
    def sound_problem(self, problem: str) -> None:
        """The alarm sound cannot be played: a technical alarm, since nurses rely on it."""
        log.info("alarm sound: %s", problem or "available")
        self._station_alarm(
            "sound", bool(problem), Priority.MEDIUM, f"Alarm sound unavailable: {problem}"
        )

    # -- periodic watch --------------------------------------------------------------------

    @Slot()
    def _on_timer(self) -> None:
        """Every :data:`WATCH_MS`: the silence watch and the trend store; every fourth time,
        the whole tick."""
        self.flush_trends()
        self._watch_turn = (self._watch_turn + 1) % 4
        if self._watch_turn:
            self._watch_silence()
        else:
            self.tick()

    def _watch_silence(self) -> None:
        """Devices gone quiet (monotonic: a clock step neither delays nor hastens it)."""
        mono = self._time.monotonic()
        for device in self._watch.newly_silent(mono):
            bed = self._ward.assigned(device) or ""
            if self._policy.get(bed, MONITORED).standby:
                continue
            timeout = self._watch.timeout(device)
            self._emit(
                self._engine.technical(
                    device, bed, "no_data", True, Priority.MEDIUM, f"No data for {timeout:.0f} s"
                )
            )

    def _watch_flags(self, mono: float) -> None:
        """End flags and flooding that have stopped; raise flooding where it started."""
        for (device, parameter), since in list(self._flags.items()):
            if mono - since > FLAG_HOLD_S:
                del self._flags[(device, parameter)]
                self._emit(self._engine.technical(device, "", parameter, False))
        for f in self._flood_check(mono) if self._flood_check is not None else []:
            self._flooded(f, mono)
        for device, since in list(self._flooding.items()):
            if mono - since > FLOOD_HOLD_S:
                del self._flooding[device]
                self._emit(self._engine.technical(device, "", "flooding", False))
                self._audit.record("device.flooding_ended", target=device, details={})

    def _flooded(self, f: Flooding, mono: float) -> None:
        """A source over its live budget: a technical alarm on its bed when the topic proves
        the device (or admission is open, where the shared topic is how devices speak), and an
        audit record when it starts. Its excess is kept for the record, not shown."""
        # Cut off from the live session (or about to be): its bed is fed by the record path
        # from now on, not after LIVE_STALE_S of silence.
        self._live_seen.pop(f.source, None)
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
        self._emit(
            self._engine.technical(
                f.source,
                bed or "",
                "flooding",
                True,
                Priority.MEDIUM,
                f"Device flooding: {f.rate} msg/s (live budget {budget}/s); excess recorded, "
                "not shown",
            )
        )

    def _watch_clock(self, mono: float) -> None:
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
            self._station_alarm("clock", False, Priority.MEDIUM, "")
            self._station_alarm(
                "clock",
                True,
                Priority.MEDIUM,
                f"Station clock changed by {step:+.0f} s: timers and alarms unaffected",
            )
        elif self._step_at is not None and mono - self._step_at > FLAG_HOLD_S:
            self._step_at = None
            self._station_alarm("clock", False, Priority.MEDIUM, "")

    def _watch_live(self, mono: float) -> None:
        """The live feed down while the broker is up: the screen is fed by the recording
        session, which may lag behind a backlog; the nurse should know."""
        down = self._live_down_since
        missing = (
            self._take_live is not None
            and self._connected is True
            and down is not None
            and mono - down > LIVE_GRACE_S
        )
        self._station_alarm(
            "live",
            missing,
            Priority.MEDIUM,
            "Live feed down: screen and alarms fed by the recording session (may lag)",
        )

    @Slot()
    def tick(self) -> None:
        """Once a second: devices gone quiet, ingest thread alive, writers healthy, stats."""
        now = self._clock()
        mono = self._time.monotonic()
        if self._registry is not None and self._registry.stamp() != self._registry_stamp:
            self.reload_devices()
        self._watch_silence()
        for device in self._invalid.recovered(mono):
            self._emit(self._engine.technical(device, "", "invalid_data", False))
        self._watch_flags(mono)
        self._watch_clock(mono)
        self._watch_live(mono)
        self._emit(self._engine.tick())
        self._station_alarm(
            "ingest", not self._ingest_alive(), Priority.HIGH, "Ingest stopped: no MQTT loop"
        )
        fault = self._audit.fault
        self._station_alarm("audit", fault is not None, Priority.HIGH, f"Audit trail: {fault}")
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
            self._station_alarm(
                "historian",
                not st.ok,
                Priority.LOW,
                f"Historian failing ({st.backlog} queued): {st.error}",
            )
        trends = self._trends
        if trends is not None and (now - self._compacted_at >= COMPACT_EVERY_S or trends.behind):
            self._compacted_at = now
            try:
                trends.compact()  # bounded per call; ``behind`` brings it back next second
            except sqlite3.Error as exc:
                self._trend_failed(f"compaction: {exc}")
        self.stats_changed.emit(
            IngestStats(
                self._accepted,
                sum(self._reasons.values()),
                self._late,
                tuple(sorted(self._reasons.items())),
                tuple(self._quarantine),
                tuple(self._ward.unassigned[d] for d in sorted(self._ward.unassigned)),
                tuple(sorted(self._unknown_keys.items())),
                self._sequence.duplicates,
                self._sequence.missing,
                self._unspooled,
            )
        )

    def startup_fault(self, parameter: str, message: str) -> None:
        """A part that could not start (a local store): a high-priority technical alarm and an
        audit record. Called by the app before the core thread runs."""
        self._audit.record(f"{parameter}.fault", outcome="failure", details={"error": message})
        self._station_alarm(parameter, True, Priority.HIGH, message)

    def _station_alarm(self, parameter: str, present: bool, prio: Priority, message: str) -> None:
        self._emit(self._engine.technical(STATION_DEVICE, "", parameter, present, prio, message))

    # -- fan-out ---------------------------------------------------------------------------

    def _emit(
        self, changes: list[Alarm], via: str | None = None, acknowledged: bool = False
    ) -> None:
        for alarm in changes:
            action = {
                AlarmState.ACTIVE: "alarm.raise",
                AlarmState.ESCALATED: "alarm.escalate",
                AlarmState.LATCHED: "alarm.latch",
                AlarmState.ACKNOWLEDGED: "alarm.acknowledge",
                AlarmState.CLEARED: "alarm.clear",
            }[alarm.state]
            if alarm.state == AlarmState.ACTIVE and alarm.raised_at != alarm.at:
                action = "alarm.reactivate"  # a latched alarm whose condition came back
            if acknowledged:
                action = "alarm.acknowledge"  # also when it cleared a latched alarm
            self._audit.record(
                action,
                actor=alarm.by or "station",
                role=_role_of(alarm.by),
                target=alarm.bed or alarm.device_id or self._station,
                details={
                    "via": via,
                    "alarm_id": alarm.alarm_id,
                    "device": alarm.device_id,
                    "kind": alarm.kind.value,
                    "parameter": alarm.parameter,
                    "priority": alarm.priority.value,
                    "message": alarm.message,
                },
            )
            if self._publisher is not None:
                self._publisher.publish_alarm(event_payload(alarm))
            if self._historian is not None and self._policy.get(alarm.bed, MONITORED).store:
                self._stage((alarm.device_id, None, alarm_line(self._station, alarm)), None, None)
            self.alarm_changed.emit(alarm)
