"""The audit view's filter bar: From and To times, user, bed and action, and what they ask for.

A choice picked or a box ticked re-filters at once; a name being typed or a time being spun
re-filters once after a pause (:data:`FILTER_DELAY_MS`), not per keystroke. Either way the bar
emits :attr:`FilterBar.changed` and the view applies :meth:`FilterBar.current`. The boxes list
names as visible text (:func:`~station.ui.audit.text.visible_text`) but filter on the raw value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QDateTime, QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from station.domain.audit.query import AuditFilter
from station.ui.audit.source import Loaded
from station.ui.audit.text import visible_text

ANY_USER = "Any user"  # not "Anyone": "anyone" is a real actor (an action allowed without login)
ANY_BED = "Any bed"
ANY_ACTION = "Any action"
FILTER_DELAY_MS = 250  # typing a name or spinning a time re-filters once, not per keystroke
DATETIME_FORMAT = "yyyy-MM-dd HH:mm:ss"


def _time_edit(tip: str) -> QDateTimeEdit:
    edit = QDateTimeEdit(QDateTime.currentDateTime())
    edit.setDisplayFormat(DATETIME_FORMAT)
    edit.setCalendarPopup(True)
    edit.setEnabled(False)
    edit.setToolTip(tip)
    return edit


def _combo(editable: bool, any_text: str) -> QComboBox:
    box = QComboBox()
    box.setEditable(editable)
    box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)  # typing filters; it adds no choice
    box.setMinimumContentsLength(12)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.addItem(any_text, "")
    line = box.lineEdit()
    if line is not None:
        line.setPlaceholderText(any_text)
    return box


def _epoch(edit: QDateTimeEdit) -> float:
    return edit.dateTime().toMSecsSinceEpoch() / 1000.0


def _set_epoch(edit: QDateTimeEdit, epoch: float) -> None:
    edit.setDateTime(QDateTime.fromMSecsSinceEpoch(int(epoch * 1000)))


class FilterBar(QObject):
    """The filter bar's widgets, laid out in :attr:`rows`. GUI thread only.

    Signals:
        changed(): the filter asks for other records now; apply :meth:`current`.
    """

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(FILTER_DELAY_MS)
        self.timer.timeout.connect(self.changed)
        self.since_on = QCheckBox("From")
        self.since_edit = _time_edit("Records at or after this local time")
        self.until_on = QCheckBox("To")
        self.until_edit = _time_edit("Records before this local time (not at it)")
        self.user_box = _combo(True, ANY_USER)
        self.bed_box = _combo(True, ANY_BED)
        self.action_box = _combo(False, ANY_ACTION)
        self.clear_button = QPushButton("Clear filters")
        for check, edit in ((self.since_on, self.since_edit), (self.until_on, self.until_edit)):
            check.toggled.connect(edit.setEnabled)
            check.toggled.connect(lambda _on: self.changed.emit())
            edit.dateTimeChanged.connect(lambda _t: self.timer.start())
        for box in (self.user_box, self.bed_box):
            box.editTextChanged.connect(lambda _t: self.timer.start())
            box.activated.connect(lambda _i: self.changed.emit())  # picked: no need to wait
        self.action_box.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.clear_button.clicked.connect(self.clear)
        times = QHBoxLayout()
        for widget in (self.since_on, self.since_edit, self.until_on, self.until_edit):
            times.addWidget(widget)
        times.addStretch(1)
        who = QHBoxLayout()
        for text, box in (("User", self.user_box), ("Bed", self.bed_box)):
            who.addWidget(QLabel(text))
            who.addWidget(box, 1)
        who.addWidget(QLabel("Action"))
        who.addWidget(self.action_box, 1)
        who.addWidget(self.clear_button)
        self.rows = QVBoxLayout()
        self.rows.addLayout(times)
        self.rows.addLayout(who)

    def current(self) -> AuditFilter:
        """What the filter bar asks for now (the To/From times as UTC epoch seconds)."""
        return AuditFilter(
            since=_epoch(self.since_edit) if self.since_on.isChecked() else None,
            until=_epoch(self.until_edit) if self.until_on.isChecked() else None,
            user=self._choice(self.user_box, ANY_USER),
            bed=self._choice(self.bed_box, ANY_BED),
            action=str(self.action_box.currentData() or ""),
        )

    @staticmethod
    def _choice(box: QComboBox, any_text: str) -> str:
        """The raw value chosen (items show escaped text) or the text typed; "" for any."""
        text = box.currentText()
        index = box.currentIndex()
        if index >= 0 and text == box.itemText(index):
            return str(box.itemData(index) or "")
        text = text.strip()
        return "" if text == any_text else text

    def offer(self, loaded: Loaded) -> None:
        """The choices and default times of a new snapshot, keeping what the auditor had
        chosen, typed or ticked; emits nothing."""
        self._fill_choices(loaded)
        self._default_times(loaded)

    def _fill_choices(self, loaded: Loaded) -> None:
        """New choices for the combo boxes, keeping what the auditor had chosen or typed."""
        self._refill(self.user_box, ANY_USER, loaded.users, lambda v: v)
        self._refill(self.bed_box, ANY_BED, loaded.beds, lambda v: v)
        groups = {a.rsplit(".", 1)[0] for a in loaded.actions if "." in a}
        self._refill(
            self.action_box, ANY_ACTION, loaded.actions, lambda a: f"{a}.*" if a in groups else a
        )

    @staticmethod
    def _refill(
        box: QComboBox, any_text: str, values: Iterable[str], label: Callable[[str], str]
    ) -> None:
        chosen, typed = box.currentData(), box.currentText()
        picked = box.currentIndex() >= 0 and typed == box.itemText(box.currentIndex())
        box.blockSignals(True)
        try:
            box.clear()
            box.addItem(any_text, "")
            for value in values:
                box.addItem(visible_text(label(value)), value)
            index = box.findData(chosen) if picked else -1
            if index >= 0:
                box.setCurrentIndex(index)
            elif box.isEditable():
                box.setEditText(typed)
            else:
                box.setCurrentIndex(0)
        finally:
            box.blockSignals(False)

    def _default_times(self, loaded: Loaded) -> None:
        """An unticked bound shows the trail's first / last minute, so ticking it changes
        nothing until the auditor narrows it."""
        pairs = (
            (self.since_on, self.since_edit, loaded.first, 0.0),
            (self.until_on, self.until_edit, loaded.last, 60.0),
        )
        for check, edit, when, pad in pairs:
            if when is None or check.isChecked():
                continue
            edit.blockSignals(True)
            try:
                _set_epoch(edit, when // 60 * 60 + pad)
            finally:
                edit.blockSignals(False)

    def clear(self) -> None:
        """Every filter back to "any"; :attr:`changed` once."""
        widgets = (self.since_on, self.until_on, self.user_box, self.bed_box, self.action_box)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.since_on.setChecked(False)
            self.until_on.setChecked(False)
            for box in (self.user_box, self.bed_box, self.action_box):
                box.setCurrentIndex(0)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.since_edit.setEnabled(False)
        self.until_edit.setEnabled(False)
        self.changed.emit()
