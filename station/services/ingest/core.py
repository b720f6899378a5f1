"""The core worker: the ``core`` thread's QObject, its signals and slots, and the parts it runs.

Thread model: lives in a ``QThread`` named ``core`` (moved there by the app). Its slots receive
accepted and rejected messages and connection changes from the ``mqtt`` thread over queued
connections; it evaluates alarms with the pure :class:`AlarmEngine`, then hands values on: to the
GUI (signals), the spool and the trend store, the audit writer (thread-safe ``record``) and the
broker (thread-safe ``publish_alarm``). Nothing here waits on the network or paints.

Its parts are plain objects it owns and calls on this thread, sharing one
:class:`~station.services.ingest.core_state.CoreState`: ``record_path`` (every message of the
persistent session, in order), ``group_commit`` (spool, acknowledgements, trends), ``live_path``
(live order, age, alarms, screen), ``device_gate`` (the registry in force, and its refusals),
``bed_changes`` (devices and patients changing beds), ``bed_limits`` (each bed's limits, kept
across restarts), ``station_watch`` (what time passing must alarm), ``alarm_changes`` (every
alarm change handed on, and the requests that change them) and ``peer_events``, ``peer_inbox``
(the ward told of changes here; others' taken if a peer signed).

Two paths (issue 13): the **record path** takes every message of the persistent session in order
(:meth:`CoreWorker.drain_record`) and the **live path** takes each device's newest messages from
the live feed within its budget (:meth:`CoreWorker.drain_live`). Live messages go first, also
between the record's (:data:`RECORD_CHUNK` at a time). A device the live feed has not delivered
lately goes live from the record path (:meth:`CoreWorker.on_accepted`), so the ward is never
blind while either session works.

Signals:
    vitals_batch(tuple[tuple[str, Accepted], ...]): what the window takes: the live messages of
        :data:`~station.services.ingest.live_path.BATCH_MS` in one queued event.
    devices_changed(DeviceBook): the device registry in force changed.
    data_gap(str bed, int missing, float at): messages of the bed's device never arrived.
    limits_changed(str bed, BedLimits): a bed's alarm limits changed.
    alarm_changed(Alarm): every alarm state change.
    alarm_commented(str alarm_id, AlarmComment): a nurse's comment on an alarm, kept.
    bed_pause_shared(str bed, float seconds): another station paused (0: resumed) a bed's audio.
    stats_changed(IngestStats): counters and the quarantine, once a second.
    connection_changed(ConnectionState): forwarded for the status bar after auditing.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from station.config.settings import Settings
from station.domain.alarms import AlarmLimits, Priority
from station.domain.bed_limits import BedLimits
from station.domain.clock import StationClock
from station.domain.devices import DeviceBook
from station.domain.ingest import parse
from station.domain.messages import Accepted, Rejection
from station.domain.ports import AlarmSink, AuditSink
from station.domain.status import ConnectionState
from station.domain.ward import BedPolicy
from station.domain.ward_events import WardMessage, WardSink
from station.domain.watch import DeviceWatch, InvalidDataWatch
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.alarm_log import AlarmLog
from station.services.ingest.bed_changes import BedChanges
from station.services.ingest.bed_limits import BedLimitsKeeper
from station.services.ingest.core_state import CoreState
from station.services.ingest.device_gate import DeviceGate
from station.services.ingest.event_capture import EventCapture
from station.services.ingest.group_commit import GroupCommit
from station.services.ingest.historian import Historian
from station.services.ingest.live_inbox import Flooding, LiveItem
from station.services.ingest.live_path import BATCH_MS, LivePath
from station.services.ingest.pacing import Throttle
from station.services.ingest.peer_events import PeerEvents
from station.services.ingest.peer_inbox import PeerInbox
from station.services.ingest.record_inbox import Delivery, Raw
from station.services.ingest.record_path import RecordPath
from station.services.ingest.station_watch import StationWatch
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.bed_limits_file import BedLimitsFile
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.quarantine_store import QuarantineStore
from station.services.storage.spool import Row, Spool
from station.services.storage.trends import TrendStore

log = logging.getLogger(__name__)

COMMIT_BATCH = 16
"""Messages that trigger a group commit before the interval ends, over MQTT 3.1.1: below
Mosquitto's default in-flight window of 20, since the broker sends no more until some are
acknowledged, and waiting for more than the window would only wait out the interval."""
COMMIT_BATCH_V5 = 128
"""The same over MQTT 5, where the station sets its own window (``RECEIVE_MAXIMUM`` = 256):
half of it, so the broker keeps sending while a commit is on disk."""
RECORD_CHUNK = 64
"""Record-path messages handled per turn of the core's event loop (other events between)."""
WATCH_MS = 250
"""The no-data watch runs this often: a silence is reported within a quarter second of its
threshold (1 s on ``main``). The trend store is written as often."""

