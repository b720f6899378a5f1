"""Revoking a device says how to remove its broker credential, and the demo removes it at once.

The station refuses a revoked device's messages, but the broker decides who may connect and
publish: until its ``password_file`` entry and ACL block go, the device (or whoever holds its
password) still reaches the ward's broker. Revocation now gives the inverse of what onboarding
printed: the ``mosquitto_passwd -D`` command and the ACL lines to delete (``station devices
revoke`` prints them, the devices dialog shows them), and in ``--demo`` the embedded broker
refuses the device's user at once, as it took its credential at once.

Pure Python plus the embedded amqtt broker on loopback; ``tests/integration`` applies the lines to
a real Mosquitto.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from station.cli.main import main
from station.config.settings import from_mapping
from station.domain.broker_credentials import (
    ACL_FILE,
    PASSWORD_FILE,
    CredentialRemoval,
    credential_removal,
    make_credential,
)
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import load_trust
from station.services.demo.broker import DemoCredentials, EmbeddedBroker
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.patient_store import PatientStore
from station.services.ward_changes import WardChanges
from tests.device_kit import trusted_maker, voucher_for


def test_the_removal_is_the_inverse_of_the_onboarding_lines() -> None:
    removal = credential_removal("mon-7")
    assert removal.username == "mon-7"
    assert removal.acl == make_credential("mon-7").acl  # exactly the lines onboarding printed
    assert removal.password_command() == f"mosquitto_passwd -D {PASSWORD_FILE} mon-7"
    assert removal.lines() == [
        "# password_file: delete the device's login",
        "mosquitto_passwd -D /etc/mosquitto/passwd mon-7",
        "# acl_file (/etc/mosquitto/acl): delete these lines",
        "user mon-7",
        "topic write healthcare/devices/mon-7/vitals",
        "# then reload the broker: systemctl reload mosquitto",
    ]
    assert ACL_FILE == "/etc/mosquitto/acl"
    assert not removal.applied


def test_a_password_file_path_is_quoted_for_the_shell() -> None:
    command = credential_removal("mon-7").password_command("/srv/broker dir/pass;rm -rf x")
    assert shlex.split(command) == [
        "mosquitto_passwd",
        "-D",
        "/srv/broker dir/pass;rm -rf x",
        "mon-7",
    ]


@pytest.mark.parametrize("device", ["mon:1", "station-ward-1", "bad id"])
def test_a_name_the_broker_never_had_gives_no_lines(device: str) -> None:
    with pytest.raises(ValueError, match=r"device id|reserved"):
        credential_removal(device)


def _onboarded(tmp_path: Path, device: str) -> tuple[Path, Path]:
    """A config file and a data folder with ``device`` onboarded to Bed 3."""
    data = tmp_path / "data"
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n[ward]\nbeds = 4\n')
    maker = trusted_maker(data / "trust")
    text, _key = voucher_for(maker, device)
    registry = DeviceRegistry(data / "devices.json")
    book = registry.load()
    check = check_voucher(
        text, load_trust(data / "trust"), now=time.time(), used=book.used_vouchers,
        revoked=book.revoked,
    )  # fmt: skip
    registry.onboard(check, bed="Bed 3", signing=False, by="admin", at=time.time())
    return config, data


def test_station_devices_revoke_prints_the_broker_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = _onboarded(tmp_path, "mon-7")
    args = ["--config", str(config), "devices", "revoke", "mon-7"]
    assert main([*args, "--password-file", "/etc/mosquitto/ward passwd"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "mon-7 decommissioned"
    assert "its broker login is still valid: remove it on the broker" in out
    assert "mosquitto_passwd -D '/etc/mosquitto/ward passwd' mon-7" in out
    assert "# acl_file (/etc/mosquitto/acl): delete these lines" in out
    user = out.index("user mon-7")
    assert out[user + 1] == "topic write healthcare/devices/mon-7/vitals"


def _changes(data: Path, credentials: DemoCredentials | None) -> WardChanges:
    settings = from_mapping(
        {"station": {"id": "ward-r", "data_dir": str(data)}, "ward": {"beds": 4}}
    )

    class Audit:
        fault: str | None = None

        def record(self, action: str, **fields: object) -> None:
            pass

    return WardChanges(
        settings, Audit(), time.time, None, PatientStore(data / "patients.enc", "ward-r"),
        DeviceRegistry(data / "devices.json"), data / "trust", ("Bed 1", "Bed 2", "Bed 3", "Bed 4"),
        remove_credential=None if credentials is None else credentials.remove,
    )  # fmt: skip


def test_revoking_on_a_ward_returns_the_lines_to_apply(tmp_path: Path) -> None:
    _, data = _onboarded(tmp_path, "mon-8")
    outcome = _changes(data, None).revoke("mon-8", "admin")
    assert outcome.error is None
    assert outcome.value == CredentialRemoval("mon-8", make_credential("mon-8").acl)


def test_revoking_in_the_demo_removes_the_credential_at_once(tmp_path: Path) -> None:
    _, data = _onboarded(tmp_path, "mon-9")
    credentials = DemoCredentials()
    credentials.add("mon-9", "handed-out-once")  # as onboarding in the demo applies it
    assert credentials.check("mon-9", "handed-out-once") is True
    outcome = _changes(data, credentials).revoke("mon-9", "admin")
    assert outcome.error is None
    assert outcome.value is not None
    assert outcome.value.applied
    assert credentials.check("mon-9", "handed-out-once") is False  # refused, not "unknown"
    assert credentials.check("sim-bed01", "") is None  # the simulated ward stays free


# -- the demo's embedded broker refuses the revoked user ----------------------------------------


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker()
    embedded.start(timeout=10)
    yield embedded
    embedded.stop()


def _connack(port: int, user: str, password: str) -> str:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{user}", protocol=MQTTProtocolVersion.MQTTv311
    )
    client.username_pw_set(user, password)
    got: list[str] = []
    done = threading.Event()

    def on_connect(*args: object) -> None:
        got.append(str(args[3]))
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_the_embedded_broker_refuses_a_revoked_device(broker: EmbeddedBroker) -> None:
    assert broker.port is not None
    broker.credentials.add("mon-9", "handed-out-once")
    assert _connack(broker.port, "mon-9", "handed-out-once") == "Success"
    broker.credentials.remove("mon-9")
    assert _connack(broker.port, "mon-9", "handed-out-once") == "Not authorized"
    assert _connack(broker.port, "mon-9", "") == "Not authorized"
