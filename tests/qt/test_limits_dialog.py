"""pytest-qt tests of the per-bed limits dialog: profiles fill the form, bad rows block OK.

The dialog is driven through its widgets the way a nurse drives it, with the real profile
loader and the shipped profiles, and what it emits is checked as AlarmLimits values.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from station.config.settings import AlarmsSection
from station.domain.alarms import AlarmLimits, Priority
from station.domain.profiles import available_profiles, load_profile
from station.ui.limits_dialog import CUSTOM, OFF, LimitsDialog


@pytest.fixture
def current() -> dict[str, AlarmLimits]:
    limits = AlarmsSection().limits()
    # A non-default field the form does not show, to prove accepting keeps it.
    limits["heartrate"] = limits["heartrate"].model_copy(update={"hysteresis": 4.0})
    return limits


@pytest.fixture
def dialog(qtbot: QtBot, current: dict[str, AlarmLimits]) -> LimitsDialog:
    dlg = LimitsDialog("Bed 3", current, available_profiles(), load_profile)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def choose_profile(dialog: LimitsDialog, name: str) -> None:
    dialog.profile_combo.setCurrentIndex(dialog.profile_combo.findText(name))


def test_starts_custom_from_the_beds_limits(dialog: LimitsDialog) -> None:
    assert dialog.profile_combo.currentText() == CUSTOM
    assert dialog.profile_name() is None
    assert dialog.rows["heartrate"].low.value() == 50
    assert dialog.rows["heartrate"].high.value() == 120
    assert dialog.rows["temperature"].low.value() == pytest.approx(35.5)
    assert dialog.ok_button.isEnabled()
    assert dialog.windowTitle().endswith("Bed 3")


def test_choosing_a_profile_fills_the_spin_boxes(dialog: LimitsDialog) -> None:
    choose_profile(dialog, "neonatal")
    neonatal = load_profile("neonatal")
    for parameter, row in dialog.rows.items():
        assert row.low.value() == pytest.approx(neonatal[parameter].low), parameter
        assert row.high.value() == pytest.approx(neonatal[parameter].high), parameter
        assert row.priority.currentData() == neonatal[parameter].priority.value, parameter
        assert row.delay.value() == neonatal[parameter].delay_s, parameter
    assert dialog.rows["oxygen"].high.value() == 95
    assert dialog.profile_name() == "neonatal"
    assert dialog.limits() == neonatal  # hysteresis and latching come from the profile too


def test_priority_combo_shows_the_marks(dialog: LimitsDialog) -> None:
    combo = dialog.rows["heartrate"].priority
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts == ["*** high", "** medium", "* low"]
    assert combo.currentData() == Priority.HIGH.value


def test_low_not_below_high_shows_error_at_that_row_and_disables_ok(
    dialog: LimitsDialog,
) -> None:
    row = dialog.rows["systolic"]
    row.low.setValue(170)
    assert "must be below" in row.error.text()
    assert not row.error.isHidden()
    assert not dialog.ok_button.isEnabled()
    for parameter, other in dialog.rows.items():
        if parameter != "systolic":
            assert other.error.text() == "", parameter
    with pytest.raises(ValueError, match="systolic"):
        dialog.limits()

    row.low.setValue(90)
    assert row.error.text() == ""
    assert dialog.ok_button.isEnabled()


def test_ok_emits_limits_accepted_with_alarm_limits(
    qtbot: QtBot, dialog: LimitsDialog, current: Mapping[str, AlarmLimits]
) -> None:
    dialog.rows["heartrate"].high.setValue(130)
    dialog.rows["heartrate"].delay.setValue(3)
    dialog.rows["temperature"].priority.setCurrentIndex(1)
    with qtbot.waitSignal(dialog.limits_accepted, timeout=1000) as blocker:
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    bed, limits, profile = blocker.args
    assert bed == "Bed 3"
    assert profile is None
    assert set(limits) == set(AlarmLimits.PARAMETERS)
    assert all(isinstance(v, AlarmLimits) for v in limits.values())
    assert limits["heartrate"] == current["heartrate"].model_copy(
        update={"high": 130.0, "delay_s": 3.0}
    )
    assert limits["heartrate"].hysteresis == 4.0  # not shown in the form, kept as it was
    assert limits["temperature"].priority is Priority.MEDIUM
    assert limits["oxygen"] == current["oxygen"]
    assert dialog.result() == LimitsDialog.DialogCode.Accepted


def test_ok_after_a_profile_reports_the_profile(qtbot: QtBot, dialog: LimitsDialog) -> None:
    choose_profile(dialog, "paediatric")
    with qtbot.waitSignal(dialog.limits_accepted, timeout=1000) as blocker:
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert blocker.args[1] == load_profile("paediatric")
    assert blocker.args[2] == "paediatric"


def test_editing_a_profile_makes_it_custom(dialog: LimitsDialog) -> None:
    choose_profile(dialog, "adult")
    assert dialog.profile_name() == "adult"
    dialog.rows["heartrate"].high.setValue(125)
    assert dialog.profile_combo.currentText() == CUSTOM
    assert dialog.profile_name() is None
    assert dialog.rows["heartrate"].high.value() == 125  # the edit is kept, not reloaded


def test_off_maps_to_none(dialog: LimitsDialog) -> None:
    spin = dialog.rows["oxygen"].high
    spin.setValue(spin.minimum())
    assert spin.text() == OFF
    limits = dialog.limits()
    assert limits["oxygen"].high is None
    assert limits["oxygen"].low == 90
    assert dialog.ok_button.isEnabled()


def test_both_limits_off_is_allowed_but_shown(dialog: LimitsDialog) -> None:
    row = dialog.rows["temperature"]
    row.low.setValue(row.low.minimum())
    row.high.setValue(row.high.minimum())
    assert row.error.text() == "alarm off"
    assert dialog.limits()["temperature"].low is None
    assert dialog.limits()["temperature"].high is None


def test_a_failing_loader_is_shown_and_stays_custom(
    qtbot: QtBot, current: dict[str, AlarmLimits]
) -> None:
    def loader(name: str) -> Mapping[str, AlarmLimits]:
        raise ValueError(f"{name}.toml: unknown key heartrate.hihg")

    dlg = LimitsDialog("Bed 1", current, ["broken"], loader)
    qtbot.addWidget(dlg)
    choose_profile(dlg, "broken")
    assert "heartrate.hihg" in dlg.notice.text()
    assert dlg.profile_name() is None
    assert dlg.limits() == current


def test_cancel_emits_nothing(qtbot: QtBot, dialog: LimitsDialog) -> None:
    with qtbot.assertNotEmitted(dialog.limits_accepted):
        dialog.reject()
    assert dialog.result() == LimitsDialog.DialogCode.Rejected


def test_a_limit_outside_the_box_range_is_not_clamped(
    qtbot: QtBot, current: dict[str, AlarmLimits]
) -> None:
    current["heartrate"] = AlarmLimits.model_validate({"low": 40, "high": 320, "priority": "high"})
    current["temperature"] = AlarmLimits.model_validate({"low": 35.25, "high": 38.5})
    dlg = LimitsDialog("Bed 2", current, [], load_profile)
    qtbot.addWidget(dlg)
    assert dlg.limits()["heartrate"].high == 320
    assert dlg.limits()["temperature"].low == 35.25
