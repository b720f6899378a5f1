"""Unit tests of the configuration schema in :mod:`station.config.settings` (CONTRACT §4).

The example file must load to exactly the built-in defaults and document every key of the schema;
a bad file (unknown key, wrong type, unsafe value, not TOML, unreadable) must stop the start with
a :class:`ConfigError` naming the key, and ``station --config BAD`` must exit 2 with one line.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from station.cli.main import main
from station.config.settings import ConfigError, Settings, from_mapping, load
from station.domain.alarms import AlarmLimits, Priority

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "station.example.toml"


def _submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _schema_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted leaf keys of the schema, recursing into sections and per-parameter limits."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        if sub is None:
            keys.add(prefix + name)
        else:
            keys |= _schema_keys(sub, f"{prefix}{name}.")
    return keys


def _file_keys(data: dict[str, Any], model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted leaf keys of a parsed TOML document, descending where the schema has a section (a
    mapping value such as ``ward.devices`` is one key, not a section)."""
    keys: set[str] = set()
    for name, value in data.items():
        field = model.model_fields.get(name)
        sub = _submodel(field.annotation) if field is not None else None
        if sub is not None and isinstance(value, dict):
            keys |= _file_keys(value, sub, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _write(tmp_path: Path, text: str, name: str = "station.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        from_mapping(data)
    return str(info.value)


# -- the example file -----------------------------------------------------------------------------


def test_example_loads_and_equals_defaults() -> None:
    assert load(EXAMPLE) == Settings()


def test_schema_walk_finds_nested_sections() -> None:
    keys = _schema_keys(Settings)
    # Guard the walker itself: it must reach the sections and each parameter's limits.
    assert {"station.id", "mqtt.host", "influx.url", "ward.devices", "ui.columns"} <= keys
    for parameter in AlarmLimits.PARAMETERS:
        assert {f"alarms.{parameter}.{k}" for k in ("low", "high", "priority")} <= keys


def test_example_documents_every_key() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    schema = _schema_keys(Settings)
    documented = _file_keys(data, Settings)
    assert sorted(schema - documented) == [], "keys missing from the example"
    assert sorted(documented - schema) == [], "keys in the example the schema does not know"


def test_defaults_are_the_documented_limits() -> None:
    limits = Settings().alarms.limits()
    assert list(limits) == list(AlarmLimits.PARAMETERS)
    assert limits["heartrate"] == AlarmLimits(
        low=50, high=120, priority=Priority.HIGH, hysteresis=2
    )
    assert limits["oxygen"] == AlarmLimits(
        low=90, high=100, priority=Priority.HIGH, delay_s=10, hysteresis=1
    )
    assert limits["temperature"] == AlarmLimits(
        low=35.5, high=38.5, priority=Priority.LOW, hysteresis=0.2
    )


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load(_write(tmp_path, "")) == Settings()


def test_values_from_file_are_used(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[station]\nid = "icu-2"\nname = "ICU 2"\n'
        '[mqtt]\nport = 1884\ntopics = ["a/+/vitals"]\n'
        '[alarms.heartrate]\nlow = 40\nhigh = 140\npriority = "medium"\n'
        "[ward]\nbeds = 4\ndevices = {mon-7 = 3}\n",
    )
    settings = load(path)
    assert (settings.station.id, settings.station.name) == ("icu-2", "ICU 2")
    assert settings.mqtt.port == 1884
    assert settings.mqtt.topics == ("a/+/vitals",)
    assert settings.alarms.heartrate == AlarmLimits(
        low=40, high=140, priority=Priority.MEDIUM, hysteresis=2
    )
    assert settings.ward.devices == {"mon-7": 3}
    assert settings.mqtt.host == "127.0.0.1"  # untouched keys keep their defaults


# -- client_id ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "station-ward-1"),
        ({"station": {"id": "icu-2"}}, "station-icu-2"),
        ({"station": {"id": "icu-2"}, "mqtt": {"client_id": "fixed-7"}}, "fixed-7"),
    ],
    ids=["default", "from-station-id", "explicit"],
)
def test_client_id(data: dict[str, Any], expected: str) -> None:
    assert from_mapping(data).client_id == expected


