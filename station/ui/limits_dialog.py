"""The per-bed alarm limits dialog: start from a profile, adjust, validate, accept.

Changing a bed's limits is a clinical decision that the audit trail records as "old → new", so
the dialog hands back :class:`AlarmLimits` validated by the same pydantic model the alarm engine
runs on, never a raw number. A row that the model refuses shows the reason beside it in red and
keeps OK disabled, so an impossible set (low ≥ high) can never be accepted.

The dialog writes no file and talks to no one: the caller applies the limits, through the core,
and writes the audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.alarms import LABELS, AlarmLimits, Priority
from station.ui import theme

OFF = "off"
CUSTOM = "custom"

# Spin box range, decimals and unit per parameter: wide enough for any sane limit (a value from
# the config outside it widens the box rather than being clamped silently).
SPIN_RANGES: Mapping[str, tuple[float, float, int, str]] = {
    "heartrate": (0.0, 300.0, 0, "bpm"),
    "oxygen": (0.0, 100.0, 0, "%"),
    "systolic": (0.0, 300.0, 0, "mmHg"),
    "diastolic": (0.0, 300.0, 0, "mmHg"),
    "temperature": (25.0, 45.0, 1, "°C"),
}
MAX_DELAY_S = 120.0  # the model's own bound on delay_s


@dataclass(frozen=True, slots=True)
class LimitRow:
    """The widgets of one parameter's row."""

    low: QDoubleSpinBox
    high: QDoubleSpinBox
    priority: QComboBox
    delay: QDoubleSpinBox
    error: QLabel


def _limit_spin(parameter: str) -> QDoubleSpinBox:
    low, high, decimals, unit = SPIN_RANGES.get(parameter, (-1e6, 1e6, 1, ""))
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    step = 10.0**-decimals
    spin.setSingleStep(step)
    # One step below the range is "off" (None): the special value text shows at the minimum.
    spin.setRange(low - step, high)
    spin.setSpecialValueText(OFF)
    spin.setSuffix(f" {unit}" if unit else "")
    return spin


def _spin_value(spin: QDoubleSpinBox) -> float | None:
    return None if spin.value() <= spin.minimum() else spin.value()


def _set_spin(spin: QDoubleSpinBox, value: float | None) -> None:
    if value is None:
        spin.setValue(spin.minimum())
        return
    while spin.decimals() < 3 and round(value, spin.decimals()) != value:
        spin.setDecimals(spin.decimals() + 1)  # never round a configured limit away
    step = spin.singleStep()
    if value > spin.maximum():
        spin.setMaximum(value)
    if value - step < spin.minimum():
        spin.setMinimum(value - step)
    spin.setValue(value)


def _message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    text = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {text}" if where else text


