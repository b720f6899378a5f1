"""The ward screen: a tile per bed, the alarm list, and a status bar that says what is connected.

GUI thread only. Slots take immutable values from the core thread (queued connections); they
update :class:`BedData` and the alarm list and mark tiles dirty. One render timer repaints.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QCursor, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QPushButton,
    QScrollArea,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from station.config.settings import Settings, is_loopback
from station.domain.alarm_history import AlarmHistory
from station.domain.alarms import Alarm, AlarmLimits, AlarmState
from station.domain.messages import Accepted
from station.domain.profiles import available_profiles, load_profile
from station.domain.roles import LABELS, Action, allowed
from station.domain.session import SessionView
from station.domain.status import ConnectionState, IngestStats
from station.domain.ward import bed_labels
from station.presenters.actions import ActionLayer
from station.presenters.ward_admin import WardAdmin
from station.services.ingest.historian import HistorianStatus
from station.services.storage.trends import TrendStore
from station.ui import theme
from station.ui.alarm_list import AlarmList
from station.ui.audio_bar import AudioBar
from station.ui.beddata import BedData
from station.ui.history_dialog import AlarmHistoryDialog
from station.ui.limits_dialog import LimitsDialog
from station.ui.login_dialog import LoginDialog
from station.ui.patient_view import PatientView
from station.ui.sound import AlarmSound
from station.ui.tile import BedTile
from station.ui.trend_view import TrendView
from station.ui.users_dialog import UsersDialog
from station.ui.ward_controls import WardControls

DETAIL_CAPACITY = 3600  # samples per parameter kept for the detail view (1 h at 1 Hz)
CURVES_PER_FRAME = 6
"""Tiles whose curves are redrawn per frame (10 Hz: 60 tiles/s, each of 64 beds about once a
second, as often as a 1 Hz device adds a point). Each redraw is dozens of Qt calls, and under a
flood every Qt call waits for the interpreter lock (measured: 12 a frame made frames of 60 ms
mean, 600 ms at worst, with the record path busy)."""


def _duration(seconds: float) -> str:
    """A backlog age as staff read it: 42 s, 7 min, 3.5 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _pill(text: str, colour: str) -> str:
    return f"<span style='color:{colour}; font-size:15px'>●</span> {text}"


