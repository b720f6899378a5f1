"""The admin's quarantine view: the rejected messages the station kept, by reason and by device.

What came and was refused — a forged sender, a misconfigured sensor, a device nobody onboarded —
never reaches a plot or an alarm, so this view is where an admin sees it: how many messages each
reason and each claimed device account for (top), and the newest messages themselves (time,
reason, the device the message claimed, topic, why, a short excerpt), filtered by reason and by
device. It reads the :class:`~station.services.storage.quarantine_store.QuarantineStore`, which
keeps the newest rejections across restarts.

Everything here came from whoever could publish to the broker: it is shown as plain text only
(table and combo-box items are; every label is set to ``PlainText``), never as rich text, and
never in a tooltip (Qt guesses a tooltip's format from its text).

Threads: the dialog lives on the GUI thread and never touches SQLite. Each refresh is a job on
the ``quarantine-query`` worker (:class:`~station.services.jobs.Jobs`), which reads on its own
read-only connection and hands back an immutable :class:`QuarantinePage`; a refresh asked for
while one runs is done once that one answers, and the stale answer is not shown. Opened, not
modal, only through :class:`~station.ui.admin_dialogs.AdminDialogs` (admin role), which puts the
ward's alarm strip at its top and closes it when the session ends.

Signals:
    loaded(QuarantinePage): the tables show a new answer.
    load_failed(str): the store could not be read; the reason is also said in the dialog.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.messages import Rejection
from station.domain.timefmt import local_text
from station.services.jobs import Jobs
from station.services.storage.quarantine_store import (
    NO_DEVICE,
    QUERY_LIMIT,
    QuarantineCounts,
    QuarantineStore,
)
from station.ui import theme
from station.ui.plain_table import fill_plain, plain_table

log = logging.getLogger(__name__)

THREAD_NAME = "quarantine-query"
ANY = "(any)"
NONE_NAMED = "(none named)"
"""How a message that named no device is listed."""
COLUMNS = ["Time", "Reason", "Device claimed", "Topic", "Detail", "Excerpt"]


@dataclass(frozen=True, slots=True)
class QuarantinePage:
    """One answer of the store: the counts and the newest rows for the filters asked."""

    counts: QuarantineCounts
    rows: tuple[Rejection, ...]
    reason: str | None
    device: str | None


def _load(
    store: QuarantineStore, reason: str | None, device: str | None, limit: int
) -> QuarantinePage:
    """Body of a ``quarantine-query`` job (worker thread)."""
    return QuarantinePage(store.counts(), store.query(reason, device, limit), reason, device)


def _device_text(device: str) -> str:
    return device if device != NO_DEVICE else NONE_NAMED


def _plain(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


class QuarantineDialog(QDialog):
    """See the module docstring. GUI thread only.

    Args:
        store: the station's quarantine store; only queried, on ``jobs``' worker.
        jobs: the worker the queries run on (the admin-dialog controller's).
        parent: the owning window.
        limit: rows shown at most (the newest).
    """

    loaded = Signal(object)
    load_failed = Signal(str)

    def __init__(
        self,
        store: QuarantineStore,
        jobs: Jobs,
        parent: QWidget | None = None,
        limit: int = QUERY_LIMIT,
    ) -> None:
        super().__init__(parent)
        self._store, self._jobs, self._limit = store, jobs, limit
        self._busy = False
        self._again = False
        self.page: QuarantinePage | None = None
        self.setWindowTitle("Quarantine: rejected messages")
        self.resize(980, 620)
        self.summary = _plain("Reading the quarantine…")
        self.reasons = plain_table(["Reason", "Messages"])
        self.devices = plain_table(["Device claimed", "Messages"])
        self.reason_filter = QComboBox()
        self.device_filter = QComboBox()
        for combo in (self.reason_filter, self.device_filter):
            combo.addItem(ANY, None)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.currentIndexChanged.connect(lambda _index: self.refresh())
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(lambda _checked: self.refresh())
        self.table = plain_table(COLUMNS)
        self.message = _plain()
        counts = QHBoxLayout()
        counts.addWidget(self.reasons, 1)
        counts.addWidget(self.devices, 2)
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Reason"))
        filters.addWidget(self.reason_filter)
        filters.addWidget(QLabel("Device"))
        filters.addWidget(self.device_filter)
        filters.addStretch(1)
        filters.addWidget(self.refresh_button)
        lay = QVBoxLayout(self)  # a box layout: the ward's alarm strip goes on top
        lay.addWidget(self.summary)
        lay.addLayout(counts, 1)
        lay.addLayout(filters)
        lay.addWidget(self.table, 3)
        lay.addWidget(self.message)
        self.reasons.cellClicked.connect(lambda row, _col: self._pick(self.reason_filter, row))
        self.devices.cellClicked.connect(lambda row, _col: self._pick(self.device_filter, row))
        self.refresh()

    @property
    def busy(self) -> bool:
        """A query is on the worker."""
        return self._busy

    def filters(self) -> tuple[str | None, str | None]:
        """``(reason, device)`` chosen; None: any (device ``""``: messages that named none)."""
        return self.reason_filter.currentData(), self.device_filter.currentData()

    def set_filters(self, reason: str | None, device: str | None) -> None:
        """Choose the filters (the combo boxes follow) and refresh once."""
        for combo, value in ((self.reason_filter, reason), (self.device_filter, device)):
            combo.blockSignals(True)
            _choose(combo, value, ANY if value is None else _device_text(value))
            combo.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        """Ask the store again for the counts and the newest rows of the filters chosen."""
        if self._busy:
            self._again = True  # after the answer on its way, which is then not shown
            return
        self._busy, self._again = True, False
        reason, device = self.filters()
        store, limit = self._store, self._limit
        self._jobs.submit(
            lambda: _load(store, reason, device, limit), self._show, self._failed, context=self
        )

    # -- answers (GUI thread) ----------------------------------------------------------

    def _show(self, page: QuarantinePage) -> None:
        self._busy = False
        if self._again or (page.reason, page.device) != self.filters():
            self.refresh()  # the filters changed meanwhile: this answer is for the old ones
            return
        self.page = page
        counts = page.counts
        fill_plain(self.reasons, [[r, str(n)] for r, n in counts.by_reason])
        fill_plain(self.devices, [[_device_text(d), str(n)] for d, n in counts.by_device])
        self._offer(self.reason_filter, [(r, r) for r, _ in counts.by_reason])
        self._offer(self.device_filter, [(d, _device_text(d)) for d, _ in counts.by_device])
        fill_plain(self.table, [_cells(rej) for rej in page.rows])
        which = "" if page.reason is None and page.device is None else " of those filtered"
        self.summary.setText(
            f"{counts.kept} rejected messages kept across restarts (the newest "
            f"{self._store.max_rows} at most, the oldest dropped first). Showing the newest "
            f"{len(page.rows)}{which}."
        )
        self._say("", ok=True)
        self.loaded.emit(page)

    def _failed(self, exc: Exception) -> None:
        self._busy = False
        text = f"Could not read the quarantine: {exc}"
        log.warning("%s", text)
        self._say(text, ok=False)
        self.load_failed.emit(text)
        if self._again:
            self.refresh()

    def _say(self, text: str, ok: bool) -> None:
        self.message.setStyleSheet(f"color:{theme.OK if ok else theme.BAD}; font-weight:700;")
        self.message.setText(text)

    def _offer(self, combo: QComboBox, choices: list[tuple[str, str]]) -> None:
        """Refill a filter with what the counts name, keeping the current choice."""
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(ANY, None)
        for value, text in choices:
            combo.addItem(text, value)
        if current is not None:
            label = _device_text(current) if combo is self.device_filter else current
            _choose(combo, current, label)
        combo.blockSignals(False)

    def _pick(self, combo: QComboBox, row: int) -> None:
        """A click on a count row filters by it (index + 1: the first entry is "any")."""
        if 0 <= row < combo.count() - 1:
            combo.setCurrentIndex(row + 1)


def _choose(combo: QComboBox, value: str | None, label: str) -> None:
    """Select ``value`` in ``combo``, adding it (as ``label``) if the list lacks it."""
    index = combo.findData(value) if value is not None else 0
    if index < 0:
        combo.addItem(label, value)
        index = combo.count() - 1
    combo.setCurrentIndex(index)


def _cells(rej: Rejection) -> list[str]:
    return [
        local_text(rej.received_at, seconds=True),
        rej.reason,
        rej.device_id or NONE_NAMED,
        rej.topic,
        rej.detail,
        rej.excerpt,
    ]
