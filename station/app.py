"""Composition root: builds every part, wires the signals, starts and stops in order.

Threads and owners (ARCHITECTURE.md):
    GUI thread   — :class:`MainWindow`, this object, the render timer.
    ``mqtt``     — paho's network loop of the persistent session (the record path), owned by
                   :class:`MqttWorker`.
    ``live-mqtt``— paho's network loop of the clean live session (display and alarms), owned by
                   :class:`LiveFeed`.
    ``core``     — a ``QThread`` running :class:`CoreWorker` (alarms, watch, fan-out).
    ``historian``— :class:`Historian` (only when ``[influx] enabled``), draining the spool.
    ``audit``    — :class:`AuditWriter`.
    demo only: ``demo-broker`` (:class:`EmbeddedBroker`) and ``simulator``.

Local stores under the data folder: ``spool.sqlite`` (with the historian: every point before its
PUBACK) and ``trends.sqlite`` (72 h per bed for the trend view). Either failing to open is a
technical alarm, not a failed start: the ward must still be monitored.

Start order: audit → stores → historian → core → window → MQTT, live feed (→ simulator). Stop is
the reverse, each step with a timeout, so the whole stop ends well within the 10 s of CONTRACT §3.

Clocks: one :class:`StationClock` gives the wall time (what devices and people read) and the
monotonic time every duration is measured with (no-data, escalation, lock, pause, reminder).
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PySide6.QtCore import QObject, Qt, QThread

from station import __version__
from station.config.credentials import backend_status, from_environment, secret
from station.config.settings import Settings
from station.domain.audit.keyed import Published
from station.domain.clock import StationClock
from station.domain.patients import PatientError, Purpose
from station.domain.roles import Role
from station.domain.vouchers import key_id
from station.presenters.actions import ActionLayer
from station.presenters.ward_admin import WardAdmin
from station.services.audit.bundle import write_bundle
from station.services.audit.keys import AuditKeyError, read_anchor, station_key, write_anchor
from station.services.audit.trail import public_key_beside, read_trail, verify
from station.services.audit.writer import AuditWriter
from station.services.demo.broker import DemoCredentials
from station.services.demo.simulator import Simulator, SimulatorConfig
from station.services.ingest.core import CoreWorker
from station.services.ingest.historian import Historian, HistorianStatus
from station.services.ingest.live_feed import LiveFeed
from station.services.ingest.mqtt_worker import MqttWorker
from station.services.storage.accounts import Accounts
from station.services.storage.device_registry import REGISTRY_FILE, DeviceRegistry
from station.services.storage.patient_store import PatientStoreError
from station.services.storage.spool import Spool
from station.services.storage.trends import TrendStore
from station.ui.audit_view import AuditSnapshot, AuditView
from station.ui.main_window import MainWindow
from station.ui.settings_dialog import SettingsDialog

log = logging.getLogger(__name__)

QUEUED = Qt.ConnectionType.QueuedConnection
LIVE_PASSWORD_ENV = "STATION_MQTT_LIVE_PASSWORD"
SWITCH_INTERVAL_S = 0.001
"""How long a busy thread keeps the interpreter lock while another waits (CPython: 5 ms). PySide
releases the lock around every Qt call, so a frame of a few hundred Qt calls waited up to 5 ms
for each while the MQTT and core threads were busy under a flood (measured with ``station
bench --flood``: frames of 60 ms mean for 8 ms of work). A shorter slice costs the busy threads
a little switching and gives the screen its turn sooner."""


_Store = TypeVar("_Store", Spool, TrendStore)


def _no_status() -> HistorianStatus | None:
    return None


class AuditTrailSource:
    """What the auditor view reads and exports: this station's trail and key. Both methods run
    on the view's worker thread (a full check costs one signature check per record)."""

    def __init__(
        self, audit: AuditWriter, key: Ed25519PrivateKey | None, station: str, user: str
    ) -> None:
        self._audit, self._key, self._station, self._user = audit, key, station, user
        self._dir = audit.path.parent

    def load(self) -> AuditSnapshot:
        trail = read_trail(self._dir, live=True)
        public = self._key.public_key() if self._key is not None else public_key_beside(self._dir)
        if public is None:
            health = "FAIL the trail is not keyed: no station key to check it against"
            return AuditSnapshot(trail.records(), False, health)
        report = verify(trail, public)
        result = report.result
        return AuditSnapshot(trail.records(), result.ok, report.line(), key_id(public), result.seq)

    def export(self, folder: Path, since: float | None, until: float | None) -> str:
        if self._key is None:
            raise ValueError("the station has no audit signing key, so it cannot sign a bundle")
        done = write_bundle(
            self._dir,
            folder,
            self._key,
            station=self._station,
            exported_by=self._user,
            since=since,
            until=until,
            now=time.time(),
        )
        self._audit.record(
            "audit.export",
            actor=self._user,
            role="auditor",
            target=str(folder),
            details={
                "records": done.records,
                "since": since,
                "until": until,
                "verdict": done.verdict,
            },
        )
        return f"Wrote {folder}: {done.records} records. {done.verdict}"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``--demo`` embeds: the simulated ward."""

    beds: int = 8
    rate: float = 1.0
    scenario: str = "demo"
    seed: int = 7


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
        self._config_path = config_path
        self._demo = demo
        self._stopped = False
        data_dir = settings.station.data_path
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_dir.chmod(0o700)  # patient data: also when the folder existed (made by a CLI run)
        self._faults: list[tuple[str, str]] = []
        station_id = settings.station.id
        try:
            key: Ed25519PrivateKey | None = station_key(station_id)
        except AuditKeyError as exc:
            key = None
            log.error("audit trail not keyed: %s", exc)
            self._faults.append(("audit_key", f"Audit trail not keyed: {exc}"))
        self._audit_key = key
        self._audit_view: AuditView | None = None
        self.audit = AuditWriter(
            data_dir / "audit",
            clock=clock,
            station_key=key,
            station=station_id,
            where=f"{station_id}@{socket.gethostname()}",
            on_checkpoint=self._checkpoint_made,
        )
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
                on_rejected=self._historian_rejected,
                spool=self.spool,
                keep_written_s=settings.spool.keep_written_s,
            )
        self.trends = self._open(
            "trends", TrendStore(data_dir / "trends.sqlite", clock=clock), "Trends unavailable"
        )
        self.accounts = Accounts(
            data_dir / "users.json",
            max_failures=settings.security.max_failed_logins,
            lockout_s=settings.security.lockout_s,
            clock=clock,
        )
        # The demo has no accounts: it starts with a nurse's session that never locks.
        lock_after = math.inf if demo is not None else settings.security.lock_after_s
        self.actions = ActionLayer(
            self.accounts, self.audit, settings.station.id, lock_after, self.clock.monotonic
        )
        if demo is not None:
            self.actions.session.login(user or "demo-nurse", Role.NURSE, self.clock.monotonic())
        password = secret("mqtt", settings.mqtt.username) if settings.mqtt.username else None
        self.mqtt = MqttWorker(settings, password, self.clock.now)
        self.mqtt.on_checkpoint_seen = self._checkpoint_seen
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
            registry=DeviceRegistry(data_dir / REGISTRY_FILE),
            monotonic=self.clock.monotonic,
        )
        self.core.attach(self.mqtt.take, self.live.inbox.take, self.live.flooding, self.live.route)
        self.core_thread = QThread()
        self.core_thread.setObjectName("core")
        self.core.moveToThread(self.core_thread)
        self.window = MainWindow(
            settings,
            user or getpass.getuser(),
            self._historian_status,
            self.clock.now,  # what messages are stamped with: a tile's age reads them alike
            demo=demo is not None,
            trends=self.trends,
            actions=self.actions,
            monotonic=self.clock.monotonic,
        )
        apply = None
        if broker_credentials is not None:
            apply = lambda c: broker_credentials.add(c.username, c.password)  # noqa: E731
        self.ward = WardAdmin(
            settings,
            self.audit,
            clock=clock,
            apply_credential=apply,
            role=self._session_role,
            parent=self,
        )
        self.core.set_bed_policy(self.ward.policy())  # before the core thread runs
        if self.ward.fault is not None:
            self._faults.append(
                ("patients", f"Patient table unavailable, nothing sent to the historian: "
                 f"{self.ward.fault}")
            )  # fmt: skip
        self.window.set_ward_admin(self.ward, demo is not None)
        self.window.export_audit = self._export_audit
        self.window.open_settings_dialog = self._open_settings
        self._settings_dialog: SettingsDialog | None = None
        self._check_keyring()
        self.simulator: Simulator | None = None
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

    def _historian_rejected(self, line: str, status: int, message: str) -> None:
        """The historian refused a point's content (4xx): it is quarantined, never retried
        for ever, and the audit trail says which and why. Called on the historian thread; the
        audit writer is thread-safe."""
        self.audit.record(
            "historian.reject",
            target=self.settings.influx.url,
            outcome="failure",
            details={"status": status, "message": message[:300], "point": line[:300]},
        )

    def _open_settings(self, user: str) -> SettingsDialog | None:
        """The admin's settings dialog (the action layer has checked the role). Not modal: the
        ward stays in view and usable behind it."""
        if self._config_path is None:  # said in the status bar: nothing modal over the ward
            self.window.statusBar().showMessage("No configuration file to edit.", 5000)
            return None
        if self._settings_dialog is not None and self._settings_dialog.isVisible():
            self._settings_dialog.raise_()
            return None
        dialog = SettingsDialog(self.settings, self._config_path, user, self.audit, self.window)
        self._settings_dialog = dialog
        dialog.show()
        return dialog

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

    def _export_audit(self, user: str) -> None:
        """The auditor's view of the trail (the action layer has checked the role): filter,
        see the chain's health, export a signed bundle. Not modal: the ward stays in view."""
        source = AuditTrailSource(self.audit, self._audit_key, self.settings.station.id, user)
        dialog = AuditView(source, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self._audit_view = dialog

    def _trends_exported(self, bed: str, path: str, rows: int, user: str) -> None:
        """A patient's trends left the station as a file: who, which bed, where, how much."""
        self.audit.record(
            "trends.export",
            actor=user,
            role=self._role_name(user),
            target=bed,
            details={"path": path, "rows": rows},
        )

    def _demo_patients(self) -> None:
        """A few fictional admissions, so the demo shows patients, consent and its effects:
        one without display consent (name hidden) and one without storage consent."""
        consent = {Purpose.DISPLAY: True, Purpose.STORAGE: True, Purpose.EXPORT: True}
        people = [
            (1, "Ada Demo", "DEMO-001", date(1948, 3, 14), consent),
            (2, "Ben Sample", "DEMO-002", date(1971, 11, 2), consent),
            (4, "Cleo Test", "DEMO-004", date(1939, 7, 30), {Purpose.DISPLAY: False}),
            (5, "Dev Example", "DEMO-005", date(1985, 1, 9), {Purpose.DISPLAY: True}),
        ]
        try:
            for number, name, mrn, born, purposes in people:
                if number > len(self.ward.beds):
                    continue
                bed = self.ward.beds[number - 1]
                patient = self.ward.admit_now(bed, name, mrn, born, "demo-nurse")
                for purpose, granted in purposes.items():
                    self.ward.record_consent_now(
                        patient,
                        purpose,
                        granted=granted,
                        given_by="patient",
                        representative="",
                        user="demo-nurse",
                    )
        except (PatientError, PatientStoreError) as exc:
            log.warning("demo patients not admitted: %s", exc)

    def _session_role(self) -> str:
        role = self.actions.session.role
        return "none" if role is None else role.value

    def _role_name(self, user: str) -> str:
        role = self.accounts.role_of(user)
        return "none" if role is None else role.value

    def _history_exported(self, path: str, rows: int, user: str) -> None:
        """The alarm history left the station as a file."""
        self.audit.record(
            "alarms.export",
            actor=user,
            role=self._role_name(user),
            target=path,
            details={"rows": rows},
        )

    def _historian_status(self) -> HistorianStatus | None:
        return None if self.historian is None else self.historian.status()

    def _wire(self) -> None:
        m, c, w = self.mqtt, self.core, self.window
        m.messages_ready.connect(c.drain_record, QUEUED)
        self.live.ready.connect(c.drain_live, QUEUED)
        self.live.connection_changed.connect(c.on_live_connection, QUEUED)
        m.connection_changed.connect(c.on_connection, QUEUED)
        m.peer_event.connect(c.on_peer_event, QUEUED)
        c.vitals_batch.connect(w.on_vitals_batch, QUEUED)
        c.data_gap.connect(w.on_gap, QUEUED)
        w.trends_exported.connect(self._trends_exported)
        w.history_exported.connect(self._history_exported)
        c.alarm_changed.connect(w.on_alarm, QUEUED)
        c.stats_changed.connect(w.on_stats, QUEUED)
        c.connection_changed.connect(w.on_connection, QUEUED)
        # Every user action goes through the action layer (role check, denials audited).
        a = self.actions
        w.acknowledge_requested.connect(a.on_acknowledge)
        a.acknowledge.connect(c.acknowledge, QUEUED)
        w.limits_requested.connect(a.on_limits)
        a.limits.connect(c.change_limits, QUEUED)
        c.limits_changed.connect(w.on_limits, QUEUED)
        w.audio.action_taken.connect(a.record_user_action)
        w.audio.sound_problem.connect(c.sound_problem, QUEUED)
        self.ward.policy_changed.connect(c.set_bed_policy, QUEUED)
        self.ward.devices_written.connect(c.reload_devices, QUEUED)
        c.devices_changed.connect(lambda _book: self.ward.changed.emit(), QUEUED)
        self.core_thread.started.connect(c.start)
        self.core_thread.finished.connect(c.shutdown, Qt.ConnectionType.DirectConnection)

    def _checkpoint_made(self, checkpoint: Published) -> None:
        """A signed checkpoint is durable: keep it outside the folder, in the keyring and on the
        broker (retained). Called on the audit thread; both calls are thread-safe."""
        write_anchor(checkpoint)
        mqtt = getattr(self, "mqtt", None)
        if mqtt is not None:
            mqtt.publish_checkpoint(checkpoint.to_json())

    def _checkpoint_seen(self, payload: bytes) -> None:
        """The broker's retained checkpoint (``mqtt`` thread): one the station key signed but
        the trail does not hold means the folder was rolled back; anything else is logged."""
        try:
            checkpoint = Published.from_json(payload)
        except (ValueError, TypeError) as exc:
            log.warning("ignoring an unreadable audit checkpoint on the broker: %s", exc)
            return
        key = self._audit_key
        if key is None or not checkpoint.verifies(key.public_key()):
            log.warning("ignoring an audit checkpoint on the broker not signed by this station")
            return
        problem = self.audit.check_published(checkpoint)
        if problem is not None:
            self.audit.record(
                "audit.verify",
                target="broker checkpoint",
                outcome="failure",
                details={"kind": "rolled_back", "seq": checkpoint.seq, "why": problem},
            )

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
            self._demo_patients()
            self.core.set_bed_policy(self.ward.policy())  # the core thread is not running yet
        if self.historian is not None:
            self.historian.start()
        self.core_thread.start()
        self.window.show()
        if self._demo is None and not self.accounts.has_users():
            self.window.open_users()  # the first run creates the admin
        self.window.audio.self_test()
        self.mqtt.start()
        self.live.start()
        if self._demo is not None:
            d = self._demo
            self.simulator = Simulator(
                SimulatorConfig(
                    host=s.mqtt.host,
                    port=s.mqtt.port,
                    beds=d.beds,
                    rate=d.rate,
                    scenario=d.scenario,
                    seed=d.seed,
                    duration=None,
                    protocol=s.mqtt.protocol,
                )
            )
            self.simulator.start()

    def stop(self) -> bool:
        """Stop in reverse order; idempotent. Returns whether every part stopped in time."""
        if self._stopped:
            return True
        self._stopped = True
        ok = True
        self.window.stop_timers()
        self.actions.shutdown(1.0)
        # A change asked for just before the stop (an admission, a settings save) finishes and
        # is audited on its worker before the trail closes.
        ok &= self.ward.stop(2.0)
        if self._settings_dialog is not None:
            ok &= self._settings_dialog.shutdown(1.0)
        if self.simulator is not None:
            ok &= self.simulator.stop(2.0)
        ok &= self.live.stop(1.0)
        ok &= self.mqtt.stop(1.5)
        self.mqtt.on_checkpoint_seen = None
        # No blocking call into the core: it ends its event loop after the chunk it is on (each
        # producer has at most one wake-up queued there), which stops its timers with it.
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
        # Break the window's references back to this object: with them, a stopped station is
        # freed only by Python's cycle collector, on whatever thread happens to run it.
        self.window.export_audit = None
        self.window.open_settings_dialog = None
        self.window.set_historian_status(_no_status)
        self.audit.record("station.stop", target=self.settings.station.id, details={"clean": ok})
        ok &= self.audit.close(2.0)
        if not ok:
            log.error("some parts did not stop in time")
        return ok
