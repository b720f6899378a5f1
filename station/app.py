"""Composition root: builds every part, wires the signals, starts and stops in order.

Only this module builds: every dependency is passed in a constructor, in an order where each
part exists before whoever needs it (the MQTT worker before the audit writer, which publishes its
checkpoints there; the ward admin before the window; the window before the admin-dialog
controller, whose dialogs it parents). Two exceptions: the MQTT worker has no constructor argument
for the hook that checks the broker's checkpoint, so it is set right after the audit writer; the
ward admin's registry gets the key that seals it right after the ward admin. The
screen's connections are those of :mod:`station.ui.screen_wiring`, which the Qt tests use too.

Threads and owners (ARCHITECTURE.md):
    GUI thread   — :class:`MainWindow`, this object, the render timer.
    ``mqtt``     — paho's network loop of the persistent session (the record path), owned by
                   :class:`MqttWorker`.
    ``live-mqtt``— paho's network loop of the clean live session (display and alarms), owned by
                   :class:`LiveFeed`.
    ``core``     — a ``QThread`` running :class:`CoreWorker` (alarms, watch, fan-out).
    ``historian``— :class:`Historian` (only when ``[influx] enabled``), draining the spool.
    ``audit``    — :class:`AuditWriter`.
    ``sd-notify``— systemd's readiness and watchdog messages, decided by :class:`Supervision`
                   on the GUI thread from the core thread's heartbeat (under systemd only).
    demo only: ``demo-broker`` (:class:`EmbeddedBroker`) and ``simulator``.
    The hospital's interfaces (:class:`HospitalLinks`, when configured) run threads of their own.

Local stores under the data folder: ``spool.sqlite`` (with the historian: every point before its
PUBACK), ``trends.sqlite`` (72 h per bed for the trend view) and ``quarantine.sqlite`` (the newest
rejected messages, for the admin's quarantine view). Any failing to open is a technical alarm,
not a failed start: the ward must still be monitored.

Start order: audit → stores → historian → core → window → MQTT, live feed (→ simulator). Stop is
the reverse, each step with a timeout, so the whole stop ends well within the 10 s of CONTRACT §3.

Clocks: one :class:`StationClock` gives the wall time (what devices and people read) and the
monotonic time every duration is measured with (no-data, escalation, lock, pause, reminder).
"""

from __future__ import annotations

import gc
import getpass
import logging
import math
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PySide6.QtCore import QObject, Qt, QThread

from station import __version__
from station.config.credentials import backend_status, from_environment, secret
from station.config.settings import Settings
from station.domain.alarm_history import AlarmEpisode
from station.domain.clock import StationClock
from station.domain.roles import Role
from station.domain.vouchers.keys import key_id
from station.links import HospitalLinks, LinkParts, StationConditions
from station.presenters.actions import ActionLayer
from station.presenters.ward_admin import WardAdmin
from station.services.audit.checkpoints import BrokerCheckpointCheck, CheckpointPublisher
from station.services.audit.inbox import INBOX_FILE
from station.services.audit.keys import AuditKeyError, read_anchor, station_key
from station.services.audit.outbound import OutboundAudit
from station.services.audit.trail_source import AuditTrailSource
from station.services.audit.writer import AuditWriter
from station.services.demo.broker import DemoCredentials
from station.services.demo.patients import admit_demo_patients
from station.services.demo.simulator import Simulator
from station.services.demo.ward import DemoOptions
from station.services.ingest.core import CoreWorker
from station.services.ingest.historian import Historian, HistorianStatus
from station.services.ingest.live_feed import LiveFeed
from station.services.ingest.mqtt_worker import MqttWorker
from station.services.jobs import Jobs
from station.services.runtime import SWITCH_INTERVAL_S, freeze_startup_heap
from station.services.storage.accounts import Accounts
from station.services.storage.alarm_store import ALARM_STORE_FILE, AlarmStore
from station.services.storage.bed_limits_file import BED_LIMITS_FILE, BedLimitsFile
from station.services.storage.device_registry import REGISTRY_FILE, DeviceRegistry
from station.services.storage.quarantine_store import QUARANTINE_FILE, QuarantineStore
from station.services.storage.spool import Spool
from station.services.storage.trends import TrendStore
from station.services.supervision.watchdog import Supervision
from station.ui.admin_dialogs import AdminDialogs
from station.ui.close_guard import CloseGuard
from station.ui.links_status import LinksStatus
from station.ui.main_window import MainWindow
from station.ui.screen_wiring import QUEUED, connect_core, connect_screen, connect_ward

