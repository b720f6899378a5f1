"""The ward screen: a tile per bed, the alarm list, and a status bar that says what is connected.

GUI thread only. Slots take immutable values from the core thread (queued connections); they
update :class:`BedData` and the alarm list and mark tiles dirty. One render timer repaints.

What the window opens lives beside it: the per-bed windows and the alarm history in
:mod:`station.ui.bed_windows`, the login asked for on demand in :mod:`station.ui.login_prompt`,
the status bar's wording in :mod:`station.ui.status_text`. Admin dialogs are not opened here:
the window asks for them with ``admin_wanted``, which the composition root connects to the
admin-dialog controller (:mod:`station.ui.admin_dialogs`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QCursor, QKeyEvent, QKeySequence, QMouseEvent, QShortcut
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from station.config.hosts import is_loopback
from station.config.settings import Settings
from station.domain.alarm_history import AlarmComment, AlarmHistory
from station.domain.alarms import UNACKNOWLEDGED, Alarm, AlarmState, most_urgent
from station.domain.bed_limits import BedLimits
from station.domain.messages import Accepted
from station.domain.roles import Action
from station.domain.session import SessionView
from station.domain.status import ConnectionState, IngestStats
from station.domain.ward import bed_labels
from station.presenters.actions import ActionLayer
from station.presenters.ward_admin import WardAdmin
from station.services.ingest.historian import HistorianStatus
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.trends import TrendStore
from station.ui import status_text, theme
from station.ui.alarm_list import AlarmList
from station.ui.alarm_strip import AlarmStrips
from station.ui.audio_bar import AudioBar
from station.ui.bed_windows import BedWindows
from station.ui.beddata import BedData
from station.ui.login_prompt import LoginPrompt
from station.ui.paint_times import PaintTimes
from station.ui.sound import AlarmSound
from station.ui.theme import ScreenLook
from station.ui.tile_grid import TileGrid
from station.ui.view_menu import ViewMenu
from station.ui.ward_header import WardHeader

DETAIL_CAPACITY = 3600  # samples per parameter kept for the detail view (1 h at 1 Hz)
PAUSE_NOTICE_MS = 15_000  # how long "Bed N: alarm audio pause ended" stays in the status bar


class MainWindow(QMainWindow):
    """The station's main window. GUI thread only.

    Signals:
        acknowledge_requested(str alarm_id, str user): to the action layer, which checks the
            session's role and passes the session's user (not this one) to the core.
        acknowledge_bed_requested(str bed, tuple alarm_ids): every unacknowledged alarm of a
            bed (the tile's menu, the list's *Acknowledge bed*), to the action layer likewise.
        limits_requested(str bed, dict limits, str | None profile, str user): likewise.
        trends_exported(str bed, str path, int rows, str user): a CSV export, for the audit.
        history_exported(str path, int rows, str user): the alarm history's CSV export.
        comment_requested(str alarm_id, str mark, str text): a nurse's comment on an alarm.
        report_made(str how, str where, tuple beds, str user): a report (``shift``, ``alarms``,
            ``trend``) saved as PDF
            (``pdf``, the path) or printed (``print``, the printer), for the audit.
        admin_wanted(str action, object request): a Manage ▾ entry, or an admin action asked
            for again after a login: to the admin-dialog controller (``request``: a bed for
            ``patients``).
        The audio bar's ``action_taken`` goes to the action layer's audit, its
        ``sound_problem`` to the core.

    ``admin``, the ward admin, makes exports leave out patients without export consent, and
    open device admission is said in the header for as long as it is on.

    Closing the window ends the application's event loop (from the window system: once
    ``close_guard`` allows it); the app then stops every part in order.
    """

    acknowledge_requested = Signal(str, str)
    acknowledge_bed_requested = Signal(str, object)
    limits_requested = Signal(str, object, object, str)
    trends_exported = Signal(str, str, int, str)
    history_exported = Signal(str, int, str)
    report_made = Signal(str, str, object, str)
    comment_requested = Signal(str, str, str)
    admin_wanted = Signal(str, object)

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
        admin: WardAdmin | None = None,
        alarms: AlarmStore | None = None,
    ) -> None:
        super().__init__()
        pg.setConfigOptions(antialias=False, background=theme.TILE, foreground=theme.MUTED)
        self._settings = settings
        self._user = user
        self._clock = clock
        self._historian_status = historian_status
        self.setWindowTitle(f"Central station — {settings.station.name}")
        self.setStyleSheet(theme.STYLESHEET)
        self.resize(1600, 900)
        self.history = AlarmHistory()
        self.bed_limits: dict[str, BedLimits] = {}

        labels = bed_labels(settings.ward.beds, settings.ward.bed_prefix)
        self.beds = {label: BedData(label, DETAIL_CAPACITY) for label in labels}
        self.alarm_list = AlarmList()
        self.alarm_list.acknowledge_requested.connect(self._acknowledge)
        self.alarm_list.acknowledge_bed_requested.connect(self.acknowledge_bed)
        # Every secondary window shows the ward's alarms and can acknowledge them.
        self.strips = AlarmStrips(self.alarm_list.alarms, self._acknowledge)
        self.bed_windows = BedWindows(
            self,
            settings,
            self.beds,
            self.bed_limits,
            self.history,
            lambda: self._user,
            clock,
            self.limits_requested.emit,
            self.trends_exported.emit,
            self.history_exported.emit,
            on_reported=self.report_made.emit,
            on_comment=self.comment_requested.emit,
            alarms=alarms,
            trends=trends,
            actions=actions,
            excluded=admin.export_excluded if admin is not None else None,
            strips=self.strips,
        )
        look = ScreenLook(settings.ui.font_scale, settings.ui.wall, settings.ui.palette)
        self.grid = TileGrid(self.beds, settings, look)
        self.tiles = self.grid.tiles
        for tile in self.tiles.values():
            tile.opened.connect(self.bed_windows.open_patient)
            tile.limits_wanted.connect(self.bed_windows.open_limits)
            tile.trends_wanted.connect(self.bed_windows.open_trends)
            tile.report_wanted.connect(self.bed_windows.open_report)
            tile.acknowledge_bed_wanted.connect(self.acknowledge_bed)
        # The detail view's "Patient…" asks what the tile's menu asks (the ward controls answer).
        self.bed_windows.open_patient_record = lambda bed: self.tiles[bed].patient_wanted.emit(bed)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.grid)
        split.addWidget(self.alarm_list)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([1240, 360])

        mode = "DEMO — simulated devices" if demo else ""
        if admin is not None and settings.devices.admission == "open":
            mode = f"{mode} · OPEN admission" if mode else "OPEN device admission"
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
        self.audio.bed_pause_ended.connect(self._bed_pause_ended)
        for tile in self.tiles.values():
            tile.audio_pause_wanted.connect(self.audio.pause_bed)
            tile.audio_resume_wanted.connect(self.audio.resume_bed)
        self.action_layer = actions
        self.login_prompt: LoginPrompt | None = None
        if actions is not None:
            self.login_prompt = LoginPrompt(
                actions,
                self,
                self._find_alarm,
                lambda alarm_id: actions.on_acknowledge(alarm_id, self._user),
                self.audio.toggle_pause,
                self.ask_admin,
            )
        self.header = WardHeader(
            self,
            settings.station.name,
            mode,
            self.audio,
            user,
            actions,
            lambda: self._ask_login("login", None),
            [
                ("Users…", partial(self.ask_admin, Action.USERS)),
                ("Devices…", partial(self.ask_admin, Action.DEVICES)),
                # The rejected messages, under the devices role (AdminDialogs.QUARANTINE).
                ("Quarantine…", partial(self.ask_admin, Action.DEVICES, "quarantine")),
                ("ADT messages…", partial(self.ask_admin, Action.SETTINGS, "adt")),
                ("Settings…", self.open_settings),
                ("Audit trail…", partial(self.ask_admin, Action.AUDIT_EXPORT)),
            ],
        )
        self.view_menu = ViewMenu(look, self.set_look, self)
        self.header.insertWidget(self.header.indexOf(self.header.history_button), self.view_menu)
        # F9 anywhere on the ward screen: the most urgent alarm still waiting is acknowledged
        # (through the action layer: a locked station asks for a login first).
        QShortcut(QKeySequence(Qt.Key.Key_F9), self, self.acknowledge_most_urgent)
        self.header.history_button.clicked.connect(self.bed_windows.open_history)
        self.header.report_button.clicked.connect(lambda: self.bed_windows.open_report(None))
        if actions is not None:
            self._follow_session(actions)

        central = QWidget()
        central.setObjectName("central")
        lay = QVBoxLayout(central)
        lay.setContentsMargins(8, 6, 8, 2)
        lay.addLayout(self.header)
        lay.addWidget(split, 1)
        self.setCentralWidget(central)

        self.connection = QLabel(status_text.BROKER_CONNECTING)
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
            self.plain_warning = QLabel(status_text.plain_mqtt_warning(m))
            self.plain_warning.setTextFormat(Qt.TextFormat.RichText)
            self.statusBar().addPermanentWidget(self.plain_warning)
        self.stats: IngestStats | None = None
        self.broker_connected = False
        self.paint_times = PaintTimes()  # for `station bench` and diagnostics

        self.render_timer = QTimer(self)
        self.render_timer.setInterval(max(1, round(1000 / settings.ui.render_hz)))
        self.render_timer.timeout.connect(self.paint_frame)
        self.render_timer.start()
        self._alarm_frame = QTimer(self)
        self._alarm_frame.setSingleShot(True)
        self._alarm_frame.setInterval(0)
        self._alarm_frame.timeout.connect(self.paint_alarms)
        self.paint_frame()

    def _follow_session(self, actions: ActionLayer) -> None:
        """Show who is logged in, ask for a login when the action layer wants one, and sample
        the activity that keeps a session from locking."""
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
        actions.login_required.connect(self._ask_login)
        self.audio.gate = actions.audio_gate
        self.on_session(actions.session.view())

    @Slot(str, object)
    def _ask_login(self, action: str, request: object) -> None:
        if self.login_prompt is not None:
            self.login_prompt.ask(action, request)

    # -- slots from the core (queued) ------------------------------------------------------

    @Slot(object)
    def on_vitals_batch(self, batch: tuple[tuple[str, Accepted], ...]) -> None:
        """The core's live messages since its last batch: append only; the render timer
        paints."""
        for bed, msg in batch:
            self.on_vitals(bed, msg)

    def acknowledge_bed(self, bed: str) -> None:
        """Every alarm of ``bed`` that still waits for an acknowledgement, as the list shows
        them, in one request."""
        waiting = tuple(
            a.alarm_id
            for a in self.alarm_list.alarms()
            if a.bed == bed and a.state in UNACKNOWLEDGED
        )
        if waiting:
            self.acknowledge_bed_requested.emit(bed, waiting)

    def acknowledge_most_urgent(self) -> None:
        """The keyboard's acknowledge (F9): the most urgent alarm that still waits."""
        alarm = most_urgent(a for a in self.alarm_list.alarms() if a.state in UNACKNOWLEDGED)
        if alarm is not None:
            self._acknowledge(alarm.alarm_id)

    def set_look(self, look: ScreenLook) -> None:
        """Wall mode, type size, palette (View ▾): the tiles at once, detail views opened
        from now on."""
        self.grid.apply_look(look)
        self.bed_windows.look = look

    def _acknowledge(self, alarm_id: str) -> None:
        """From the list or a strip: to the action layer, with who is logged in now."""
        self.acknowledge_requested.emit(alarm_id, self._user)

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
            self._alarm_frame.start()
            if alarm.source_time is not None:
                self.paint_times.raised(alarm.source_time)
        self.history.add(alarm)
        data = self.beds.get(alarm.bed)
        if data is not None:
            data.update_alarm(alarm)

    @Slot(object)
    def on_connection(self, state: ConnectionState) -> None:
        """Show the broker state with its reason, never just a colour."""
        self.broker_connected = state.connected
        self.connection.setText(status_text.broker_text(state, self._settings.mqtt))

    @Slot(object)
    def on_stats(self, stats: IngestStats) -> None:
        """Counters for the status bar."""
        self.stats = stats
        self.ingest.setText(status_text.ingest_text(stats))

    @Slot(str, object)
    def on_limits(self, bed: str, limits: BedLimits) -> None:
        """The core applied new limits to a bed (or restored them): the tile and the detail
        view show them from the next frame."""
        self.bed_limits[bed] = limits
        data = self.beds.get(bed)
        if data is not None:
            data.limits = limits

    @Slot(str, object)
    def on_comment(self, alarm_id: str, comment: AlarmComment) -> None:
        """The core kept a nurse's comment on an alarm: into the history, and the open history
        dialog shows it."""
        self.history.comment(alarm_id, comment)
        dialog = self.bed_windows.history_dialog
        if dialog is not None and dialog.isVisible():
            dialog.refresh()

    # -- painting --------------------------------------------------------------------------

    @Slot()
    def paint_frame(self) -> None:
        """The one render timer: repaint dirty tiles, ages, flashing and the status labels."""
        started = time.perf_counter()
        now = self._clock()
        second = math.floor(now) != math.floor(now - self.render_timer.interval() / 1000)
        if second:  # before the tiles: the countdowns they show are this second's
            self.audio.tick()
            self._paint_bed_pauses()
        self.paint_alarms(now)
        self.grid.paint(now)
        self.bed_windows.refresh(now)
        if second:
            self.header.clock_label.setText(time.strftime("%H:%M:%S", time.localtime(now)))
            self._paint_historian()
        self.paint_times.frame_ms.append((time.perf_counter() - started) * 1000)

    @Slot()
    def paint_alarms(self, now: float | None = None) -> None:
        """The list, the tiles whose alarms changed, the strips and the lamp: a new alarm's
        frame, at once; curves and other tiles wait for the tick (a whole frame at 64 beds,
        10-25 ms, was time a new alarm waited: ``station bench --scenario alarms``)."""
        now = self._clock() if now is None else now
        self.alarm_list.render_if_dirty()
        self.grid.paint_alarms(now)
        self.strips.paint(now)
        self.audio.paint(now)
        self.paint_times.painted()

    def _paint_bed_pauses(self) -> None:
        """Each second: the beds' audio pause countdowns on their tiles and in the list."""
        pauses = {b: int(left + 0.999) for b, left in self.audio.policy.bed_pauses().items()}
        for label, data in self.beds.items():
            left = pauses.get(label)
            if data.audio_paused_s != left:
                data.audio_paused_s = left
                data.urgent = True
        self.alarm_list.set_bed_pauses(pauses)

    @Slot(str, float)
    def on_peer_bed_pause(self, bed: str, seconds: float) -> None:
        """Another station of the ward paused (``seconds`` > 0) or resumed a bed's alarm audio:
        the same here (the core audited it with who and where)."""
        if seconds > 0:
            self.audio.policy.pause_bed(bed, seconds)
        else:
            self.audio.policy.resume_bed(bed)
        self._paint_bed_pauses()

    def _bed_pause_ended(self, bed: str) -> None:
        self._paint_bed_pauses()
        self.statusBar().showMessage(f"{bed}: alarm audio pause ended", PAUSE_NOTICE_MS)

    def _paint_historian(self) -> None:
        self.historian.setText(status_text.historian_text(self._historian_status()))

    # -- the session -----------------------------------------------------------------------

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
        """Show who acts at the station, or that it is locked (the ward stays in view)."""
        self._user = self.header.show_session(view)
        self.audio.set_user(self._user)

    def _find_alarm(self, alarm_id: str) -> Alarm | None:
        return next((a for a in self.alarm_list.alarms() if a.alarm_id == alarm_id), None)

    # -- admin tasks (Manage ▾): the controller opens their dialogs -------------------------

    def ask_admin(self, action: Action, request: object = None) -> None:
        """Ask the admin-dialog controller for ``action``'s dialog (``request``: a bed for
        ``patients``); it checks the role first."""
        self.admin_wanted.emit(action.value, request)

    @Slot()
    def open_settings(self) -> None:
        """Manage ▾ Settings…"""
        self.ask_admin(Action.SETTINGS)

    # -- stopping --------------------------------------------------------------------------

    def set_historian_status(self, source: Callable[[], HistorianStatus | None]) -> None:
        """Where the status bar reads the historian's state from."""
        self._historian_status = source

    def stop_timers(self) -> None:
        """Stop painting, sampling activity and the trend views' queries (closing, or the
        station stopping): nothing of a stopped station may run on later."""
        self.render_timer.stop()
        if self.action_layer is not None:
            self._activity_timer.stop()
        self.bed_windows.shutdown()

    close_guard: Callable[[], bool] | None = None
    """Asked when the window system closes the window (:mod:`station.ui.close_guard`)."""

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop painting and end the trend views' queries; the app's stop sequence runs once the
        event loop has ended. A close by the window system (×, Alt-F4: spontaneous) needs the
        close guard's yes; the program's own (quit on a signal, a screenshot) does not."""
        if event.spontaneous() and self.close_guard is not None and not self.close_guard():
            event.ignore()
            return
        self.stop_timers()
        event.accept()