class MainWindow(QMainWindow):
    """The station's main window. GUI thread only.

    Signals:
        acknowledge_requested(str alarm_id, str user): to the action layer, which checks the
            session's role and passes the session's user (not this one) to the core.
        limits_requested(str bed, dict limits, str | None profile, str user): likewise.
        trends_exported(str bed, str path, int rows, str user): a CSV export, for the audit.
        history_exported(str path, int rows, str user): the alarm history's CSV export.
        The audio bar's ``action_taken`` goes to the action layer's audit, its
        ``sound_problem`` to the core.

    Closing the window ends the application's event loop; the app then stops every part in order.
    """

    acknowledge_requested = Signal(str, str)
    limits_requested = Signal(str, object, object, str)
    trends_exported = Signal(str, str, int, str)
    history_exported = Signal(str, int, str)

    def __init__(
        self,
        settings: Settings,
        user: str,
        historian_status: Callable[[], HistorianStatus | None],
        clock: Callable[[], float] = time.time,
        demo: bool = False,
        sound: AlarmSound | None = None,
        trends: TrendStore | None = None,
        actions: ActionLayer | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        pg.setConfigOptions(antialias=False, background=theme.TILE, foreground=theme.MUTED)
        self._settings = settings
        self._user = user
        self._clock = clock
        self._historian_status = historian_status
        self._trends = trends
        self._trend_views: dict[str, TrendView] = {}
        self.setWindowTitle(f"Central station — {settings.station.name}")
        self.setStyleSheet(theme.STYLESHEET)
        self.resize(1600, 900)

        ward = settings.ward
        labels = bed_labels(ward.beds, ward.bed_prefix)
        self.beds = {label: BedData(label, DETAIL_CAPACITY) for label in labels}
        self.tiles: dict[str, BedTile] = {}
        grid = QGridLayout()
        grid.setSpacing(8)
        for i, label in enumerate(labels):
            tile = BedTile(self.beds[label], settings.ui.plot_window_s, settings.alarms.no_data_s)
            tile.opened.connect(self.open_patient)
            tile.limits_wanted.connect(self.open_limits)
            tile.trends_wanted.connect(self.open_trends)
            self.tiles[label] = tile
            grid.addWidget(tile, i // settings.ui.columns, i % settings.ui.columns)
        # Equal stretch: every bed gets the same room, whatever its labels' widths.
        for col in range(min(settings.ui.columns, ward.beds)):
            grid.setColumnStretch(col, 1)
        for row in range((ward.beds + settings.ui.columns - 1) // settings.ui.columns):
            grid.setRowStretch(row, 1)
        tiles_host = QWidget()
        tiles_host.setObjectName("central")
        tiles_host.setLayout(grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(tiles_host)

        self.alarm_list = AlarmList()
        self.alarm_list.acknowledge_requested.connect(
            lambda alarm_id: self.acknowledge_requested.emit(alarm_id, self._user)
        )
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.alarm_list)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([1240, 360])

        self.title = QLabel(settings.station.name)
        self.title.setStyleSheet("font-size:18px; font-weight:700;")
        mode = "DEMO — simulated devices" if demo else ""
        self.mode = QLabel(mode)
        self.mode.setStyleSheet(f"color:{theme.WARN}; font-weight:700;")
        self.clock_label = QLabel()
        self.clock_label.setStyleSheet("font-size:18px;")
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addSpacing(20)
        top.addWidget(self.mode, 1)
        # Pause and reminder are durations: on the monotonic clock, which a wall-clock step
        # cannot stretch or cut short (``clock`` when a test drives a single one).
        self.audio = AudioBar(
            user,
            monotonic or clock,
            settings.alarms.audio_pause_s,
            settings.alarms.reminder_s,
            sound,
            wall=clock,
        )
        top.addWidget(self.audio)
        top.addSpacing(20)
        self.history_button = QPushButton("Alarm history")
        self.history_button.clicked.connect(self.open_history)
        top.addWidget(self.history_button)
        top.addSpacing(20)
        self.user_label = QLabel(f"User: {user}")
        top.addWidget(self.user_label)
        self.action_layer = actions
        self.open_settings_dialog: Callable[[str], QDialog | None] | None = None
        self.export_audit: Callable[[str], None] | None = None
        self._login_dialog: LoginDialog | None = None
        # Admin dialogs hold the authority of the session that opened them: closed as soon
        # as the station locks or changes hands.
        self._admin_dialogs: list[QDialog] = []
        self._session_user: str | None = None
        if actions is not None:
            # Parented to the window from the start (never owned by Python alone): a widget
            # that Python's garbage collector frees, possibly from another thread, is deleted
            # by PySide later on the GUI thread, which deadlocked here against the core thread.
            self.login_button = QPushButton("Log in", self)
            self.lock_button = QPushButton("Lock", self)
            # Admin and auditor tasks in one menu: the header stays readable for the ward.
            self.manage_button = QToolButton(self)
            self.manage_button.setText("Manage ▾")
            self.manage_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
            manage = QMenu(self.manage_button)
            self.manage_button.setMenu(manage)
            # Every entry asks the action layer, which checks the role and audits denials.
            self.login_button.clicked.connect(lambda: self.on_login_required("login", None))
            self.lock_button.clicked.connect(lambda: actions.lock("by user"))
            manage.addAction("Users…", self.open_users)
            manage.addAction("Devices…", self.open_devices)
            manage.addAction("Settings…", self.open_settings)
            manage.addAction("Audit trail…", self.open_audit_export)
            manage.addSeparator()
            manage.addAction("Log out", actions.logout)
            for button in (self.login_button, self.lock_button, self.manage_button):
                top.addWidget(button)
            # Inactivity: the pointer's position, sampled once a second. (An application-wide
            # event filter in Python sees every event of every object, including objects being
            # destroyed, which PySide must wrap: a crash risk for a convenience.) Clicks and
            # keys in the station's own dialogs count through the action layer's requests.
            self._pointer = QCursor.pos()
            self._activity_timer = QTimer(self)
            self._activity_timer.setInterval(1000)
            self._activity_timer.timeout.connect(self._sample_activity)
            self._activity_timer.start()
            actions.session_changed.connect(self.on_session)
            actions.login_required.connect(self.on_login_required)
            self.audio.gate = actions.audio_gate
            self.on_session(actions.session.view())
        top.addSpacing(20)
        top.addWidget(self.clock_label)

        central = QWidget()
        central.setObjectName("central")
        lay = QVBoxLayout(central)
        lay.setContentsMargins(8, 6, 8, 2)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        self.setCentralWidget(central)

        self.connection = QLabel(_pill("Broker: connecting…", theme.WARN))
        self.historian = QLabel()
        self.ingest = QLabel("0 accepted · 0 rejected")
        for widget in (self.connection, self.historian, self.ingest):
            widget.setTextFormat(Qt.TextFormat.RichText)
            self.statusBar().addWidget(widget)
            self.statusBar().addWidget(QLabel("   "))
        self.plain_warning: QLabel | None = None
        m = settings.mqtt
        if not m.tls and not is_loopback(m.host):
            # An admin allowed plain MQTT to another machine: say so for as long as it lasts.
            self.plain_warning = QLabel(
                _pill(f"UNENCRYPTED MQTT to {m.host} (allowed by admin)", theme.BAD)
            )
            self.plain_warning.setTextFormat(Qt.TextFormat.RichText)
            self.statusBar().addPermanentWidget(self.plain_warning)
        self._patient_views: dict[str, PatientView] = {}
        self.ward: WardControls | None = None
        self.history = AlarmHistory()
        self._history_dialog: AlarmHistoryDialog | None = None
        self.bed_limits: dict[str, dict[str, AlarmLimits]] = {}
        self.stats: IngestStats | None = None
        self.broker_connected = False
        # Duration of recent frames (ms), for `station bench` and diagnostics; bounded.
        self.frame_ms: deque[float] = deque(maxlen=10_000)
        # Device time → painted, per newly raised alarm (ms), for `station bench`; bounded.
        self.alarm_paint_ms: deque[float] = deque(maxlen=10_000)
        self._raised_unpainted: list[float] = []

        self._tile_list = list(self.tiles.values())
        self._next_curve_tile = 0
        self.render_timer = QTimer(self)
        self.render_timer.setInterval(max(1, round(1000 / settings.ui.render_hz)))
        self.render_timer.timeout.connect(self.paint_frame)
        self.render_timer.start()
        self._urgent_frame = QTimer(self)
        self._urgent_frame.setSingleShot(True)
        self._urgent_frame.setInterval(0)
        self._urgent_frame.timeout.connect(self.paint_frame)
        self.paint_frame()

    # -- slots from the core (queued) ------------------------------------------------------

    @Slot(object)
    def on_vitals_batch(self, batch: tuple[tuple[str, Accepted], ...]) -> None:
        """The core's live messages since its last batch: append only; the render timer
        paints."""
        for bed, msg in batch:
            self.on_vitals(bed, msg)

    @Slot(str, object)
    def on_vitals(self, bed: str, msg: Accepted) -> None:
        """Append only; the render timer paints."""
        data = self.beds.get(bed)
        if data is not None:
            data.add(msg)

    @Slot(str, int, float)
    def on_gap(self, bed: str, missing: int, at: float) -> None:
        """Messages of a bed's device were lost: the tile says so and its curves break."""
        data = self.beds.get(bed)
        if data is not None:
            data.mark_gap(missing, at)

    @Slot(object)
    def on_alarm(self, alarm: Alarm) -> None:
        """Keep the alarm list and the bed's banner in step with the engine."""
        self.alarm_list.update_alarm(alarm)
        self.audio.set_alarms(self.alarm_list.alarms())
        if alarm.state == AlarmState.ACTIVE:
            # A new alarm is painted at once, not at the next render tick (coalesced).
            self._urgent_frame.start()
            if alarm.source_time is not None:
                self._raised_unpainted.append(alarm.source_time)
        self.history.add(alarm)
        data = self.beds.get(alarm.bed)
        if data is not None:
            data.update_alarm(alarm)

    @Slot(object)
    def on_connection(self, state: ConnectionState) -> None:
        """Show the broker state with its reason, never just a colour."""
        self.broker_connected = state.connected
        m = self._settings.mqtt
        where = f"{m.host}:{m.port}{' TLS' if m.tls else ''}"
        if state.connected:
            self.connection.setText(_pill(f"Broker {where}: {state.detail}", theme.OK))
        else:
            self.connection.setText(_pill(f"Broker {where}: {state.detail.upper()}", theme.BAD))

    @Slot(object)
    def on_stats(self, stats: IngestStats) -> None:
        """Counters for the status bar."""
        self.stats = stats
        text = f"{stats.accepted} accepted · {stats.rejected} rejected"
        if stats.late:
            text += f" · {stats.late} late"
        if stats.duplicates:
            text += f" · {stats.duplicates} duplicates ignored"
        if stats.missing:
            text += f" · {stats.missing} LOST before arrival (seq gaps)"
        if stats.unspooled:
            text += f" · {stats.unspooled} NOT SAVED TO DISK"
        if stats.unassigned:
            text += f" · {len(stats.unassigned)} devices without a bed (Manage ▾ Devices)"
        self.ingest.setText(text)
        if self.ward is not None:
            self.ward.on_stats()

    # -- painting --------------------------------------------------------------------------

    @Slot()
    def paint_frame(self) -> None:
        """The one render timer: repaint dirty tiles, ages, flashing and the status labels."""
        started = time.perf_counter()
        now = self._clock()
        self.alarm_list.render_if_dirty()
        # Numbers, banners and flashing are painted on every tile every frame; curve redraws,
        # the costly part, are limited per frame and taken round-robin, so a ward whose devices
        # all send in the same second does not make one long frame (alarms wait for none).
        tiles = self._tile_list
        budget = CURVES_PER_FRAME
        start = self._next_curve_tile
        for i in range(len(tiles)):
            tile = tiles[(start + i) % len(tiles)]
            draw = budget > 0 and tile.data.dirty
            if draw:
                budget -= 1
                self._next_curve_tile = (start + i + 1) % len(tiles)
            tile.refresh(now, curves=draw)
        for view in self._patient_views.values():
            view.refresh(now)
        self.audio.paint(now)
        if math.floor(now) != math.floor(now - self.render_timer.interval() / 1000):
            self.clock_label.setText(time.strftime("%H:%M:%S", time.localtime(now)))
            self._paint_historian()
            self.audio.tick()
        self.frame_ms.append((time.perf_counter() - started) * 1000)
        if self._raised_unpainted:
            painted = time.time()
            self.alarm_paint_ms.extend((painted - t) * 1000 for t in self._raised_unpainted)
            self._raised_unpainted.clear()

    def _paint_historian(self) -> None:
        st = self._historian_status()
        if st is None:
            self.historian.setText(_pill("Historian: off", theme.MUTED))
        elif st.ok:
            rejected = f", {st.rejected} REJECTED" if st.rejected else ""
            self.historian.setText(
                _pill(
                    f"Historian: writing ({st.written} points, {st.backlog} queued{rejected})",
                    theme.WARN if st.rejected else theme.OK,
                )
            )
        else:
            oldest = "" if st.oldest_s is None else f", oldest {_duration(st.oldest_s)}"
            self.historian.setText(
                _pill(
                    f"Historian: FAILING, {st.backlog} kept{oldest} — {st.error}",
                    theme.BAD,
                )
            )

    @Slot(str, object)
    def on_limits(self, bed: str, limits: dict[str, AlarmLimits]) -> None:
        """The core applied new limits to a bed."""
        self.bed_limits[bed] = dict(limits)

    @Slot(str)
    def open_limits(self, bed: str) -> None:
        """Let a nurse change one bed's limits (a profile or per parameter)."""
        current = self.bed_limits.get(bed, self._settings.alarms.limits())
        dialog = LimitsDialog(bed, current, available_profiles(), load_profile, self)
        dialog.limits_accepted.connect(
            lambda b, limits, profile: self.limits_requested.emit(b, limits, profile, self._user)
        )
        dialog.open()

    @Slot()
    def open_history(self) -> None:
        """The ward's alarm history, with alarm-fatigue figures and CSV export."""
        if self._history_dialog is None:
            self._history_dialog = AlarmHistoryDialog(self.history, self._clock, self)
            if self.ward is not None:
                self._history_dialog.excluded = self.ward.admin.export_excluded
            layer = self.action_layer
            if layer is not None:
                self._history_dialog.gate = lambda: layer.request(
                    Action.EXPORT_DATA, "alarm history", "export_data"
                )
            self._history_dialog.on_exported = self.history_exported.emit
        self._history_dialog.refresh()
        self._history_dialog.show()
        self._history_dialog.raise_()

    @Slot(str)
    def open_patient(self, bed: str) -> None:
        """Show (or raise) the detail view of a bed."""
        view = self._patient_views.get(bed)
        if view is None:
            view = PatientView(self.beds[bed], 600, self)
            self._patient_views[bed] = view
        view.show()
        view.raise_()
        view.refresh(self._clock(), force=True)

    @Slot(str)
    def open_trends(self, bed: str) -> None:
        """A bed's stored trends (1–72 h) from the station's own store: works with the
        historian down."""
        if self._trends is None:
            return
        view = self._trend_views.get(bed)
        if view is None:
            view = TrendView(self._trends, bed, bed, self._clock, self)
            if self.ward is not None:
                view.excluded = self.ward.admin.export_excluded
            layer = self.action_layer
            if layer is not None:
                view.gate = lambda b=bed: layer.request(Action.EXPORT_DATA, b, "export_data")
            view.exported.connect(
                lambda b, path, rows, v=view: self.trends_exported.emit(
                    b, path, rows, v.export_user or self._user
                )
            )
            self._trend_views[bed] = view
        view.show()
        view.raise_()

    # -- session and admin actions ---------------------------------------------------------

    @Slot()
    def _sample_activity(self) -> None:
        pointer = QCursor.pos()
        if pointer != self._pointer and self.action_layer is not None:
            self._pointer = pointer
            self.action_layer.activity()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """A key typed on the ward screen counts as activity for the auto-lock."""
        if self.action_layer is not None:
            self.action_layer.activity()
        super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """A click on the ward screen counts as activity for the auto-lock."""
        if self.action_layer is not None:
            self.action_layer.activity()
        super().mousePressEvent(event)

    @Slot(object)
    def on_session(self, view: SessionView) -> None:
        """Show who acts at the station, or that it is locked (the ward stays in view); close
        the admin dialogs of a session that ended."""
        if view.user != self._session_user:
            for dialog in self._admin_dialogs:
                dialog.close()
            self._admin_dialogs.clear()
            self._session_user = view.user
        if view.user is None or view.role is None:
            self._user = "nobody (station locked)"
            self.user_label.setText("LOCKED — actions need a login")
            self.user_label.setStyleSheet(f"color:{theme.WARN}; font-weight:700;")
        else:
            self._user = view.user
            self.user_label.setText(f"User: {view.user} ({LABELS[view.role]})")
            self.user_label.setStyleSheet("")
        self.audio.set_user(self._user)

    @Slot(str, object)
    def on_login_required(self, action: str, request: object) -> None:
        """The action layer refused for want of a login (or of the role): log in, then do what
        was asked if the new user may; for an alarm, an emergency acknowledge is offered too."""
        actions = self.action_layer
        if actions is None:
            return
        if self._login_dialog is not None and self._login_dialog.isVisible():
            self._login_dialog.raise_()
            return
        alarm = request if action == Action.ACKNOWLEDGE.value and isinstance(request, str) else None
        why = {
            "login": "Log in or switch user.",
            Action.CHANGE_LIMITS.value: "Changing a bed's limits needs a nurse's login. After"
            " logging in, open Alarm limits… again and make the change yourself.",
        }.get(action, f"This needs a login with the right role ({action.replace('_', ' ')}).")
        if alarm is not None:
            shown = self.alarm_list._alarms.get(alarm)
            what = f"{shown.bed or 'station'}: {shown.message}" if shown else "this alarm"
            why = f"Acknowledge {what}? This needs a nurse's login."
        dialog = LoginDialog(actions, why, alarm, self)
        self._login_dialog = dialog

        def finished(result: int) -> None:
            if result != LoginDialog.DialogCode.Accepted or dialog.emergency_done:
                return
            try:
                wanted = Action(action)
            except ValueError:
                return  # a plain login
            if allowed(actions.current_role(), wanted):
                self._replay(wanted, request)

        dialog.finished.connect(finished)
        dialog.show()  # not modal: the ward and its alarm list stay usable behind it

    def _replay(self, action: Action, request: object) -> None:
        actions = self.action_layer
        assert actions is not None
        if action is Action.ACKNOWLEDGE and isinstance(request, str):
            actions.on_acknowledge(request, self._user)
        # A limits change is not replayed: its values were typed before the login, perhaps by
        # someone else; the nurse who logged in makes the change herself.
        elif action is Action.PAUSE_AUDIO:
            self.audio.toggle_pause()
        elif action is Action.SETTINGS:
            self.open_settings()
        elif action is Action.DEVICES:
            self.open_devices()
        elif action is Action.PATIENTS and self.ward is not None and request in self.beds:
            self.ward.open_patient(str(request))  # opens the dialog; the nurse then acts
        elif action is Action.USERS:
            self.open_users()
        elif action is Action.AUDIT_EXPORT:
            self.open_audit_export()

    @Slot()
    def open_users(self) -> None:
        """User accounts (admin); on the first run, creating the first admin needs no login."""
        actions = self.action_layer
        if actions is None:
            return
        if not actions.accounts.has_users():
            # Not modal: until an admin exists the ward must stay usable (emergency acknowledge).
            UsersDialog(actions.accounts, actions.audit, None, self, actions.jobs).show()
            return
        user = actions.request(Action.USERS, "users", "users")
        if user is not None:
            dialog = UsersDialog(actions.accounts, actions.audit, user, self, actions.jobs)
            self._admin_dialogs.append(dialog)
            dialog.show()

    def set_ward_admin(self, admin: WardAdmin, demo: bool) -> None:
        """Admissions, consent and devices (issue 6): tiles show the patient, menus open the
        dialogs. Open admission is said in the header for as long as it is on."""
        self.ward = WardControls(self, admin, demo)
        if self._settings.devices.admission == "open":
            mode = self.mode.text()
            self.mode.setText(f"{mode} · OPEN admission" if mode else "OPEN device admission")

    def keep_admin_dialog(self, dialog: QDialog) -> None:
        """Close ``dialog`` when the session locks or changes hands."""
        self._admin_dialogs.append(dialog)

    @Slot()
    def open_devices(self) -> None:
        """The device registry and the unassigned devices (admin)."""
        if self.ward is not None:
            self.ward.open_devices()

    @Slot()
    def open_settings(self) -> None:
        """The settings dialog (admin)."""
        if self.action_layer is None or self.open_settings_dialog is None:
            return
        user = self.action_layer.request(Action.SETTINGS, "settings", "settings")
        if user is not None and (dialog := self.open_settings_dialog(user)) is not None:
            self._admin_dialogs.append(dialog)

    @Slot()
    def open_audit_export(self) -> None:
        """Export the audit trail (auditor)."""
        if self.action_layer is None or self.export_audit is None:
            return
        user = self.action_layer.request(Action.AUDIT_EXPORT, "audit", "audit_export")
        if user is not None:
            self.export_audit(user)

    def set_historian_status(self, source: Callable[[], HistorianStatus | None]) -> None:
        """Where the status bar reads the historian's state from."""
        self._historian_status = source

    def stop_timers(self) -> None:
        """Stop painting, sampling activity and the trend views' queries (closing, or the
        station stopping): nothing of a stopped station may run on later."""
        self.render_timer.stop()
        if self.action_layer is not None:
            self._activity_timer.stop()
        for view in self._trend_views.values():
            view.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop painting and end the trend views' queries; the app's stop sequence runs once the
        event loop has ended."""
        self.stop_timers()
        event.accept()