class LimitsDialog(QDialog):
    """Alarm limits of one bed, from a profile or edited. GUI thread only.

    Args:
        bed: the bed's label, shown in the title and carried by the signal.
        current: the bed's limits now, per parameter; the form starts from them ("custom").
        profiles: names offered in the profile box.
        loader: reads a profile by name (``load_profile``); a ``ValueError`` it raises is shown.
        parent: the owning widget.

    Signals:
        limits_accepted(str, object, object): on OK, the bed, ``dict[str, AlarmLimits]`` and the
            profile name, or None when the limits are custom (edited after choosing a profile).
    """

    limits_accepted = Signal(str, object, object)

    def __init__(
        self,
        bed: str,
        current: Mapping[str, AlarmLimits],
        profiles: Sequence[str],
        loader: Callable[[str], Mapping[str, AlarmLimits]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Alarm limits — {bed}")
        self._bed = bed
        self._loader = loader
        # The fields the form does not show (hysteresis, latching) come unchanged from the bed's
        # limits or the chosen profile, so opening and accepting the dialog never resets them.
        self._base = {p: limits.model_dump() for p, limits in current.items()}
        self._valid: dict[str, AlarmLimits] = {}
        self._profile_limits: dict[str, AlarmLimits] | None = None
        self._filling = False

        self.profile_combo = QComboBox()
        self.profile_combo.addItem(CUSTOM, None)
        for name in profiles:
            self.profile_combo.addItem(name, name)
        self.notice = QLabel("")
        self.notice.setStyleSheet(f"color: {theme.BAD};")
        top = QHBoxLayout()
        top.addWidget(QLabel("Profile"))
        top.addWidget(self.profile_combo, 1)

        grid = QGridLayout()
        for column, title in enumerate(("", "Low", "High", "Priority", "Delay", "")):
            grid.addWidget(QLabel(title), 0, column)
        self.rows: dict[str, LimitRow] = {}
        for line, parameter in enumerate(self._base, start=1):
            self.rows[parameter] = self._add_row(grid, line, parameter)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.notice)
        layout.addLayout(grid)
        layout.addWidget(self.buttons)

        self.profile_combo.currentIndexChanged.connect(self._on_profile)
        self._fill(current)

    @property
    def ok_button(self) -> QPushButton:
        """The OK button; disabled while any row is invalid."""
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def limits(self) -> dict[str, AlarmLimits]:
        """The validated limits per parameter.

        Raises:
            ValueError: a row is invalid (OK is disabled then, so only a caller that skips the
                dialog's own checks sees this).
        """
        invalid = [p for p in self.rows if p not in self._valid]
        if invalid:
            raise ValueError(f"invalid limits: {', '.join(invalid)}")
        return dict(self._valid)

    def profile_name(self) -> str | None:
        """The profile the limits are exactly from, or None for custom limits."""
        name = self.profile_combo.currentData()
        return name if isinstance(name, str) else None

    def accept(self) -> None:
        """Emit ``limits_accepted`` and close, only when every row is valid."""
        if len(self._valid) != len(self.rows):
            return
        self.limits_accepted.emit(self._bed, self.limits(), self.profile_name())
        super().accept()

    def _add_row(self, grid: QGridLayout, line: int, parameter: str) -> LimitRow:
        priority = QComboBox()
        for level in Priority:
            priority.addItem(f"{level.mark} {level.value}", level.value)
        delay = QDoubleSpinBox()
        delay.setRange(0.0, MAX_DELAY_S)
        delay.setDecimals(0)
        delay.setSuffix(" s")
        delay.setToolTip("The condition must last this long before the alarm is raised")
        error = QLabel("")
        error.setStyleSheet(f"color: {theme.BAD};")
        row = LimitRow(_limit_spin(parameter), _limit_spin(parameter), priority, delay, error)
        grid.addWidget(QLabel(LABELS.get(parameter, parameter)), line, 0)
        for column, widget in enumerate((row.low, row.high, priority, delay, error), start=1):
            grid.addWidget(widget, line, column)
        for spin in (row.low, row.high, delay):
            spin.valueChanged.connect(self._on_edited)
        priority.currentIndexChanged.connect(self._on_edited)
        return row

    def _fill(self, limits: Mapping[str, AlarmLimits]) -> None:
        self._filling = True
        try:
            for parameter, row in self.rows.items():
                values = limits.get(parameter)
                if values is None:
                    continue
                self._base[parameter] = values.model_dump()
                _set_spin(row.low, values.low)
                _set_spin(row.high, values.high)
                row.priority.setCurrentIndex(row.priority.findData(values.priority.value))
                row.delay.setValue(values.delay_s)
        finally:
            self._filling = False
        self._validate()

    def _on_profile(self, index: int) -> None:
        name = self.profile_combo.itemData(index)
        self.notice.setText("")
        if not isinstance(name, str):
            self._profile_limits = None  # custom: keep the form as it is
            return
        try:
            loaded = dict(self._loader(name))
            missing = [p for p in self.rows if p not in loaded]
            if missing:
                raise ValueError(f"profile {name!r} has no {', '.join(missing)}")
        except ValueError as exc:
            self.notice.setText(str(exc))
            self._select_custom()
            return
        self._profile_limits = loaded
        self._fill(loaded)

    def _on_edited(self) -> None:
        if self._filling:
            return
        self._validate()
        # An edited profile is no longer that profile: the audit must not say "neonatal" for
        # limits a nurse changed afterwards.
        if self._profile_limits is not None and self._valid != {
            p: self._profile_limits[p] for p in self.rows
        }:
            self._select_custom()

    def _select_custom(self) -> None:
        self._profile_limits = None
        blocked = self.profile_combo.blockSignals(True)
        self.profile_combo.setCurrentIndex(0)
        self.profile_combo.blockSignals(blocked)

    def _validate(self) -> None:
        self._valid.clear()
        for parameter, row in self.rows.items():
            values = dict(self._base[parameter])
            values.update(
                low=_spin_value(row.low),
                high=_spin_value(row.high),
                priority=row.priority.currentData(),
                delay_s=row.delay.value(),
            )
            try:
                limits = AlarmLimits.model_validate(values)
            except ValidationError as exc:
                row.error.setStyleSheet(f"color: {theme.BAD};")
                row.error.setText(_message(exc))
                continue
            self._valid[parameter] = limits
            if limits.low is None and limits.high is None:
                # Allowed, but never silent: both limits off means this parameter cannot alarm.
                row.error.setStyleSheet(f"color: {theme.WARN};")
                row.error.setText("alarm off")
            else:
                row.error.setText("")
        self.ok_button.setEnabled(len(self._valid) == len(self.rows))
