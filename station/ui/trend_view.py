"""Trend view of one bed: the last 1, 8, 24 or 72 h from the station's local trend store.

It reads only the :class:`~station.services.storage.trends.TrendStore`, never InfluxDB, so a nurse
can review a trend while the historian is down; the status line says so. 1 h shows every sample;
longer ranges show 1-minute means with a band from the minute's min to its max, so a brief
desaturation stays visible on a 72 h plot.

Threads: the dialog lives in the GUI thread and touches widgets only there. Each range change
starts a short-lived thread named ``trend-query`` that runs :meth:`TrendStore.query` on its own
read-only connection and hands back the immutable :class:`TrendData` through a queued signal.
A result for a range no longer selected is dropped (each request has a generation number), and
the previous request's query is cancelled. Closing the dialog cancels running queries and joins
their threads with a timeout.

Signals:
    loaded(TrendData): after the plots show a new result (GUI thread).
    load_failed(str): the store could not be read; the reason is also in the status line.
    exported(str bed, str path, int rows): after a successful CSV export, for the audit trail.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QPainterPath, QShowEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QGraphicsPathItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.alarms import Priority
from station.domain.bed_limits import BedLimits
from station.services.jobs import Jobs
from station.services.printing.shift_report import Document, trend_document
from station.services.storage.trend_csv import without_spans, write_csv
from station.services.storage.trends import (
    MINUTE,
    RAW,
    FloatArray,
    QueryCancelled,
    TrendData,
    TrendStore,
)
from station.ui import file_choice, theme
from station.ui.patient_view import PLOTS
from station.ui.pdf_output import PdfOutput
from station.ui.trend_band import band_item, band_path

log = logging.getLogger(__name__)


RANGES_H = (1, 8, 24, 72)
MOMENT_SPAN_S = 3600.0
"""What an alarm opened from the history shows: half an hour either side of it."""
DEFAULT_RANGE_H = 8
THREAD_NAME = "trend-query"
JOIN_TIMEOUT_S = 2.0
# A line joins two points only this close in time, so a dropout shows as a gap, not a ramp.
GAP_S = {RAW: 30.0, MINUTE: 180.0}
# NIBP is measured every 5–60 min by a cuff, not streamed: its readings are joined across that.
INTERMITTENT = {"systolic": 7200.0, "diastolic": 7200.0}
# A series this sparse also gets a marker per point, so a lone reading is never invisible.
MARKERS_MAX = 300
NO_DATA = "No stored data for this period"
SOURCE = "from the station's local store"


def _when(ts: float) -> str:
    # Local time on screen, as on the rest of the station; the CSV export carries UTC.
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _load(
    store: TrendStore,
    bed: str,
    start_s: float,
    end_s: float,
    generation: int,
    cancel: threading.Event,
    deliver: Callable[[int, object], None],
) -> None:
    """Body of a ``trend-query`` thread: query, then deliver the data or an error text."""
    result: TrendData | str
    try:
        result = store.query(bed, start_s, end_s, cancel=cancel)
    except QueryCancelled:
        return
    except (sqlite3.Error, OSError) as exc:
        log.warning("trend query for %s failed: %s", bed, exc)
        result = f"Could not read the station's local trend store: {exc}"
    if cancel.is_set():
        return
    try:
        deliver(generation, result)
    except RuntimeError:  # the dialog was deleted meanwhile; nobody is waiting for this
        log.debug("trend result for %s dropped: view gone", bed)


class TrendView(QDialog):
    """1/8/24/72 h trends of one bed from the local store, with CSV export. GUI thread only.

    Args:
        store: the station's trend store; only queried.
        bed: the bed's key in the store.
        label: the bed's name on screen.
        clock: UTC epoch seconds; the ranges end at ``clock()`` when chosen.
        parent: the owning window.
    """

    loaded = Signal(object)
    load_failed = Signal(str)
    exported = Signal(str, str, int)
    _result = Signal(int, object)  # (generation, TrendData | error text), from a worker thread

    def __init__(
        self,
        store: TrendStore,
        bed: str,
        label: str,
        clock: Callable[[], float],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.gate: Callable[[], str | None] | None = None
        """Who may export now (the action layer's check); None: no check (tests)."""
        self.export_user = ""
        self.jobs: Jobs | None = None
        """The worker a trend print is rendered on; None: no printing (tests, no window)."""
        self.station = ""
        self.limits_of: Callable[[], BedLimits] = BedLimits
        """The bed's limits in force, drawn on the print."""
        self.on_report: Callable[[str, str, tuple[str, ...], str], None] | None = None
        """A trend print went out: (how, where, beds, user), for the audit trail."""
        self.excluded: Callable[[str], list[tuple[float, float]]] | None = None
        """Times whose data may not leave the station (patients without export consent)."""
        self._store = store
        self._bed = bed
        self._label = label
        self._clock = clock
        self._hours = DEFAULT_RANGE_H
        self._generation = 0
        self._data: TrendData | None = None
        self._workers: list[tuple[threading.Thread, threading.Event]] = []
        self._closed = False
        self._moment: float | None = None
        self._moment_span = MOMENT_SPAN_S
        self._result.connect(self._on_result, Qt.ConnectionType.QueuedConnection)
        self.setWindowTitle(f"{label} — trends")
        self.resize(1000, 760)

        self.range_group = QButtonGroup(self)
        self.range_group.setExclusive(True)
        top = QHBoxLayout()
        title = QLabel(label)
        title.setStyleSheet("font-size:18px; font-weight:700;")
        top.addWidget(title)
        top.addStretch(1)
        for hours in RANGES_H:
            button = QPushButton(f"{hours} h")
            button.setCheckable(True)
            button.setStyleSheet(theme.CHOICE_BUTTON)  # the selected range must be visible
            self.range_group.addButton(button, hours)
            top.addWidget(button)
        self.range_group.idClicked.connect(self.show_range)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._ask_and_export)
        top.addSpacing(16)
        top.addWidget(self.export_button)
        self.pdf_button = QPushButton("Save PDF…")
        self.pdf_button.clicked.connect(lambda: self._report("pdf"))
        self.print_button = QPushButton("Print…")
        self.print_button.clicked.connect(lambda: self._report("print"))
        top.addWidget(self.pdf_button)
        top.addWidget(self.print_button)

        self.graphs = pg.GraphicsLayoutWidget()
        self.graphs.setBackground(theme.BACKGROUND)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.bands: dict[str, QGraphicsPathItem] = {}
        self._items: list[pg.PlotItem] = []
        self.moment_lines: list[pg.InfiniteLine] = []
        for row, (plot_title, params, (lo, hi)) in enumerate(PLOTS):
            item = self.graphs.addPlot(
                row=row, col=0, title=plot_title, axisItems={"bottom": pg.DateAxisItem()}
            )
            item.setYRange(lo, hi, padding=0)
            item.disableAutoRange()
            item.showGrid(x=True, y=True, alpha=0.2)
            item.getAxis("left").setWidth(40)  # plots aligned whatever their labels' width
            item.setMouseEnabled(x=False, y=False)
            item.setClipToView(True)
            item.setDownsampling(auto=True, mode="peak")  # a 10 Hz device's hour stays light
            for param in params:
                self.bands[param] = band_item(item, theme.PARAM_COLOURS[param])
                colour = theme.PARAM_COLOURS[param]
                self.curves[param] = item.plot(
                    pen=pg.mkPen(colour, width=2),
                    symbolSize=5,
                    symbolBrush=pg.mkBrush(colour),
                    symbolPen=None,
                )
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.ALARM_BG[Priority.HIGH], width=2))
            line.setVisible(False)
            item.addItem(line)
            self.moment_lines.append(line)
            self._items.append(item)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.export_status = QLabel()
        self.export_status.setStyleSheet(f"color:{theme.MUTED};")
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.graphs, 1)
        lay.addWidget(self.status)
        lay.addWidget(self.export_status)
        self.show_range(DEFAULT_RANGE_H)

    @property
    def data(self) -> TrendData | None:
        """The data on the plots, or None before the first result."""
        return self._data

    def selected_hours(self) -> int:
        """The range chosen, in hours."""
        return self._hours

    def show_range(self, hours: int) -> None:
        """Show the last ``hours`` (one of :data:`RANGES_H`): starts a query off the GUI thread.

        The plots keep the previous range until the result arrives; :attr:`loaded` follows.
        """
        if hours not in RANGES_H:
            raise ValueError(f"range {hours} h is not one of {RANGES_H}")
        self._hours = hours
        button = self.range_group.button(hours)
        if not button.isChecked():
            button.setChecked(True)  # setChecked does not emit idClicked
        self._moment = None
        for line in self.moment_lines:
            line.setVisible(False)
        end_s = self._clock()
        self._query(end_s - hours * 3600.0, end_s, f"the last {hours} h")

    def show_moment(self, at: float, span_s: float = MOMENT_SPAN_S) -> None:
        """Show ``span_s`` around the moment ``at`` (an alarm picked in the history), marked
        by a red line on every plot: what the patient's values did before and after."""
        self._moment, self._moment_span = at, span_s
        button = self.range_group.checkedButton()
        if button is not None:
            self.range_group.setExclusive(False)  # no preset range is selected now
            button.setChecked(False)
            self.range_group.setExclusive(True)
        for line in self.moment_lines:
            line.setValue(at)
            line.setVisible(True)
        self._query(at - span_s / 2, at + span_s / 2, f"around {_when(at)}")

    @property
    def moment(self) -> float | None:
        """The moment marked, or None when a preset range is shown."""
        return self._moment

    def _query(self, start_s: float, end_s: float, what: str) -> None:
        """Start a query of ``[start_s, end_s]`` off the GUI thread."""
        self._closed = False
        self._generation += 1
        self._cancel_workers()
        cancel = threading.Event()
        thread = threading.Thread(
            target=_load,
            args=(self._store, self._bed, start_s, end_s, self._generation, cancel),
            kwargs={"deliver": self._result.emit},
            name=THREAD_NAME,
            daemon=True,  # never keeps the station from exiting; done() joins it anyway
        )
        self._workers.append((thread, cancel))
        thread.start()
        self.export_button.setEnabled(False)
        self.status.setText(f"Loading {what} {SOURCE}…")

    def plotted_span_s(self, param: str) -> float:
        """Seconds between the first and last finite mean plotted for ``param`` (0 if none)."""
        t, v = self.plotted(param)
        finite = t[np.isfinite(v)]
        return float(finite[-1] - finite[0]) if finite.size else 0.0

    def plotted(self, param: str) -> tuple[FloatArray, FloatArray]:
        """The mean curve's data as given to the plot: ``(t, value)``."""
        t, v = self.curves[param].getOriginalDataset()
        if t is None or v is None:
            return np.empty(0), np.empty(0)
        return np.asarray(t, dtype=np.float64), np.asarray(v, dtype=np.float64)

    def export_to(self, path: Path) -> int:
        """Write the data shown as CSV to ``path`` here and now; return the rows written (the
        command line's and the tests' way; the window's button writes on the worker:
        :meth:`export_on_worker`). A failure is said in the view and returns 0: an export must
        never take the station down. A success emits :attr:`exported`."""
        ready = self._exportable()
        if ready is None:
            return 0
        data, left_out = ready
        try:
            rows = write_csv(data, path)
        except OSError as exc:
            self._export_failed(path, exc)
            return 0
        self._exported(path, rows, left_out)
        return rows

    def export_on_worker(self, path: Path) -> None:
        """Write the CSV on the ``jobs`` worker (the GUI thread never writes a file); the
        outcome is said in the view when it is done."""
        jobs = self.jobs
        ready = self._exportable()
        if ready is None:
            return
        if jobs is None:
            self.export_to(path)
            return
        data, left_out = ready
        self.export_status.setText(f"Writing {path}…")
        jobs.submit(
            lambda: write_csv(data, path),
            lambda rows: self._exported(path, rows, left_out),
            lambda exc: self._export_failed(path, exc),
            context=self,
        )

    def _exportable(self) -> tuple[TrendData, int] | None:
        """The data shown less what may not leave the station, and how many rows that was;
        None (said in the view) when nothing may be exported."""
        data = self._data
        if data is None:
            self.export_status.setText("Nothing to export yet: the trend is still loading.")
            return None
        left_out = 0
        if self.excluded is not None:
            data, left_out = without_spans(data, self.excluded(self._bed))
        if data.rows == 0:
            self.export_status.setText(
                "Nothing exported: the patient has not consented to export and sharing."
            )
            return None
        return data, left_out

    def _exported(self, path: Path, rows: int, left_out: int) -> None:
        note = f" {left_out} rows left out: no export consent." if left_out else ""
        self.export_status.setText(f"Exported {rows} rows to {path}.{note}")
        self.exported.emit(self._bed, str(path), rows)

    def _export_failed(self, path: Path, exc: Exception) -> None:
        log.warning("trend export to %s failed: %s", path, exc)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        self.export_status.setText(f"Export failed: could not write {path}: {reason}")

    def shutdown(self) -> None:
        """Cancel running queries and join their threads (at most :data:`JOIN_TIMEOUT_S` each).

        Called when the dialog closes; results still in flight are then ignored.
        """
        self._closed = True
        self._generation += 1
        self._cancel_workers()
        for thread, _cancel in self._workers:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.warning("trend query thread still running after %.1f s", JOIN_TIMEOUT_S)
        self._workers = [(t, c) for t, c in self._workers if t.is_alive()]

    def done(self, arg__1: int, /) -> None:
        """Close the dialog (accept/reject/Escape) after stopping its queries."""
        self.shutdown()
        super().done(arg__1)

    def closeEvent(self, arg__1: QCloseEvent, /) -> None:
        """Stop the queries when the window is closed."""
        self.shutdown()
        super().closeEvent(arg__1)

    def showEvent(self, arg__1: QShowEvent, /) -> None:
        """A view closed and shown again reloads its range, ending now."""
        super().showEvent(arg__1)
        if self._closed:
            self.show_range(self._hours)

    @Slot(int, object)
    def _on_result(self, generation: int, result: object) -> None:
        self._workers = [(t, c) for t, c in self._workers if t.is_alive()]
        if generation != self._generation:
            return  # a range no longer selected, or the view was closed
        if isinstance(result, str):
            self.status.setText(result)
            self.load_failed.emit(result)
            return
        if not isinstance(result, TrendData):
            return
        self._data = result
        self._draw(result)
        self.export_button.setEnabled(True)
        self.loaded.emit(result)

    def _draw(self, data: TrendData) -> None:
        band = data.resolution == MINUTE
        for param, curve in self.curves.items():
            # Only the samples (minutes) that have this parameter; gaps come from ``connect``.
            have = np.isfinite(data.mean[param])
            t = data.t[have]
            gap = INTERMITTENT.get(param, GAP_S[data.resolution])
            connect = np.append(np.diff(t) <= gap, False)
            curve.setSymbol("o" if 0 < t.size <= MARKERS_MAX else None)
            curve.setData(t, data.mean[param][have], connect=connect)
            low, high = data.min[param][have], data.max[param][have]
            self.bands[param].setPath(band_path(t, low, high, connect) if band else QPainterPath())
            self.bands[param].setVisible(band)
        for item in self._items:
            item.setXRange(data.start_s, data.end_s, padding=0)
        period = f"last {self._hours} h ({_when(data.start_s)} – {_when(data.end_s)})"
        if self._moment is not None:
            minutes = self._moment_span / 60
            period = f"{minutes:.0f} min around the alarm at {_when(self._moment)}"
            period += f" ({_when(data.start_s)}"
            period += f" – {_when(data.end_s)})"
        if data.is_empty:
            self.status.setText(f"{NO_DATA} ({period}) {SOURCE}.")
            return
        what = "every sample" if not band else "1-minute means, band from min to max"
        self.status.setText(
            f"{period[0].upper()}{period[1:]} · {what} · {data.rows:,} points · {SOURCE}"
            " (it does not depend on the historian)."
        )

    def _report(self, how: str) -> None:
        """A trend print of what the view shows (the same consent rule as the CSV: a period
        of a patient without export consent is not printed)."""
        data, jobs = self._data, self.jobs
        if data is None or jobs is None:
            self.export_status.setText("Nothing to print yet.")
            return
        user = ""
        if self.gate is not None:
            gated = self.gate()
            if gated is None:
                return
            user = gated
        spans = self.excluded(self._bed) if self.excluded is not None else []
        if any(a < data.end_s and b > data.start_s for a, b in spans):
            self.export_status.setText("Not printed: the patient has not consented to export.")
            return
        station, label, limits, moment = self.station, self._label, self.limits_of(), self._moment
        now = self._clock()

        def make() -> Document:
            return trend_document(station, label, data, limits, user, now, moment)

        def done(out: str, where: str) -> None:
            if self.on_report is not None:
                self.on_report(f"trend:{out}", where, (self._bed,), user)

        output = PdfOutput(self, jobs, self.export_status)
        if how == "pdf":
            output.ask_save(make, f"trend-{label.replace(' ', '-').lower()}.pdf", done)
        else:
            output.ask_print(make, done)

    def _cancel_workers(self) -> None:
        for _thread, cancel in self._workers:
            cancel.set()

    def _ask_and_export(self) -> None:
        if self.gate is not None:
            user = self.gate()
            if user is None:
                return  # refused and audited by the action layer, which asks for a login
            self.export_user = user
        safe_bed = re.sub(r"[^A-Za-z0-9_.-]+", "-", self._bed).strip("-") or "bed"
        file_choice.choose_path(
            self,
            "Export trend",
            self.export_on_worker,
            start=f"trend-{safe_bed}-{self._hours}h.csv",
            name_filter="CSV files (*.csv)",
        )
