"""The windows a nurse opens from the ward screen: a bed's alarm limits, its detail view, its
stored trends, and the ward's alarm history.

Kept apart from :mod:`station.ui.main_window`, which stays about the ward view itself. None of
these is an admin dialog (they need no role to open); the two exports ask the action layer at
the moment of export, and what a nurse changes or exports leaves through the callables given
here (the window's signals), named with whoever is logged in at that moment. Each view is made
once and then raised; the patient detail views repaint with the window's frames. Each opening
is a read of patient data, audited (:mod:`station.presenters.data_reads`). GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from station.config.settings import Settings
from station.domain.alarm_history import AlarmHistory
from station.domain.bed_limits import BedLimits
from station.domain.profiles import available_profiles, load_profile
from station.domain.roles import Action
from station.presenters.actions import ActionLayer
from station.presenters.data_reads import record_read
from station.services.jobs import Jobs
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.trends import TrendStore
from station.ui.alarm_strip import AlarmStrips
from station.ui.beddata import BedData
from station.ui.fhir_export_action import attach_fhir_export
from station.ui.history_dialog import AlarmHistoryDialog
from station.ui.limits_dialog import LimitsDialog
from station.ui.patient_view import PatientView
from station.ui.shift_report_dialog import Reported, ShiftReportDialog
from station.ui.theme import ScreenLook
from station.ui.trend_view import MOMENT_SPAN_S, TrendView

Spans = Callable[[str], list[tuple[float, float]]]
"""A bed's spans a file export must leave out (patients without export consent)."""

PATIENT_VIEW_S = 600
"""Seconds of curves the patient detail view shows."""