# -- unknown keys and wrong types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"mqtt": {"hots": "broker"}}, "mqtt.hots"),
        ({"mqt": {"host": "broker"}}, "mqt"),
        ({"station": {"password": "x"}}, "station.password"),
        ({"alarms": {"heartrate": {"hihg": 130}}}, "alarms.heartrate.hihg"),
        ({"alarms": {"pulse": {"high": 130}}}, "alarms.pulse"),
    ],
    ids=["mqtt.hots", "section", "secret-in-file", "limit-field", "unknown-parameter"],
)
def test_unknown_key_named(data: dict[str, Any], key: str) -> None:
    message = _error(data)
    assert f" {key}: unknown key" in message


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"mqtt": {"port": "abc"}}, "mqtt.port"),
        ({"mqtt": {"port": 70000}}, "mqtt.port"),
        ({"mqtt": {"keepalive_s": 30.5}}, "mqtt.keepalive_s"),
        ({"mqtt": {"topics": "a/b"}}, "mqtt.topics"),
        ({"mqtt": {"topics": []}}, "mqtt.topics"),
        ({"mqtt": {"protocol": 5}}, "mqtt.protocol"),
        ({"station": {"id": 5}}, "station.id"),
        ({"station": {"id": "ward 1"}}, "station.id"),
        ({"influx": {"url": "ftp://x"}}, "influx.url"),
        ({"ui": {"columns": 0}}, "ui.columns"),
        ({"alarms": {"heartrate": {"priority": "urgent"}}}, "alarms.heartrate.priority"),
        ({"alarms": {"heartrate": {"low": "fifty"}}}, "alarms.heartrate.low"),
        ({"mqtt": "broker"}, "mqtt"),
        # Coerced by pydantic's lax mode today; CONTRACT §4 says a wrong type stops the start.
        ({"mqtt": {"port": "1883"}}, "mqtt.port"),
        ({"mqtt": {"tls": "yes"}}, "mqtt.tls"),
        ({"mqtt": {"host": "10.0.0.5", "allow_plain_remote": 1}}, "mqtt.allow_plain_remote"),
        ({"ui": {"columns": True}}, "ui.columns"),
    ],
    ids=[
        "port-text",
        "port-range",
        "keepalive-fraction",
        "topics-string",
        "topics-empty",
        "protocol-number",
        "id-number",
        "id-pattern",
        "url-scheme",
        "columns-range",
        "priority-word",
        "limit-text",
        "section-not-table",
        "port-numeric-string",
        "tls-string",
        "override-integer",
        "columns-bool",
    ],
)
def test_wrong_type_or_value_named(data: dict[str, Any], key: str) -> None:
    message = _error(data)
    assert message.startswith(f"config: {key}: "), message


# -- MQTT safety ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["broker.hospital.example", "10.0.0.5", "192.168.1.2", "2001:db8::1"]
)
def test_plain_mqtt_to_remote_host_refused(host: str) -> None:
    message = _error({"mqtt": {"host": host, "tls": False}})
    assert "mqtt" in message
    assert "tls" in message
    assert host in message


@pytest.mark.parametrize("host", ["broker.hospital.example", "10.0.0.5"])
def test_plain_mqtt_to_remote_host_allowed_by_override(host: str) -> None:
    settings = from_mapping({"mqtt": {"host": host, "allow_plain_remote": True}})
    assert (settings.mqtt.host, settings.mqtt.tls) == (host, False)


def test_tls_to_remote_host_accepted() -> None:
    settings = from_mapping({"mqtt": {"host": "broker.hospital.example", "tls": True}})
    assert settings.mqtt.tls is True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_plain_mqtt_to_loopback_accepted(host: str) -> None:
    assert from_mapping({"mqtt": {"host": host}}).mqtt.host == host


@pytest.mark.parametrize("key", ["ca_file", "client_cert", "client_key"])
def test_missing_tls_file_named(tmp_path: Path, key: str) -> None:
    missing = tmp_path / "nowhere.pem"
    message = _error({"mqtt": {"tls": True, key: str(missing)}})
    assert f"{key}: file not found" in message
    assert str(missing) in message


def test_existing_ca_file_accepted(tmp_path: Path) -> None:
    ca = _write(tmp_path, "-----BEGIN CERTIFICATE-----\n", "ca.pem")
    assert from_mapping({"mqtt": {"tls": True, "ca_file": str(ca)}}).mqtt.ca_file == str(ca)


@pytest.mark.parametrize(
    ("given", "other"), [("client_cert", "client_key"), ("client_key", "client_cert")]
)
def test_client_cert_and_key_go_together(tmp_path: Path, given: str, other: str) -> None:
    pem = _write(tmp_path, "pem\n", "one.pem")
    message = _error({"mqtt": {"tls": True, given: str(pem)}})
    assert "client_cert" in message
    assert other in message


def test_client_cert_with_key_accepted(tmp_path: Path) -> None:
    cert = _write(tmp_path, "cert\n", "cert.pem")
    key = _write(tmp_path, "key\n", "key.pem")
    settings = from_mapping(
        {"mqtt": {"tls": True, "client_cert": str(cert), "client_key": str(key)}}
    )
    assert (settings.mqtt.client_cert, settings.mqtt.client_key) == (str(cert), str(key))


