"""Alarm profiles: the shipped files load and are clinically sane; bad files name file and key.

The shipped files are tested as they are, because a profile is what a nurse applies to a real
patient: a neonatal SpO2 high above 95 % would let hyperoxia go unnoticed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from station.domain.alarms import AlarmLimits, Priority
from station.domain.profiles import (
    PROFILE_DIR,
    ProfileError,
    available_profiles,
    describe_change,
    load_profile,
)

SHIPPED = ("adult", "neonatal", "paediatric")

GOOD = """
[heartrate]
low = 50
high = 120
priority = "high"
delay_s = 5
hysteresis = 2
latching = false

[oxygen]
low = 90
high = 100
priority = "high"

[systolic]
low = 90
high = 160
priority = "medium"

[diastolic]
low = 50
high = 100
priority = "medium"

[temperature]
low = 35.5
high = 38.5
priority = "low"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_profiles_are_the_three_patient_groups() -> None:
    assert available_profiles() == list(SHIPPED)
    assert PROFILE_DIR.is_dir()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads_with_ordered_limits(name: str) -> None:
    limits = load_profile(name)
    assert list(limits) == list(AlarmLimits.PARAMETERS)
    for parameter, values in limits.items():
        assert values.low is not None, parameter
        assert values.high is not None, parameter
        assert values.low < values.high, parameter
        assert values.latching is False, parameter  # latching is the administrator's decision


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_states_every_key(name: str) -> None:
    # Defaults are not silently relied on: each file says what it means for every field.
    data = tomllib.loads((PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    for parameter in AlarmLimits.PARAMETERS:
        assert set(data[parameter]) == set(AlarmLimits.model_fields), (name, parameter)


def test_shipped_delays_and_hysteresis_follow_the_ward_policy() -> None:
    for name in SHIPPED:
        limits = load_profile(name)
        assert limits["oxygen"].delay_s == 10, name
        assert 0 <= limits["heartrate"].delay_s <= 5, name
        assert limits["heartrate"].hysteresis == 2, name
        assert limits["oxygen"].hysteresis == 1, name
        assert limits["systolic"].hysteresis == limits["diastolic"].hysteresis == 3, name
        assert limits["temperature"].hysteresis == pytest.approx(0.2), name


def test_neonatal_profile_alarms_on_hyperoxia() -> None:
    neonatal = load_profile("neonatal")
    assert neonatal["oxygen"].high is not None
    assert neonatal["oxygen"].high <= 95
    assert neonatal["heartrate"].low == 100
    assert neonatal["oxygen"].priority is Priority.HIGH


def test_adult_profile_matches_the_config_defaults() -> None:
    from station.config.settings import AlarmsSection

    adult = load_profile("adult")
    defaults = AlarmsSection().limits()
    for parameter in AlarmLimits.PARAMETERS:
        for field in ("low", "high", "priority"):
            assert getattr(adult[parameter], field) == getattr(defaults[parameter], field)


def test_a_written_profile_loads_from_another_folder(tmp_path: Path) -> None:
    write(tmp_path, "icu", GOOD)
    assert available_profiles(tmp_path) == ["icu"]
    limits = load_profile("icu", tmp_path)
    assert limits["heartrate"].delay_s == 5
    assert limits["oxygen"].delay_s == 0  # unstated optional keys take the model's defaults


def test_a_missing_folder_has_no_profiles(tmp_path: Path) -> None:
    assert available_profiles(tmp_path / "absent") == []


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "typo", GOOD.replace("high = 120", "hihg = 120"))
    with pytest.raises(ProfileError) as caught:
        load_profile("typo", tmp_path)
    assert str(path) in str(caught.value)
    assert "heartrate.hihg" in str(caught.value)


def test_unknown_parameter_names_file_and_parameter(tmp_path: Path) -> None:
    path = write(
        tmp_path, "extra", GOOD + '\n[respiration]\nlow = 8\nhigh = 30\npriority = "high"\n'
    )
    with pytest.raises(ProfileError) as caught:
        load_profile("extra", tmp_path)
    assert str(path) in str(caught.value)
    assert "respiration" in str(caught.value)


def test_every_parameter_is_required(tmp_path: Path) -> None:
    text = GOOD.split("[temperature]", maxsplit=1)[0]
    write(tmp_path, "short", text)
    with pytest.raises(ProfileError, match=r"short\.toml: missing parameter \[temperature\]"):
        load_profile("short", tmp_path)


def test_an_omitted_limit_is_refused_not_switched_off(tmp_path: Path) -> None:
    write(tmp_path, "nolow", GOOD.replace("low = 50\n", "", 1))
    with pytest.raises(ProfileError, match=r"nolow\.toml: missing key heartrate\.low"):
        load_profile("nolow", tmp_path)


def test_invalid_values_name_file_and_key(tmp_path: Path) -> None:
    write(tmp_path, "inverted", GOOD.replace("high = 120", "high = 40"))
    with pytest.raises(ProfileError, match=r"inverted\.toml: heartrate: low limit 50"):
        load_profile("inverted", tmp_path)
    write(tmp_path, "badprio", GOOD.replace('priority = "low"', 'priority = "urgent"'))
    with pytest.raises(ProfileError, match=r"badprio\.toml: temperature\.priority"):
        load_profile("badprio", tmp_path)


def test_bad_toml_and_unknown_profile_name_the_file(tmp_path: Path) -> None:
    write(tmp_path, "broken", "[heartrate\n")
    with pytest.raises(ProfileError, match=r"broken\.toml"):
        load_profile("broken", tmp_path)
    with pytest.raises(ProfileError, match=r"absent\.toml: no profile 'absent' \(available: "):
        load_profile("absent", tmp_path)


def test_a_profile_name_cannot_leave_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="invalid profile name"):
        load_profile("../adult", tmp_path)


def test_describe_change_lists_exactly_the_changed_fields() -> None:
    old = load_profile("adult")
    new = dict(old)
    new["heartrate"] = old["heartrate"].model_copy(update={"high": 130.0, "delay_s": 0.0})
    new["oxygen"] = old["oxygen"].model_copy(update={"priority": Priority.MEDIUM})
    new["temperature"] = old["temperature"].model_copy(update={"low": None})
    assert describe_change(old, new) == {
        "heartrate": {"high": [120.0, 130.0], "delay_s": [5.0, 0.0]},
        "oxygen": {"priority": ["high", "medium"]},
        "temperature": {"low": [35.5, None]},
    }


def test_describe_change_of_equal_limits_is_empty() -> None:
    assert describe_change(load_profile("adult"), load_profile("adult")) == {}


def test_describe_change_between_profiles_covers_only_differences() -> None:
    change = describe_change(load_profile("adult"), load_profile("neonatal"))
    assert change["oxygen"] == {"low": [90.0, 88.0], "high": [100.0, 95.0]}
    assert change["heartrate"] == {
        "low": [50.0, 100.0],
        "high": [120.0, 180.0],
        "delay_s": [5.0, 0.0],
    }
    for fields in change.values():
        for before, after in fields.values():
            assert before != after


def test_describe_change_of_a_parameter_on_one_side_only() -> None:
    limits = AlarmLimits.model_validate({"low": 8, "high": 30, "priority": "high"})
    change = describe_change({}, {"respiration": limits})
    assert change["respiration"]["low"] == [None, 8.0]
    assert change["respiration"]["priority"] == [None, "high"]