class BedWindows:
    """See the module docstring.

    Args:
        parent: the window the views belong to.
        settings: the ward's limits, before a bed has limits of its own.
        beds: each bed's live data (the detail view's).
        limits: each bed's limits as the core last applied them.
        history: the ward's alarm history.
        user: who acts now (the session's user, or a locked station's "nobody").
        clock: wall time (what the history's per-hour figures and the trends are read with).
        on_limits: a nurse asked for new limits: (bed, limits, profile, user).
        on_trends_exported: a bed's trends left as a CSV: (bed, path, rows, user).
        on_history_exported: the alarm history left as a CSV: (path, rows, user).
        trends: the station's trend store; None: no trend view.
        actions: the action layer, asked at each export; None: exports need no login.
        excluded: the spans an export leaves out; None: nothing is left out.
        strips: puts the ward's alarm strip into each view; None: no strips.
    """

    def __init__(
        self,
        parent: QWidget,
        settings: Settings,
        beds: Mapping[str, BedData],
        limits: Mapping[str, BedLimits],
        history: AlarmHistory,
        user: Callable[[], str],
        clock: Callable[[], float],
        on_limits: Callable[[str, object, object, str], None],
        on_trends_exported: Callable[[str, str, int, str], None],
        on_history_exported: Callable[[str, int, str], None],
        *,
        trends: TrendStore | None = None,
        actions: ActionLayer | None = None,
        excluded: Spans | None = None,
        strips: AlarmStrips | None = None,
        on_reported: Reported | None = None,
        on_comment: Callable[[str, str, str], None] | None = None,
        alarms: AlarmStore | None = None,
    ) -> None:
        self._parent, self._settings, self._beds, self._limits = parent, settings, beds, limits
        self._history, self._user, self._clock = history, user, clock
        self._on_limits, self._on_trends_exported = on_limits, on_trends_exported
        self._on_history_exported = on_history_exported
        self._trends, self._actions, self._excluded = trends, actions, excluded
        self._strips = strips
        self.patient_views: dict[str, PatientView] = {}
        self.trend_views: dict[str, TrendView] = {}
        self.history_dialog: AlarmHistoryDialog | None = None
        self.report_dialog: ShiftReportDialog | None = None
        self._on_reported = on_reported
        self._on_comment, self._alarm_store = on_comment, alarms
        self.look = ScreenLook()
        """The ward screen's look; detail views opened from now on take its palette."""
        self.open_patient_record: Callable[[str], None] = lambda _bed: None
        """Opens the patient dialog of a bed (the window sets it: the ward controls own it)."""
        self._jobs = Jobs("reports", parent)  # rendering, writing and printing reports

    def open_limits(self, bed: str) -> None:
        """Let a nurse change one bed's limits (a profile or per parameter)."""
        in_force = self._limits.get(bed)
        current = dict(in_force.limits) if in_force else self._settings.alarms.limits()
        dialog = LimitsDialog(bed, current, available_profiles(), load_profile, self._parent)
        dialog.limits_accepted.connect(
            lambda b, limits, profile: self._on_limits(b, limits, profile, self._user())
        )
        # Not modal: while it is open the ward's alarms are still acknowledged, from the list
        # or from the strip at its top.
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._strip(dialog)
        dialog.show()
        dialog.raise_()

    def open_history(self) -> None:
        """The ward's alarm history, with alarm-fatigue figures and CSV export."""
        if self.history_dialog is None:
            self.history_dialog = AlarmHistoryDialog(self._history, self._clock, self._parent)
            self.history_dialog.excluded = self._excluded
            layer = self._actions
            if layer is not None:
                self.history_dialog.gate = lambda: layer.request(
                    Action.EXPORT_DATA, "alarm history", "export_data"
                )
            self.history_dialog.on_exported = self._on_history_exported
            self.history_dialog.on_comment = self._on_comment
            self.history_dialog.on_report = self._on_reported
            self.history_dialog.station = self._settings.station.name
            self.history_dialog.jobs = self._jobs
            self.history_dialog.on_open_moment = self.open_trends_at
            if self._alarm_store is not None:
                self.history_dialog.loader = self._alarm_store.load
            self._strip(self.history_dialog)
        self.history_dialog.refresh()
        record_read(self._actions, "alarm history", "ward")
        self.history_dialog.show()
        self.history_dialog.raise_()

    def open_report(self, bed: str | None = None) -> None:
        """The shift report of one bed (None: the ward), saved as PDF or printed."""
        if self.report_dialog is None:
            dialog = ShiftReportDialog(
                self._beds,
                self._history,
                self._trends,
                self._settings.station.name,
                self._clock,
                self._jobs,
                self._parent,
                capture_s=self._settings.alarms.capture_s,
            )
            dialog.excluded = self._excluded
            layer = self._actions
            if layer is not None:
                dialog.gate = lambda: layer.request(
                    Action.EXPORT_DATA, "shift report", "export_data"
                )
            dialog.on_reported = self._on_reported
            self._strip(dialog)
            self.report_dialog = dialog
        record_read(self._actions, "shift report", bed or "ward")
        self.report_dialog.show_for(bed)

    def open_patient(self, bed: str) -> None:
        """Show (or raise) the detail view of a bed."""
        view = self.patient_views.get(bed)
        if view is None:
            view = PatientView(
                self._beds[bed],
                PATIENT_VIEW_S,
                self._parent,
                no_data_s=self._settings.alarms.no_data_s,
                trends=self._trends,
                jobs=self._jobs,
                look=self.look,
            )
            view.trends_wanted.connect(self.open_trends)
            view.limits_wanted.connect(self.open_limits)
            view.patient_wanted.connect(self._patient_record)
            self.patient_views[bed] = view
            self._strip(view)
        record_read(self._actions, "detail", bed)
        view.show()
        view.raise_()
        view.refresh(self._clock(), force=True)

    def open_trends(self, bed: str) -> None:
        """A bed's stored trends (1–72 h) from the station's own store: works with the
        historian down."""
        if self._trends is None:
            return
        view = self.trend_views.get(bed)
        if view is None:
            view = TrendView(self._trends, bed, bed, self._clock, self._parent)
            view.excluded = self._excluded
            view.jobs, view.station = self._jobs, self._settings.station.name
            view.limits_of = partial(self._limits_in_force, bed)
            view.on_report = self._on_reported
            layer = self._actions
            if layer is not None:
                view.gate = lambda b=bed: layer.request(Action.EXPORT_DATA, b, "export_data")
            view.exported.connect(
                lambda b, path, rows, v=view: self._on_trends_exported(
                    b, path, rows, v.export_user or self._user()
                )
            )
            attach_fhir_export(
                view, bed, self._settings, self._clock, actions=layer, trends=self._trends,
                alarms=self._alarm_store,
            )  # fmt: skip
            self.trend_views[bed] = view
            self._strip(view)
        record_read(self._actions, "trends", bed)
        view.show()
        view.raise_()

    def open_trends_at(self, bed: str, at: float) -> None:
        """A bed's trend around the moment of an alarm (from the history), marked."""
        if bed not in self._beds:
            return
        self.open_trends(bed)
        view = self.trend_views.get(bed)
        if view is None or self._trends is None:
            return
        # Past the raw window only an event capture is at full resolution: show its span.
        old = self._clock() - at > self._trends.raw_keep_s - MOMENT_SPAN_S / 2
        capture = self._settings.alarms.capture_s
        view.show_moment(at, 2 * capture + 120 if old else MOMENT_SPAN_S)

    def _limits_in_force(self, bed: str) -> BedLimits:
        return self._limits.get(bed) or BedLimits()

    def _patient_record(self, bed: str) -> None:
        self.open_patient_record(bed)  # looked up now: the window sets it after building this

    def _strip(self, view: QWidget) -> None:
        if self._strips is not None:
            self._strips.attach(view)

    def refresh(self, now: float) -> None:
        """Repaint the open detail views (one frame of the window's render timer)."""
        for view in self.patient_views.values():
            view.refresh(now)

    def shutdown(self) -> None:
        """End the trend views' queries and finish a report being written (closing, or the
        station stopping)."""
        self._jobs.stop(5.0)
        for view in self.trend_views.values():
            view.shutdown()
