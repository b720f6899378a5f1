"""The end-of-shift report: per bed, who, the limits in force, the vitals over the shift, its alarms
(with who acknowledged them and how fast), and its trend, as a PDF for the handover.

Why a report and not the screen: at handover the next nurse reads a bed's shift in a minute, on
paper or on the ward's PC, and the record keeps it. The GUI thread gathers what only it holds
(the tiles' patient text as consent allows, the limits in force, the alarm history) into a
:class:`ShiftReport`; this module, on a worker thread, reads the trend store, draws the plots and
renders the PDF (:func:`~station.services.printing.pdf.html_pdf`).

A patient who has not consented to export is left out of the file (name, vitals and alarms) for
any period overlapping their stay, and the report says so: a PDF leaves the station.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PySide6.QtGui import QImage

from station.domain.alarm_history import AlarmEpisode
from station.domain.alarms import AlarmKind, Priority
from station.domain.bed_limits import BedLimits, range_text
from station.services.printing.pdf import escape, headless_gui, html_pdf
from station.services.printing.trend_plot import trend_image
from station.services.storage.trends import RAW, TrendData, TrendStore

VITALS = (
    ("Heart rate", "bpm", "heartrate", 0),
    ("SpO2", "%", "oxygen", 0),
    ("Systolic", "mmHg", "systolic", 0),
    ("Diastolic", "mmHg", "diastolic", 0),
    ("Temperature", "°C", "temperature", 1),
)
ALARMS_LISTED = 60
ALARM_REPORT_LISTED = 2_000
"""Alarms an alarm report lists one by one (about 50 pages); its counts cover them all."""
EVENTS_PRINTED = 6
"""High alarms per bed printed with their event plot (full resolution ± ``capture_s``)."""
"""Alarms listed one by one per bed; beyond, the counts still cover them all."""


@dataclass(frozen=True, slots=True)
class BedSheet:
    """What the screen knows of one bed, handed to the worker (immutable: it crosses threads).

    ``patient``: as the tile shows it (a name only with display consent); ``state``: the tile's
    standby or suspension text, if any; ``excluded``: times whose data may not leave the station
    (no export consent)."""

    bed: str
    patient: str
    device: str
    state: str
    limits: BedLimits
    episodes: tuple[AlarmEpisode, ...]
    excluded: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ShiftReport:
    """One report: the station, the period (UTC seconds), who printed it and when, the beds."""

    station: str
    start_s: float
    end_s: float
    printed_by: str
    printed_at: float
    beds: tuple[BedSheet, ...]
    capture_s: float = 300.0
    """The event capture's half-width: each high alarm's plot spans ± this."""

    @property
    def title(self) -> str:
        scope = self.beds[0].bed if len(self.beds) == 1 else f"{len(self.beds)} beds"
        return f"Shift report · {self.station} · {scope}"


def _clock(ts: float | None, day: bool = False) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts).strftime("%d %b %Y %H:%M" if day else "%H:%M")


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _overlaps(sheet: BedSheet, start: float, end: float) -> bool:
    return any(since <= end and until >= start for since, until in sheet.excluded)


def _vitals_rows(data: TrendData | None, sheet: BedSheet) -> str:
    rows = []
    for name, unit, param, digits in VITALS:
        cells = ["—", "—", "—"]
        if data is not None and not data.is_empty:
            low, mean, high = data.min[param], data.mean[param], data.max[param]
            counts = data.count[param]
            if counts.sum() > 0:
                weighted = float(np.nansum(mean * counts) / counts.sum())
                cells = [
                    f"{float(np.nanmin(low)):.{digits}f}",
                    f"{weighted:.{digits}f}",
                    f"{float(np.nanmax(high)):.{digits}f}",
                ]
        limits = range_text(sheet.limits.limits, param) if sheet.limits.limits else "—"
        rows.append(
            f"<tr><td>{name} ({unit})</td><td align='right'>{cells[0]}</td>"
            f"<td align='right'>{cells[1]}</td><td align='right'>{cells[2]}</td>"
            f"<td>{limits}</td></tr>"
        )
    head = "<tr><th align='left'>Vital sign</th><th>Lowest</th><th>Mean</th><th>Highest</th>"
    head += "<th align='left'>Alarm limits</th></tr>"
    return f"<table cellspacing='0' cellpadding='3' border='1'>{head}{''.join(rows)}</table>"


def _alarm_rows(
    episodes: tuple[AlarmEpisode, ...], with_bed: bool = False, listed: int = ALARMS_LISTED
) -> str:
    if not episodes:
        return "<p>No alarms in this period.</p>"
    by_priority: dict[str, int] = {}
    for e in episodes:
        by_priority[e.priority.value] = by_priority.get(e.priority.value, 0) + 1
    acked = [e.time_to_ack_s for e in episodes if e.time_to_ack_s is not None]
    median = _span(float(np.median(acked))) if acked else "—"
    counts = ", ".join(f"{n} {p}" for p, n in sorted(by_priority.items()))
    parts = [f"<p>{len(episodes)} alarms ({counts}); median time to acknowledge {median}.</p>"]
    bed_head = "<th align='left'>Bed</th>" if with_bed else ""
    head = (
        f"<tr><th align='left'>Raised</th>{bed_head}<th align='left'>Priority</th>"
        "<th align='left'>Alarm</th><th align='left'>Acknowledged by</th>"
        "<th>After</th><th>Lasted</th><th align='left'>Comments</th></tr>"
    )
    rows = [
        f"<tr><td>{_clock(e.raised_at, day=with_bed)}</td>"
        + (f"<td>{escape(e.bed or 'station')}</td>" if with_bed else "")
        + f"<td>{e.priority.mark} {e.priority.value}</td>"
        f"<td>{escape(e.message)}</td><td>{escape(e.acknowledged_by or '—')}</td>"
        f"<td align='right'>{_span(e.time_to_ack_s)}</td>"
        f"<td align='right'>{_span(e.duration_s)}</td><td>{escape(e.comment_text)}</td></tr>"
        for e in episodes[:listed]
    ]
    parts.append(f"<table cellspacing='0' cellpadding='3' border='1'>{head}{''.join(rows)}</table>")
    if len(episodes) > listed:
        parts.append(f"<p>… and {len(episodes) - listed} more (see the alarm history).</p>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Document:
    """A report ready to paint: its title, its HTML and the images the HTML names."""

    title: str
    html: str
    images: dict[str, QImage]


def _events(
    sheet: BedSheet,
    report: ShiftReport,
    trends: TrendStore,
    images: dict[str, QImage],
    number: int,
) -> str:
    """The bed's high physiological alarms, each with its event plot: every sample of the
    ± ``capture_s`` around it (an event capture, or the raw samples while still kept)."""
    high = [
        e
        for e in sheet.episodes
        if e.priority is Priority.HIGH and e.kind is AlarmKind.PHYSIOLOGICAL
    ][:EVENTS_PRINTED]
    parts = []
    for index, episode in enumerate(high):
        at, span = episode.raised_at, report.capture_s
        data = trends.query(sheet.bed, at - span, at + span)
        if data.is_empty:
            continue
        name = f"event-{number}-{index}.png"
        images[name] = trend_image(data, sheet.limits.limits, [at])
        what = "every sample" if data.resolution == RAW else "1-minute means (not captured)"
        parts.append(
            f"<p><b>Event {_clock(at)}</b> · {escape(episode.message)} · {what} "
            f"± {span / 60:.0f} min<br><img src='{name}' width='560'></p>"
        )
    return f"<h3>Events</h3>{''.join(parts)}" if parts else ""


def render_shift_report(report: ShiftReport, trends: TrendStore | None) -> bytes:
    """The report as PDF bytes. Blocking (trend queries, layout): a worker thread.

    Raises:
        sqlite3.Error: the trend store cannot be read.
        RuntimeError: no Qt application exists and this is not the main thread.
    """
    doc = shift_report_document(report, trends)
    return html_pdf(doc.title, doc.html, author=report.printed_by, images=doc.images)


def shift_report_document(report: ShiftReport, trends: TrendStore | None) -> Document:
    """The report laid out as HTML with its trend plots, for a PDF or a printer. Blocking:
    a worker thread (see :func:`render_shift_report`)."""
    headless_gui()  # the plots' fonts need it before the PDF does
    images: dict[str, QImage] = {}
    sections = []
    for number, sheet in enumerate(report.beds):
        title = f"<h2>{escape(sheet.bed)}</h2>"
        if _overlaps(sheet, report.start_s, report.end_s):
            sections.append(
                f"{title}<p><i>Left out of this report: the patient in this bed has not "
                "consented to export.</i></p>"
            )
            continue
        who = escape(sheet.patient) if sheet.patient else "no patient admitted"
        facts = [f"Patient: {who}", f"Device: {escape(sheet.device or 'none')}"]
        facts.append(f"Alarm limits: {escape(sheet.limits.source)}")
        if sheet.state:
            facts.append(escape(sheet.state))
        data = None
        if trends is not None:
            data = trends.query(sheet.bed, report.start_s, report.end_s)
        parts = [title, f"<p>{' · '.join(facts)}</p>", _vitals_rows(data, sheet)]
        if data is not None and not data.is_empty:
            name = f"trend-{number}.png"
            marks = [e.raised_at for e in sheet.episodes if math.isfinite(e.raised_at)]
            images[name] = trend_image(data, sheet.limits.limits, marks)
            parts.append(f"<p><img src='{name}' width='640'></p>")
        else:
            parts.append("<p>No vital signs stored for this period.</p>")
        parts.append("<h3>Alarms</h3>")
        parts.append(_alarm_rows(sheet.episodes))
        if trends is not None:
            parts.append(_events(sheet, report, trends, images, number))
        sections.append("".join(parts))
    header = (
        f"<h1>{escape(report.title)}</h1>"
        f"<p>Shift {_clock(report.start_s, day=True)} – {_clock(report.end_s, day=True)}<br>"
        f"Printed by {escape(report.printed_by)} at {_clock(report.printed_at, day=True)}</p>"
    )
    return Document(report.title, header + "<hr>".join(sections), images)


def alarm_report_document(
    station: str,
    scope: str,
    since: float,
    until: float,
    episodes: list[AlarmEpisode],
    printed_by: str,
    printed_at: float,
) -> Document:
    """The alarm report: the alarms of a period (a bed or the ward) as the history shows them,
    with who acknowledged them, after how long, and the comments. Pure layout (no I/O)."""
    title = f"Alarm report · {station} · {scope}"
    oldest_first = tuple(sorted(episodes, key=lambda e: e.raised_at))
    html = (
        f"<h1>{escape(title)}</h1>"
        f"<p>{_clock(since, day=True)} – {_clock(until, day=True)}<br>"
        f"Printed by {escape(printed_by)} at {_clock(printed_at, day=True)}</p>"
        + _alarm_rows(oldest_first, with_bed=True, listed=ALARM_REPORT_LISTED)
    )
    return Document(title, html, {})


def trend_document(
    station: str,
    bed: str,
    data: TrendData,
    limits: BedLimits,
    printed_by: str,
    printed_at: float,
    moment: float | None = None,
) -> Document:
    """A trend print: the bed's curves over what the trend view shows, its limits dashed, the
    moment of an alarm marked. Blocking only for the plot (any thread with a Qt application)."""
    headless_gui()
    title = f"Trend · {station} · {bed}"
    what = "every sample" if data.resolution == RAW else "1-minute means (min–max bars)"
    html = (
        f"<h1>{escape(title)}</h1>"
        f"<p>{_clock(data.start_s, day=True)} – {_clock(data.end_s, day=True)} · {what} · "
        f"alarm limits {escape(limits.source)}<br>"
        f"Printed by {escape(printed_by)} at {_clock(printed_at, day=True)}</p>"
    )
    if data.is_empty:
        return Document(title, html + "<p>No vital signs stored for this period.</p>", {})
    image = trend_image(data, limits.limits, [moment] if moment is not None else [])
    return Document(title, html + "<p><img src='trend.png' width='640'></p>", {"trend.png": image})
