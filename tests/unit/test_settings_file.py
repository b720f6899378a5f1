"""Unit tests of :mod:`station.config.settings_file`: the TOML written loads back to the same
settings, replaces the old file atomically and privately, never holds a secret, and the diff names
each change for the audit trail.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from station.config import private_file
from station.config.settings import AlarmsSection, MqttSection, Settings, from_mapping, load
from station.config.settings_file import (
    SECRET_WORDS,
    settings_diff,
    to_toml,
    write_settings,
)
from station.domain.alarms import AlarmLimits, Priority

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "station.example.toml"


def non_default(tmp_path: Path) -> Settings:
    """Settings far from the defaults, with every kind of value the file must carry."""
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("not checked here, only that it exists\n")
    return from_mapping(
        {
            "station": {
                "id": "icu-2.north:a",
                "name": 'Intensivstation Nord — "Zi. 3" ✓ \\ back\tslash\n\x01\x7f',
                "data_dir": "C:\\Stations\\ICU 2\\data",
            },
            "mqtt": {
                "host": "broker.ward.example",
                "port": 8883,
                "tls": True,
                "ca_file": str(tmp_path / "ca.pem"),
                "client_cert": str(tmp_path / "client.pem"),
                "client_key": str(tmp_path / "client.key"),
                "username": "station-icu2",
                "client_id": "icu2 station",
                "topics": ["ward/+/vitals", "ward/extra #?"],
                "keepalive_s": 45,
                "protocol": "3.1.1",
                "session_expiry_s": 3600,
                "allow_plain_remote": False,
            },
            "influx": {
                "enabled": True,
                "url": "https://historian.example:8086/base/",
                "org": "Städtisches Klinikum",
                "bucket": "icu-vitals",
                "batch_size": 5000,
                "flush_interval_s": 1e-05,
            },
            "spool": {"budget_mb": 0.1, "keep_written_s": 0.0, "commit_interval_ms": 5},
            "alarms": {
                "no_data_s": 12.5,
                "battery_low_pct": 33.3,
                "heartrate": {
                    "low": 40.5,
                    "high": 135.0,
                    "priority": "medium",
                    "delay_s": 2.5,
                    "hysteresis": 0.25,
                    "latching": True,
                },
                "temperature": {"low": 35.25, "high": 39.0, "priority": "high"},
            },
            "ward": {
                "beds": 12,
                "bed_prefix": "Bett\u00a0",
                "devices": {"dev.1": 1, "monitor:12": 12, "plain_id": 3, "a-b": 4},
            },
            "ui": {"columns": 3, "render_hz": 12.5, "plot_window_s": 600},
        }
    )


def keys_of(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, value in data.items():
        keys.append(prefix + name)
        if isinstance(value, dict):
            keys += keys_of(value, f"{prefix}{name}.")
    return keys


def test_the_example_round_trips(tmp_path: Path) -> None:
    settings = load(EXAMPLE)
    path = tmp_path / "station.toml"
    write_settings(settings, path)
    assert load(path) == settings
    assert path.read_text(encoding="utf-8").startswith("# Central monitoring station")


def test_non_default_values_round_trip(tmp_path: Path) -> None:
    settings = non_default(tmp_path)
    path = tmp_path / "station.toml"
    write_settings(settings, path)
    again = load(path)
    assert again == settings
    # Spot checks that the comparison above covers what it should.
    assert again.station.name == settings.station.name
    assert "\n" in again.station.name
    assert again.station.data_dir == "C:\\Stations\\ICU 2\\data"
    assert again.mqtt.topics == ("ward/+/vitals", "ward/extra #?")
    assert again.alarms.heartrate == AlarmLimits(
        low=40.5, high=135, priority=Priority.MEDIUM, delay_s=2.5, hysteresis=0.25, latching=True
    )
    assert again.ward.devices == {"dev.1": 1, "monitor:12": 12, "plain_id": 3, "a-b": 4}
    assert again.influx.flush_interval_s == 1e-05
    text = path.read_text(encoding="utf-8")
    assert "[alarms.heartrate]" in text
    assert "[ward.devices]" in text
    assert "Städtisches Klinikum" in text  # unicode as itself, not escaped


def test_empty_devices_round_trip_as_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    write_settings(Settings(), path)
    assert "devices = {}" in path.read_text(encoding="utf-8")
    assert load(path) == Settings()


def test_the_file_is_private_and_holds_no_secret_keys(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    old_umask = os.umask(0)
    try:
        write_settings(non_default(tmp_path), path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for key in keys_of(tomllib.loads(path.read_text(encoding="utf-8"))):
        leaf = key.rsplit(".", 1)[-1].lower()
        assert not any(word in leaf for word in ("password", "token", "secret")), key


def test_a_key_that_looks_like_a_secret_is_refused(tmp_path: Path) -> None:
    class LeakyMqtt(MqttSection):
        password: str = "hunter2"

    class LeakySettings(Settings):
        mqtt: LeakyMqtt = LeakyMqtt()

    assert "password" in SECRET_WORDS
    with pytest.raises(ValueError, match=r"mqtt\.password: looks like a secret"):
        to_toml(LeakySettings())
    path = tmp_path / "station.toml"
    with pytest.raises(ValueError, match="looks like a secret"):
        write_settings(LeakySettings(), path)
    assert not path.exists()


def test_a_limit_switched_off_cannot_be_written(tmp_path: Path) -> None:
    alarms = AlarmsSection(heartrate=AlarmLimits(low=None, high=120, priority=Priority.HIGH))
    path = tmp_path / "station.toml"
    with pytest.raises(ValueError, match=r"alarms\.heartrate\.low: no value"):
        write_settings(Settings(alarms=alarms), path)
    assert not path.exists()


def test_writing_replaces_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text("# the old file\n")
    settings = Settings.model_validate({"station": {"name": "New name"}})
    write_settings(settings, path)
    assert load(path) == settings
    assert sorted(p.name for p in tmp_path.iterdir()) == ["station.toml"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "station.toml"
    path.write_text("# the old file\n")

    def no_rename(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(private_file.os, "replace", no_rename)  # the shared writer
    with pytest.raises(OSError, match="No space left"):
        write_settings(Settings(), path)
    assert path.read_text() == "# the old file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["station.toml"]


def test_a_missing_folder_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "config" / "station" / "station.toml"
    write_settings(Settings(), path)
    assert load(path) == Settings()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_diff_names_each_change_as_old_and_new(tmp_path: Path) -> None:
    old = from_mapping({"ward": {"devices": {"dev-1": 1, "dev-2": 2}}})
    new = from_mapping(
        {
            "mqtt": {"port": 1884, "topics": ["a/b"]},
            "alarms": {"heartrate": {"high": 130, "priority": "medium"}},
            "ward": {"devices": {"dev-2": 3, "dev-4": 4}},
        }
    )
    assert settings_diff(old, new) == [
        ("mqtt.port", 1883, 1884),
        ("mqtt.topics", ["healthcare/sensor_data", "healthcare/devices/+/vitals"], ["a/b"]),
        ("alarms.heartrate.high", 120.0, 130.0),
        ("alarms.heartrate.priority", "high", "medium"),
        ("ward.devices.dev-1", 1, None),
        ("ward.devices.dev-2", 2, 3),
        ("ward.devices.dev-4", None, 4),
    ]
    assert settings_diff(new, new) == []
