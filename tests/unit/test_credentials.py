"""Unit tests of :mod:`station.config.credentials`: only secure keyrings, the environment first,
never a file and never a log line.

Every test decides the keyring itself (the in-memory one, or a stand-in for a plaintext file
backend through ``keyring.set_keyring``), so none touches the machine's real keyring; the suite's
memory keyring (``tests/conftest.py``) is left out here, and the keyring library has only its
fail backend between a test's own installs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import SecretService, chainer, fail

from station.config import credentials
from station.config.credentials import (
    SERVICE,
    MemoryKeyring,
    SecretStoreError,
    backend_status,
    delete_secret,
    from_environment,
    secret,
    store_secret,
    use_memory_keyring,
)
from tests.keyring_memory import PlaintextStandIn, installed_keyring

PASSWORD = "correct horse battery staple"
TOKEN = "influx-token-Zq8wK2"


@pytest.fixture(autouse=True)
def no_secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in credentials.ENV.values():
        monkeypatch.delenv(name, raising=False)
    # Problems are logged once per process; each test starts with none reported.
    monkeypatch.setattr(credentials, "_reported", set())


@pytest.fixture
def ring() -> Iterator[MemoryKeyring]:
    with use_memory_keyring() as memory:
        yield memory


@pytest.fixture
def plaintext(tmp_path: Path) -> Iterator[PlaintextStandIn]:
    backend = PlaintextStandIn(tmp_path / "keyring_pass.json")
    with installed_keyring(backend):
        yield backend


def assert_refusal_message(message: str, found: str) -> None:
    assert message.startswith("No secure keyring on this machine")
    assert f"(found: {found})" in message
    assert "STATION_MQTT_PASSWORD" in message
    assert "STATION_INFLUX_TOKEN" in message
    assert "STATION_PATIENT_KEY" in message


# -- which backends ------------------------------------------------------------------------------


def test_between_its_own_installs_a_test_here_has_no_secure_keyring(
    memory_keyring: MemoryKeyring | None,
) -> None:
    assert memory_keyring is None  # tests/conftest.py left this module's keyrings to it
    assert isinstance(keyring.get_keyring(), fail.Keyring)
    assert not backend_status().ok
    assert secret("mqtt", "station-1") is None


def test_the_memory_keyring_is_used_while_installed(ring: MemoryKeyring) -> None:
    status = backend_status()
    assert status.ok
    assert status.name == MemoryKeyring.name
    store_secret("mqtt", "station-1", PASSWORD)
    assert ring.get_password(SERVICE, "mqtt:station-1") == PASSWORD
    assert secret("mqtt", "station-1") == PASSWORD


def test_the_memory_keyring_is_not_used_once_removed(plaintext: PlaintextStandIn) -> None:
    with use_memory_keyring():
        store_secret("mqtt", "station-1", PASSWORD)
    assert not backend_status().ok
    assert secret("mqtt", "station-1") is None


def test_two_memory_keyrings_at_once_are_refused(ring: MemoryKeyring) -> None:
    with pytest.raises(RuntimeError, match="already installed"), use_memory_keyring():
        pass


def test_a_plaintext_file_backend_is_refused_with_the_message(
    plaintext: PlaintextStandIn,
) -> None:
    status = backend_status()
    assert not status.ok
    assert status.name == PlaintextStandIn.name
    assert_refusal_message(status.message, PlaintextStandIn.name)
    with pytest.raises(SecretStoreError) as info:
        store_secret("mqtt", "station-1", PASSWORD)
    assert str(info.value) == status.message
    assert not plaintext.path.exists()  # nothing fell back to the file
    with pytest.raises(SecretStoreError):
        delete_secret("mqtt", "station-1")


def test_a_secret_in_a_plaintext_file_is_never_read(plaintext: PlaintextStandIn) -> None:
    plaintext.set_password(SERVICE, "mqtt:station-1", PASSWORD)
    assert secret("mqtt", "station-1") is None


def test_the_fail_backend_is_refused() -> None:
    with installed_keyring(fail.Keyring()):
        status = backend_status()
    assert not status.ok
    assert_refusal_message(status.message, "fail Keyring")


def test_a_subclass_of_an_allowed_backend_is_refused() -> None:
    class Lookalike(SecretService.Keyring):  # could keep the secret anywhere
        pass

    with installed_keyring(Lookalike()):
        assert not backend_status().ok


def test_a_chainer_uses_only_its_secure_child(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secure = SecretService.Keyring()
    children = [PlaintextStandIn(tmp_path / "plain.json"), secure]
    monkeypatch.setattr(chainer.ChainerBackend, "backends", children)
    with installed_keyring(chainer.ChainerBackend()):
        status = backend_status()
        backend, _name = credentials._resolve()
    assert status.ok
    assert status.name == "SecretService Keyring"
    assert backend is secure  # used directly: the chainer would read the plaintext child too


def test_a_chainer_without_a_secure_child_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    children = [PlaintextStandIn(tmp_path / "plain.json"), fail.Keyring()]
    monkeypatch.setattr(chainer.ChainerBackend, "backends", children)
    with installed_keyring(chainer.ChainerBackend()):
        status = backend_status()
    assert not status.ok
    assert_refusal_message(
        status.message, f"chainer ChainerBackend of {PlaintextStandIn.name}, fail Keyring"
    )


# -- the environment -----------------------------------------------------------------------------


def test_the_environment_wins_over_the_keyring(
    ring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_secret("influx", "ward", "from-the-keyring")
    monkeypatch.setenv("STATION_INFLUX_TOKEN", TOKEN)
    assert secret("influx", "ward") == TOKEN
    assert from_environment("influx")
    assert not from_environment("mqtt")


@pytest.mark.parametrize(
    ("kind", "env", "label"),
    [
        ("mqtt", "STATION_MQTT_PASSWORD", "MQTT password"),
        ("influx", "STATION_INFLUX_TOKEN", "InfluxDB token"),
        ("patients", "STATION_PATIENT_KEY", "patient table key"),
    ],
)
def test_every_kind_has_its_variable_label_and_keyring_entry(
    ring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, kind: str, env: str, label: str
) -> None:
    assert credentials.ENV.keys() == credentials.LABELS.keys()
    assert (credentials.ENV[kind], credentials.LABELS[kind]) == (env, label)
    store_secret(kind, "station-1", "from-the-keyring")
    assert ring.accounts() == [(SERVICE, f"{kind}:station-1")]
    assert secret(kind, "station-1") == "from-the-keyring"
    assert not from_environment(kind)
    monkeypatch.setenv(env, "from-the-environment")
    assert from_environment(kind)
    assert secret(kind, "station-1") == "from-the-environment"
    assert delete_secret(kind, "station-1") is True


def test_the_environment_serves_an_unattended_service_without_keyring(
    plaintext: PlaintextStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATION_MQTT_PASSWORD", PASSWORD)
    assert secret("mqtt", "station-1") == PASSWORD


def test_no_secure_keyring_and_no_environment_is_no_secret_logged_once(
    plaintext: PlaintextStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="station.config.credentials"):
        assert secret("mqtt", "station-1") is None
        assert secret("mqtt", "station-1") is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert_refusal_message(messages[0], PlaintextStandIn.name)


# -- store, read, delete -------------------------------------------------------------------------


def test_store_read_and_delete_through_the_memory_keyring(ring: MemoryKeyring) -> None:
    store_secret("mqtt", "station-1", PASSWORD)
    store_secret("influx", "ward", TOKEN)
    assert ring.accounts() == [(SERVICE, "influx:ward"), (SERVICE, "mqtt:station-1")]
    assert secret("influx", "ward") == TOKEN
    assert secret("mqtt", "someone-else") is None
    store_secret("mqtt", "station-1", "replaced")
    assert secret("mqtt", "station-1") == "replaced"
    assert delete_secret("mqtt", "station-1") is True
    assert delete_secret("mqtt", "station-1") is False
    assert secret("mqtt", "station-1") is None
    assert ring.accounts() == [(SERVICE, "influx:ward")]


@pytest.mark.parametrize(
    ("kind", "account", "value", "match"),
    [
        ("mqtt", "station-1", "", "empty"),
        ("mqtt", "", PASSWORD, "needs an account"),
        ("ssh", "station-1", PASSWORD, "unknown secret kind"),
    ],
)
def test_store_refuses_what_cannot_be_looked_up(
    ring: MemoryKeyring, kind: str, account: str, value: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store_secret(kind, account, value)
    assert ring.accounts() == []


def test_unknown_kind_is_an_error_when_read() -> None:
    with pytest.raises(ValueError, match="unknown secret kind"):
        secret("ssh", "root")


def test_a_failing_keyring_read_is_a_missing_secret(
    ring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(service: str, username: str) -> str | None:
        raise RuntimeError("collection is locked")

    monkeypatch.setattr(ring, "get_password", locked)
    assert secret("mqtt", "station-1") is None


def test_no_secret_in_log_output_or_error_text(
    ring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store_secret("mqtt", "station-1", PASSWORD)
    assert secret("mqtt", "station-1") == PASSWORD
    delete_secret("mqtt", "station-1")

    def echoing(service: str, username: str, password: str) -> None:
        raise RuntimeError(f"backend refused {password!r}")  # a careless backend

    monkeypatch.setattr(ring, "set_password", echoing)
    with pytest.raises(SecretStoreError) as info:
        store_secret("influx", "ward", TOKEN)
    assert TOKEN not in str(info.value)
    assert "***" in str(info.value)
    assert caplog.records, "the store and delete are logged (without their values)"
    for record in caplog.records:
        text = record.getMessage()
        assert PASSWORD not in text
        assert TOKEN not in text