Record = tuple[Raw, Delivery]


def _alarm_lines(worker: weakref.ref[CoreWorker]) -> Callable[[Row], None]:
    """Where the historian's alarm lines go: the worker's next group commit. Reached through a
    weak reference, since the group commit raises its faults through the alarm changes: a strong
    one would keep the worker in a cycle, freed by the collector on whatever thread it runs."""

    def stage(row: Row) -> None:
        alive = worker()
        if alive is not None:
            alive._commits.stage(row, None, None)

    return stage


class CoreWorker(QObject):
    """See the module docstring. Construct on the GUI thread, then ``moveToThread``."""

    vitals_batch = Signal(object)
    devices_changed = Signal(object)
    data_gap = Signal(str, int, float)
    limits_changed = Signal(str, object)
    alarm_changed = Signal(object)
    alarm_commented = Signal(str, object)
    bed_pause_shared = Signal(str, float)
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
        limits_store: BedLimitsFile | None = None,
        quarantine: QuarantineStore | None = None,
        alarm_store: AlarmStore | None = None,
    ) -> None:
        super().__init__()
        # Tests drive one fake clock; the station gives the wall and the monotonic one.
        mono = monotonic or (time.monotonic if clock is time.time else clock)
        self._time = StationClock(clock, mono)
        self._settings = settings
        self._audit = audit
        self._policy: dict[str, BedPolicy] = {}  # updated in place: every part reads this one
        state = CoreState.build(settings, self._time, self._policy, audit)
        self._engine, self._ward = state.engine, state.ward
        # Devices pinned to a bed are expected from the start: one that never speaks after a
        # restart must still raise "no data".
        started = mono()
        self._watch = watch = DeviceWatch(settings.alarms.no_data_s)
        for device in settings.ward.devices:
            watch.expect(device, started)
        invalid = InvalidDataWatch()
        throttle = Throttle(self._time.monotonic)
        self._commits: GroupCommit  # built below: it raises its faults through the alarms
        store = None if historian is None else _alarm_lines(weakref.ref(self))
        self._alarm_log = AlarmLog(alarm_store, audit, self._time.wall, self.alarm_commented.emit)
        self._capture = EventCapture(trends, settings.alarms.capture_s, self._time.wall)
        self._alarm_log.capture = self._capture
        self._alarms = alarms = AlarmChanges(
            state, publisher, store, self.alarm_changed.emit, self._alarm_log
        )
        self._alarm_log.fault = lambda message: alarms.station(
            "alarm_history", message is not None, Priority.MEDIUM, message or ""
        )
        self._limits = BedLimitsKeeper(state, alarms, limits_store, self.limits_changed.emit)
        # The publisher tells the ward's other stations of a nurse's limits when it can.
        sink = publisher if isinstance(publisher, WardSink) else None
        self._peers = PeerEvents(
            settings.station.id, sink, self._limits, audit, throttle, self._time.wall
        )
        self._peers.paused = self.bed_pause_shared.emit
        self._limits.share = self._peers.publish_limits
        self._peer_inbox = PeerInbox(state, alarms, self._peers, throttle)  # signed, listed
        batch = COMMIT_BATCH_V5 if settings.mqtt.protocol == "5" else COMMIT_BATCH
        commits = GroupCommit(state, alarms, spool, trends, historian, acknowledge, batch)
        self._commits = commits
        self._devices = devices = DeviceGate(state, alarms, registry, throttle)
        self._live_path = live = LivePath(state, alarms, devices, watch, self.vitals_batch.emit)
        self._record_path = RecordPath(
            state,
            alarms,
            devices,
            commits,
            invalid,
            throttle,
            self.data_gap.emit,
            quarantine=quarantine,
        )
        self._watches = StationWatch(state, alarms, live, watch, invalid, historian, ingest_alive)
        self._beds = BedChanges(state, alarms, live, watch)
        self._take_records: Callable[[int], tuple[list[Record], bool]] | None = None
        self._routed: Callable[[frozenset[str] | None], None] | None = None
        self._timer: QTimer | None = None
        self._vitals_timer: QTimer | None = None
        self._commit_timer: QTimer | None = None
        self._watch_turn = 0
        self._ward.set_book(self._devices.load(seal=False))  # checked in start
        for rec in self._ward.book:
            if rec.active and rec.bed:
                self._watch.expect(rec.device_id, started)  # onboarded: expected, like pins

    @property
    def book(self) -> DeviceBook:
        """The device registry in force (read by the app at start, before the thread runs)."""
        return self._ward.book

    def limits_in_force(self) -> dict[str, BedLimits]:
        """Every bed's limits (read by the app for the first paint, before the thread runs)."""
        return self._limits.in_force()

    @property
    def limits_fault(self) -> str | None:
        """Why the saved limits could not be read at start, or None."""
        return self._limits.fault

    @property
    def peer_refused(self) -> dict[str, int]:
        """Events of other stations refused, by reason (``alarm:<reason>`` for an alarm event)."""
        return self._peer_inbox.refused()

    @property
    def accepted(self) -> int:
        """Messages accepted so far (read by the bench from another thread: a plain int)."""
        return self._record_path.accepted

    @property
    def live_rejected(self) -> int:
        """Live messages refused (the record path counts every rejection for the stats)."""
        return self._live_path.rejected

    # Read (and ``_ack`` replaced) by tests: the late count, the spool's state, the acknowledger.

    @property
    def _late(self) -> int:
        return self._live_path.late

    @property
    def _spool_fault(self) -> str | None:
        return self._commits.spool_fault

    @property
    def _unspooled(self) -> int:
        return self._commits.unspooled

    @property
    def _ack(self) -> Callable[[list[Delivery]], None] | None:
        return self._commits.ack

    @_ack.setter
    def _ack(self, acknowledge: Callable[[list[Delivery]], None] | None) -> None:
        self._commits.ack = acknowledge

    @Slot()
    def start(self) -> None:
        """Start the 1 s watch; called in the core thread once it runs."""
        threading.current_thread().name = "core"  # Qt's thread is 'Dummy-N' in logs otherwise
        self._timer = QTimer(self)
        self._timer.setInterval(WATCH_MS)
        self._timer.timeout.connect(self._on_timer)
        self._timer.start()
        self._records_waiting.connect(self.drain_record, Qt.ConnectionType.QueuedConnection)
        self._vitals_timer = self._live_path.timer = vitals = QTimer(self)
        vitals.setSingleShot(True)
        vitals.setInterval(BATCH_MS)
        vitals.timeout.connect(self.flush_vitals)
        self._commit_timer = self._commits.timer = commit = QTimer(self)
        commit.setSingleShot(True)
        commit.setInterval(self._settings.spool.commit_interval_ms)
        commit.timeout.connect(self.commit)
        self._devices.check_seal()

    @Slot()
    def shutdown(self) -> None:
        """Stop and release the timers, commit what is staged. Connected directly to the core
        thread's ``finished`` (emitted in that thread): only its own thread may stop a timer."""
        for timer in (self._timer, self._commit_timer, self._vitals_timer):
            if timer is not None:
                timer.stop()
                timer.deleteLater()
        self._timer = self._commit_timer = self._vitals_timer = None
        self._commits.timer = self._live_path.timer = None
        self.commit()  # what arrived last is spooled; its acknowledgement goes nowhere now
        self._record_path.flush_quarantine()  # the last rejections are kept across the restart
        self._alarm_log.flush()
        self.flush_trends()
        self._capture.flush()  # an event window still open keeps what it has

    def attach(
        self,
        take_records: Callable[[int], tuple[list[Record], bool]],
        take_live: Callable[[], list[LiveItem]] | None = None,
        flooding: Callable[[float], list[Flooding]] | None = None,
        routed: Callable[[frozenset[str] | None], None] | None = None,
        live_waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        """Where :meth:`drain_record` and :meth:`drain_live` take their messages (and if live
        ones wait), whom to tell which devices reach a bed; set before the thread runs."""
        self._take_records = take_records
        self._live_path.take, self._live_waiting = take_live, live_waiting
        self._watches.flooding = flooding
        self._routed = routed
        if routed is not None:
            routed(self._ward.routed())
        self._watches.live_connection(False)  # not connected yet: the grace period starts

    # -- inbound ---------------------------------------------------------------------------

    @Slot()
    def drain_record(self) -> None:
        """Take one chunk of the persistent session's messages, live ones first as they come
        (64 beds publishing at once bring 64 to each session: an alarm waited for a record
        chunk, ``station bench --scenario alarms``); if more wait, come back later."""
        if self._take_records is None:
            return
        items, more = self._take_records(RECORD_CHUNK)
        try:
            for (topic, payload, at), delivery in items:
                if self._live_waiting():
                    self.drain_live()
                try:
                    result = parse(topic, payload, at, self._settings.mqtt.topics)
                    if isinstance(result, Accepted):
                        self.on_accepted(result, delivery)
                    else:
                        self.on_rejected(result, delivery)
                except Exception:
                    # A bug must cost one message, not the record path: staged, so it is
                    # acknowledged with the others (its redelivery would fail the same way).
                    log.exception("record path failed on a message; it goes on")
                    self._commits.stage(None, None, delivery)
        finally:
            if more:
                self._records_waiting.emit()

    def on_accepted(self, msg: Accepted, delivery: Delivery | None = None) -> None:
        """A valid message of the persistent session (or of a test): recorded, and shown live
        unless the live feed already delivers its device, within the device's live budget (a
        flooding device cut off from the live session must not flood the screen from here)."""
        if self._record(msg, delivery) and self._live_path.fallback(msg.device_id):
            self._live_path.show(msg, from_feed=False)

    def _record(self, msg: Accepted, delivery: Delivery | None) -> bool:
        """Order, bed, spool; acknowledged at the commit. True if the message may go live."""
        return self._record_path.record(msg, delivery)

    def on_rejected(self, rej: Rejection, delivery: Delivery | None = None) -> None:
        """Count, keep in the quarantine, log without flooding; acknowledged in order."""
        self._record_path.reject(rej, delivery)

    @Slot()
    def drain_live(self) -> None:
        """Everything the live feed queued (each device within its budget), to the screen."""
        self._live_path.drain()

    @Slot()
    def flush_vitals(self) -> None:
        """Hand the window what went live since the last batch."""
        self._live_path.flush()

    @Slot()
    def commit(self) -> None:
        """Group commit: the staged points to the spool, the acknowledgements, the trends."""
        self._commits.commit()

    def flush_trends(self) -> None:
        """Write the collected trend samples (every :data:`WATCH_MS`, or per batch)."""
        self._commits.flush_trends()

    # -- devices, beds and connections -----------------------------------------------------

    @Slot()
    def reload_devices(self) -> None:
        """Put the registry on disk in force (the onboarding dialog or ``station devices``
        changed it): audit each change, end the alarms of devices that left their bed."""
        old = self._ward.book
        book = self._devices.load()
        if book is old:
            return
        moves = self._ward.set_book(book)
        if self._routed is not None:
            self._routed(self._ward.routed())
        self._devices.audit_changes(old, book)
        self._beds.devices_moved(moves)
        self.devices_changed.emit(book)

    @Slot(object)
    def set_bed_policy(self, policy: dict[str, BedPolicy]) -> None:
        """Admissions and consents changed (from the GUI's patient table): alarms, limits and
        watches follow at once, storage the patient's consent from the next message."""
        old = dict(self._policy)
        # In place (every part holds this dict), and never empty between the two steps.
        self._policy.update(policy)
        for bed in old.keys() - policy.keys():
            del self._policy[bed]
        self._commits.policy_changed(policy)  # a withdrawn consent's spooled points held back
        self._beds.policy_changed(old)
        self._limits.policy_changed(old)

    @Slot(bool, str)
    def on_live_connection(self, connected: bool, detail: str) -> None:
        """The live feed connected or was lost (the record path feeds the screen meanwhile)."""
        log.info("live feed: %s", detail)
        self._watches.live_connection(connected)

    @Slot(object)
    def on_connection(self, state: ConnectionState) -> None:
        """Audit the change and keep the 'broker lost' technical alarm in step."""
        log.info("broker %s: %s", "connected" if state.connected else "down", state.detail)
        self.connection_changed.emit(state)
        self._watches.connection(state)

    # -- alarm requests --------------------------------------------------------------------

    @Slot(str, str)
    def acknowledge(self, alarm_id: str, user: str) -> None:
        """A nurse acknowledges an alarm (user named; the login arrives with the roles)."""
        self._alarms.acknowledge(alarm_id, user)

    @Slot(str, object)
    def on_peer_event(self, station: str, event: dict[str, object] | WardMessage) -> None:
        """An alarm event of another station of the ward: its acknowledgements apply here too
        (alarm ids derive from the condition), so both screens show the same state. A ward
        event (a bed's limits changed there) is read, checked and applied, or refused and
        counted. Either only when signed by a station of ``[peers]`` (:class:`PeerInbox`)."""
        self._peer_inbox.receive(station, event)

    @Slot(str, object, object, str)
    def change_limits(
        self, bed: str, limits: dict[str, AlarmLimits], profile: str | None, user: str
    ) -> None:
        """A nurse changed a bed's limits: applied from the next value, audited old → new."""
        self._limits.change(bed, limits, profile, user)

    @Slot(str, str, object)
    def on_user_action(self, action: str, user: str, details: dict[str, object]) -> None:
        """An audio action on the screen: a bed's pause or its end is told to the ward's other
        stations (the audit record is the action layer's)."""
        self._peers.user_action(action, user, details)

    @Slot(str, str, str, str)
    def comment_alarm(self, alarm_id: str, mark: str, text: str, user: str) -> None:
        """A nurse's comment on an alarm (allowed by the action layer): kept and audited."""
        self._alarm_log.comment(alarm_id, mark, text, user)

    @Slot(str)
    def sound_problem(self, problem: str) -> None:
        """The alarm sound cannot be played: a technical alarm, since nurses rely on it."""
        log.info("alarm sound: %s", problem or "available")
        self._alarms.station(
            "sound", bool(problem), Priority.MEDIUM, f"Alarm sound unavailable: {problem}"
        )

    @Slot(str, bool, str, str)
    def station_condition(self, parameter: str, present: bool, priority: str, message: str) -> None:
        """A condition seen on the GUI thread (an account locked out): a technical alarm."""
        self._alarms.station(parameter, present, Priority(priority), message)

    def startup_fault(self, parameter: str, message: str) -> None:
        """A part that could not start (a local store): a high-priority technical alarm and an
        audit record. Called by the app before the core thread runs."""
        self._audit.record(f"{parameter}.fault", outcome="failure", details={"error": message})
        self._alarms.station(parameter, True, Priority.HIGH, message)

    # -- periodic watch --------------------------------------------------------------------

    @Slot()
    def _on_timer(self) -> None:
        """Every :data:`WATCH_MS`: the silence watch, the trend store and the quarantine
        store; every fourth time, the whole tick."""
        self.flush_trends()
        self._record_path.flush_quarantine()  # before the tick: its stats then match the store
        self._watch_turn = (self._watch_turn + 1) % 4
        if self._watch_turn:
            self._watches.silence()  # devices gone quiet (monotonic: no clock step)
        else:
            self.tick()
            self._alarm_log.flush()
            self._capture.due()

    @Slot()
    def tick(self) -> None:
        """Once a second: devices gone quiet, ingest thread alive, writers healthy, stats."""
        now = self._time.wall()
        mono = self._time.monotonic()
        if self._devices.changed():
            self.reload_devices()
        self._watches.tick(mono)
        self._commits.compact(now)
        self._commits.purge_withheld()  # a long backlog's held-back points, a window a tick
        self.stats_changed.emit(self._record_path.stats(self._live_path.late))