# -- historian safety -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://historian.hospital.example:8086", "historian.hospital.example"),
        ("http://10.0.0.5:8086", "10.0.0.5"),
        ("http://192.168.1.2/influx", "192.168.1.2"),
        ("http://[2001:db8::1]:8086/", "2001:db8::1"),
        ("http://", "http://"),
    ],
)
def test_plain_http_to_remote_historian_refused(url: str, host: str) -> None:
    """The token and the vitals would cross the network in clear text: refused like plain MQTT
    once the historian is on. Off, it sends nothing, and an older config that keeps such a URL
    switched off still starts after an upgrade (the dialog judges it when it is switched on)."""
    message = _error({"influx": {"enabled": True, "url": url}})
    assert message.startswith("config: influx: url: plain HTTP"), message
    assert repr(host) in message
    assert "allow_plain_remote" in message
    assert from_mapping({"influx": {"enabled": False, "url": url}}).influx.url == url


@pytest.mark.parametrize("url", ["http://historian.hospital.example:8086", "http://10.0.0.5"])
def test_plain_http_to_remote_historian_allowed_by_override(url: str) -> None:
    settings = from_mapping({"influx": {"enabled": True, "url": url, "allow_plain_remote": True}})
    assert (settings.influx.url, settings.influx.allow_plain_remote) == (url, True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8086",
        "http://127.0.0.2:8086",
        "http://localhost:8086",
        "http://LOCALHOST",
        "http://[::1]:8086",
        "https://historian.hospital.example:8086",
        "https://10.0.0.5",
    ],
)
def test_loopback_or_https_historian_accepted(url: str) -> None:
    assert from_mapping({"influx": {"enabled": True, "url": url}}).influx.url == url


def test_historian_override_must_be_a_boolean() -> None:
    message = _error({"influx": {"url": "http://10.0.0.5", "allow_plain_remote": 1}})
    assert message.startswith("config: influx.allow_plain_remote: "), message


def test_missing_historian_ca_file_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    message = _error({"influx": {"url": "https://historian.example", "ca_file": str(missing)}})
    assert message == f"config: influx: ca_file: file not found: {missing}"


def test_existing_historian_ca_file_accepted(tmp_path: Path) -> None:
    ca = _write(tmp_path, "-----BEGIN CERTIFICATE-----\n", "ca.pem")
    settings = from_mapping({"influx": {"url": "https://historian.example", "ca_file": str(ca)}})
    assert settings.influx.ca_file == str(ca)


def test_plain_remote_historian_on_the_command_line_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, '[influx]\nenabled = true\nurl = "http://10.0.0.5:8086"\n')
    assert main(["--config", str(path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "influx: url: plain HTTP to non-loopback historian '10.0.0.5'" in line


# -- alarm limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high"), [(120, 50), (80, 80)], ids=["low-above-high", "low-equals-high"]
)
def test_alarm_limits_low_not_below_high_refused(low: float, high: float) -> None:
    message = _error({"alarms": {"heartrate": {"low": low, "high": high}}})
    assert message.startswith("config: alarms.heartrate: "), message
    assert "below high limit" in message


def test_partial_limit_section_keeps_other_defaults() -> None:
    # Raising only the high limit must not drop the low limit nor demote the priority.
    settings = from_mapping({"alarms": {"heartrate": {"high": 130}}})
    assert settings.alarms.heartrate == AlarmLimits(
        low=50, high=130, priority=Priority.HIGH, hysteresis=2
    )


# -- ward -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [0, 9, -1], ids=["zero", "past-last", "negative"])
def test_ward_device_bed_out_of_range_named(number: int) -> None:
    message = _error({"ward": {"beds": 8, "devices": {"mon-7": number}}})
    assert "ward.devices" in message
    assert "mon-7" in message


# -- reading the file -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['[mqtt\nhost = "x"\n', "port = \n", '[mqtt]\nhost = "a"\nhost = "b"\n'],
    ids=["unclosed-table", "missing-value", "duplicate-key"],
)
def test_bad_toml_raises_config_error(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="not TOML") as info:
        load(path)
    assert str(path) in str(info.value)


def test_bad_encoding_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[station]\nname = "Station Süd"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_path_raises_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "absent.toml" if kind == "missing" else tmp_path
    with pytest.raises(ConfigError, match="cannot read") as info:
        load(path)
    assert str(path) in str(info.value)


def test_error_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[mqtt]\nhots = "broker"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == f"{path}: mqtt.hots: unknown key"


# -- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[mqtt]\nhots = "broker"\n', "mqtt.hots"),
        ('[mqtt]\nhost = "broker.hospital.example"\n', "tls"),
        ("[mqtt\n", "not TOML"),
        (None, "cannot read"),
        ('[station]\nname = "Station Süd"\n'.encode("latin-1"), "bad.toml"),
    ],
    ids=["unknown-key", "unsafe", "not-toml", "missing-file", "not-utf8"],
)
def test_cli_bad_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes | None, needle: str
) -> None:
    path = tmp_path / "bad.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    qt_before = {m for m in sys.modules if m.startswith("PySide6")}
    assert main(["--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("station: ")
    assert needle in lines[0]
    assert {m for m in sys.modules if m.startswith("PySide6")} == qt_before