log = logging.getLogger(__name__)

LIVE_PASSWORD_ENV = "STATION_MQTT_LIVE_PASSWORD"
HISTORY_LOAD_S = 30 * 86_400.0
"""How much of the alarm store the window's history holds from the start (older: the history
dialog reads the store for the period chosen)."""
_Store = TypeVar("_Store", Spool, TrendStore, AlarmStore, QuarantineStore)


def _no_status() -> HistorianStatus | None:
    return None


class Station(QObject):
    """The running station. Lives on the GUI thread.

    Args:
        settings: validated configuration (for the demo, already pointed at the embedded broker).
        demo: simulated devices to run against the broker, or None for a real ward.
        user: the name shown before anyone logs in; in the demo, the nurse session's name.
            Who acts is always the session's user (the action layer), never this name.
    """

    def __init__(
        self,
        settings: Settings,
        demo: DemoOptions | None = None,
        user: str | None = None,
        clock: Callable[[], float] = time.time,
        config_path: Path | None = None,
        broker_credentials: DemoCredentials | None = None,
    ) -> None:
        super().__init__()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.settings = settings
        # Tests drive one fake clock; on the ward, durations run on the monotonic clock.
        self.clock = StationClock(clock) if clock is time.time else StationClock.single(clock)
        self._demo = demo
        self._stopped = False
        data_dir = settings.station.data_path
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_dir.chmod(0o700)  # patient data: also when the folder existed (made by a CLI run)
        self._faults: list[tuple[str, str]] = []
        station_id = settings.station.id
        key: Ed25519PrivateKey | None = None
        try:
            key = station_key(station_id)
            log.info("audit signing key id: %s", key_id(key.public_key()))
        except AuditKeyError as exc:
            log.error("audit trail not keyed: %s", exc)
            self._faults.append(("audit_key", f"Audit trail not keyed: {exc}"))
        # Who stops the station and why, for its ``station.stop`` record (set_stop_reason).
        self._stop_by = ("station", "system", "stopped by the program")
        password = secret("mqtt", settings.mqtt.username) if settings.mqtt.username else None
        # Before the audit writer: it publishes every checkpoint on this worker's retained topic.
        self.mqtt = MqttWorker(settings, password, self.clock.now, signing_key=key)
        self.audit = AuditWriter(
            data_dir / "audit",
            clock=clock,
            station_key=key,
            station=station_id,
            where=f"{station_id}@{socket.gethostname()}",
            on_checkpoint=CheckpointPublisher(self.mqtt.publish_checkpoint),
            inbox=data_dir / INBOX_FILE,  # records of shell commands run beside the station
        )
        # Direct: the check runs on the mqtt thread; the audit writer is thread-safe.
        self._checkpoint_check = BrokerCheckpointCheck(self.audit, key)
        self.mqtt.checkpoint_seen.connect(
            self._checkpoint_check.check, Qt.ConnectionType.DirectConnection
        )
        self.accounts = Accounts(
            data_dir / "users.json",
            max_failures=settings.security.max_failed_logins,
            lockout_s=settings.security.lockout_s,
            clock=clock,
        )
        self._outbound = OutboundAudit(self.audit, self.accounts.role_of, settings.influx.url)
        self.spool: Spool | None = None
        self.historian: Historian | None = None
        if settings.influx.enabled:
            i = settings.influx
            spool = Spool(data_dir / "spool.sqlite", settings.spool.budget_bytes, clock)
            self.spool = self._open("spool", spool, "Local record unavailable")
            self.historian = Historian(
                i.url,
                i.org,
                i.bucket,
                secret("influx", i.org),
                batch_size=i.batch_size,
                flush_interval_s=i.flush_interval_s,
                on_rejected=self._outbound.historian_rejected,
                spool=self.spool,
                keep_written_s=settings.spool.keep_written_s,
                ssl_ca_cert=i.ca_file or None,
            )
        self.trends = self._open(
            "trends", TrendStore(data_dir / "trends.sqlite", clock=clock), "Trends unavailable"
        )
        self.quarantine = self._open(
            "quarantine", QuarantineStore(data_dir / QUARANTINE_FILE), "Quarantine not kept"
        )
        self.alarm_store = self._open(
            "alarm_history",
            AlarmStore(data_dir / ALARM_STORE_FILE, clock=clock),
            "Alarm history not kept, a restart empties it",
        )
        # The demo has no accounts: it starts with a nurse's session that never locks.
        lock_after = math.inf if demo is not None else settings.security.lock_after_s
        self.actions = ActionLayer(
            self.accounts, self.audit, settings.station.id, lock_after, self.clock.monotonic
        )
        if demo is not None:
            self.actions.session.login(user or "demo-nurse", Role.NURSE, self.clock.monotonic())
        self.live = LiveFeed(
            settings, self._live_password(password), self.clock.now, self.clock.monotonic
        )
        self.core = CoreWorker(
            settings,
            self.audit,
            self.mqtt,
            self.historian,
            self.mqtt.watch,
            clock,
            spool=self.spool,
            trends=self.trends,
            acknowledge=self.mqtt.ack,
            registry=DeviceRegistry(data_dir / REGISTRY_FILE, key),
            monotonic=self.clock.monotonic,
            limits_store=BedLimitsFile(data_dir / BED_LIMITS_FILE),
            quarantine=self.quarantine,
            alarm_store=self.alarm_store,
        )
        if self.core.limits_fault is not None:
            self._faults.append(("bed_limits", self.core.limits_fault))
        live = self.live
        self.core.attach(
            self.mqtt.take, live.inbox.take, live.flooding, live.route, live.inbox.waiting
        )
        self.core_thread = QThread()
        self.core_thread.setObjectName("core")
        self.core.moveToThread(self.core_thread)
        apply = remove = None
        if broker_credentials is not None:  # the demo's broker: onboarding and revoking at once
            apply = lambda c: broker_credentials.add(c.username, c.password)  # noqa: E731
            remove = broker_credentials.remove
        self.ward = WardAdmin(
            settings,
            self.audit,
            clock=clock,
            apply_credential=apply,
            remove_credential=remove,
            role=self._session_role,
            parent=self,
        )
        self.ward.registry.key = key  # its writes are sealed, like the core's checks
        self.core.set_bed_policy(self.ward.policy())  # before the core thread runs
        if self.ward.fault is not None:
            self._faults.append(
                ("patients", f"Patient table unavailable, nothing sent to the historian: "
                 f"{self.ward.fault}")
            )  # fmt: skip
        self.window = MainWindow(
            settings,
            user or getpass.getuser(),
            self._historian_status,
            self.clock.now,  # what messages are stamped with: a tile's age reads them alike
            demo=demo is not None,
            trends=self.trends,
            actions=self.actions,
            monotonic=self.clock.monotonic,
            admin=self.ward,
            alarms=self.alarm_store,
        )
        self.dialogs = AdminDialogs(
            self.window,
            self.actions,
            settings,
            tiles=self.window.tiles,
            admin=self.ward,
            config_path=config_path,
            audit_source=partial(AuditTrailSource, self.audit, key, station_id),
            demo=demo is not None,
            strips=self.window.strips,
            quarantine=self.quarantine,
        )
        # Closing the window needs an admin (the demo has no accounts: its nurse closes it).
        self.close_guard = CloseGuard(
            self.window, self.actions, station_id, self.set_stop_reason, free=demo is not None
        )
        self.window.close_guard = self.close_guard.may_close
        self.supervision = Supervision(self.core_thread, self.window.isVisible, settings.ward.beds)
        self.conditions = StationConditions(self)
        parts = (settings, data_dir, self.audit, self.conditions, self.ward, self.alarm_store)
        self.links = HospitalLinks(LinkParts(*parts, self.trends, self.clock))
        if self.links.links:
            self.window.statusBar().addPermanentWidget(LinksStatus(self.links.status, self.window))
        self._check_keyring()
        self.simulator: Simulator | None = None
        self._history_jobs = Jobs("history-load", self)
        self._wire()

    def _live_password(self, password: str | None) -> str | None:
        """The live session's password: the station user's, unless it has a user of its own
        (a broker with use_username_as_clientid), whose password is ``STATION_MQTT_LIVE_PASSWORD``
        or, as for the station user, ``STATION_MQTT_PASSWORD`` or the keyring."""
        user = self.settings.mqtt.live_username
        if not user:
            return password
        return os.environ.get(LIVE_PASSWORD_ENV) or secret("mqtt", user)

    def _open(self, name: str, store: _Store, problem: str) -> _Store | None:
        """Open a local store; a failure is kept for a technical alarm at start, not a crash."""
        try:
            store.open()
        except (sqlite3.Error, OSError) as exc:
            log.error("%s at %s cannot be opened: %s", name, store.path, exc)
            self._faults.append((name, f"{problem}: {exc}"))
            return None
        return store

    def _check_keyring(self) -> None:
        """Say at start when a secret is needed, is not in the environment, and there is no
        secure keyring to hold it: the station would otherwise fail later with only "rejected
        credentials". (A secure keyring that lacks the secret shows as that refusal.)"""
        s = self.settings
        needed = [
            kind
            for kind, wanted in (("mqtt", bool(s.mqtt.username)), ("influx", s.influx.enabled))
            if wanted and not from_environment(kind)
        ]
        if not needed:
            return
        status = backend_status()
        if not status.ok:
            log.error("%s", status.message)
            self._faults.append(("keyring", status.message))

    def _session_role(self) -> str:
        role = self.actions.session.role
        return "none" if role is None else role.value

    def _historian_status(self) -> HistorianStatus | None:
        return None if self.historian is None else self.historian.status()

    def _wire(self) -> None:
        m, c, w = self.mqtt, self.core, self.window
        m.messages_ready.connect(c.drain_record, QUEUED)
        self.live.ready.connect(c.drain_live, QUEUED)
        self.live.connection_changed.connect(c.on_live_connection, QUEUED)
        m.connection_changed.connect(c.on_connection, QUEUED)
        c.connection_changed.connect(self.supervision.on_connection, QUEUED)
        self.conditions.changed.connect(c.station_condition, QUEUED)
        m.peer_event.connect(c.on_peer_event, QUEUED)
        # Every user action goes through the action layer (role check, denials audited).
        connect_screen(w, self.actions, self.dialogs)
        connect_core(c, w, self.actions, self.dialogs, QUEUED)
        connect_ward(c, self.ward, QUEUED)
        w.audio.sound_problem.connect(c.sound_problem, QUEUED)
        w.trends_exported.connect(self._outbound.trends_exported)
        w.history_exported.connect(self._outbound.history_exported)
        w.report_made.connect(self._outbound.report_made)
        self.core_thread.started.connect(c.start)
        self.core_thread.finished.connect(c.shutdown, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        """Start every part in order and show the window."""
        anchor = read_anchor(self.settings.station.id)
        self.audit.start(published=[anchor] if anchor is not None else [])
        s = self.settings
        self.audit.record(
            "station.start",
            target=s.station.id,
            details={
                "version": __version__,
                "demo": self._demo is not None,
                "broker": f"{s.mqtt.host}:{s.mqtt.port}",
                "tls": s.mqtt.tls,
                "historian": s.influx.url if s.influx.enabled else "off",
            },
        )
        for name, problem in self._faults:
            self.core.startup_fault(name, problem)
        if self._demo is not None:
            admit_demo_patients(self.ward)
            self.core.set_bed_policy(self.ward.policy())  # the core thread is not running yet
        if self.historian is not None:
            self.historian.start()
        self.core_thread.start()
        self.actions.raise_standing_lockouts()  # queued to the core, which runs now
        self.links.start()
        self.window.show()
        self._load_history()
        if self._demo is None and not self.accounts.has_users():
            self.dialogs.open_users()  # the first run creates the admin
        self.window.audio.self_test()
        self.mqtt.start()
        self.live.start()
        if self._demo is not None:
            self.simulator = self._demo.simulator(s.mqtt)
            self.simulator.start()
        self.supervision.start()  # READY=1 once the window shows and the core thread beats
        freeze_startup_heap()

    def set_stop_reason(self, reason: str, actor: str = "station", role: str = "system") -> None:
        """Who stops the station and why (``closed from the window`` by an admin, ``signal
        15``), for the ``station.stop`` record that :meth:`stop` writes."""
        self._stop_by = (actor, role, reason)

    def _load_history(self) -> None:
        """Fill the window's alarm history from the alarm store (the last
        :data:`HISTORY_LOAD_S`), on a worker: after a restart, the night's alarms and their
        comments are there for the review, the shift report and the fatigue figures."""
        store = self.alarm_store
        if store is None:
            return
        until = self.clock.now() + 1.0

        def loaded(episodes: list[AlarmEpisode]) -> None:
            new = self.window.history.merge(episodes)
            log.info("alarm history: %d alarms read back from the alarm store", new)
            dialog = self.window.bed_windows.history_dialog
            if dialog is not None and dialog.isVisible():
                dialog.refresh()

        def failed(exc: Exception) -> None:
            log.error("alarm history not read back: %s", exc)

        self._history_jobs.submit(lambda: store.load(until - HISTORY_LOAD_S, until), loaded, failed)

    def stop(self) -> bool:
        """Stop in reverse order; idempotent. Returns whether every part stopped in time."""
        if self._stopped:
            return True
        self._stopped = True
        station = self.settings.station.id
        ok = True
        self.supervision.stopping()  # STOPPING=1, and no more watchdog pings
        self.close_guard.release()
        self.window.close_guard = None  # the window closes freely, and holds no guard
        self.window.stop_timers()
        self.actions.shutdown(1.0)
        # The links first, so no ADT message reaches the ward admin while it stops.
        ok &= self.links.stop(2.0)
        # A change asked for just before the stop (an admission, a settings save) finishes and
        # is audited on its worker before the trail closes.
        ok &= self.ward.stop(2.0)
        ok &= self.dialogs.shutdown(1.0)
        if self.simulator is not None:
            ok &= self.simulator.stop(2.0)
        # 2 s each: paho's wait between connection attempts looks at the stop once a second.
        ok &= self.live.stop(2.0)
        ok &= self.mqtt.stop(2.0)
        self.mqtt.checkpoint_seen.disconnect(self._checkpoint_check.check)
        # No blocking call into the core: it ends its event loop after the chunk it is on (each
        # producer has at most one wake-up queued there), which stops its timers with it.
        self._history_jobs.stop(1.0)
        self.core_thread.quit()
        core_stopped = self.core_thread.wait(3000)
        if not core_stopped:
            # Destroying a running QThread aborts the process: give it the rest of the budget.
            log.error("core thread still busy after 3 s; waiting 2 s more")
            core_stopped = self.core_thread.wait(2000)
        ok &= core_stopped
        historian_stopped = True
        if self.historian is not None:
            historian_stopped = self.historian.stop(2.0)
            ok &= historian_stopped
        # A store still in use by a thread that did not stop is left to the OS at exit (WAL
        # keeps it consistent); closing it under that thread would turn its commit into an error.
        if self.spool is not None and historian_stopped and core_stopped:
            self.spool.close()
        if self.trends is not None and core_stopped:
            self.trends.close()
        if self.quarantine is not None and core_stopped:
            self.quarantine.close()
        if self.alarm_store is not None and core_stopped:
            self.alarm_store.close()
        # Break the window's references back to this object: with them, a stopped station is
        # freed only by Python's cycle collector, on whatever thread happens to run it.
        self.window.set_historian_status(_no_status)
        actor, role, reason = self._stop_by
        details = {"clean": ok, "reason": reason}
        self.audit.record("station.stop", actor=actor, role=role, target=station, details=details)
        ok &= self.audit.close(2.0)
        ok &= self.supervision.close(1.0)
        # Frozen objects that became garbage since the start are collectable again (a test
        # process starts many stations).
        gc.unfreeze()
        if not ok:
            log.error("some parts did not stop in time")
        return ok
