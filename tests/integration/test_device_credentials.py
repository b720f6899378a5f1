"""Credentials made by :mod:`station.domain.broker_credentials`, deployed to a real Mosquitto.

The password-file line is written by our code, not by ``mosquitto_passwd``, and the broker must
accept it; the ACL block must grant the device its own vitals topic and nothing else. On the test
broker the ``%u`` pattern is left out (``device_pattern=False``), so our ACL lines are the only
grant a device has: without them the same device is connected and refused every publish. The
shipped hardened configuration is run too, with the lines appended as an admin would.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from station.domain.broker_credentials import DeviceCredential, make_credential
from tests.integration.servers.mosquitto import HardenedMosquitto, Mosquitto
from tests.integration.servers.pki import Pki
from tests.payloads import vitals

DEVICE = "bedside-7"
OWN_TOPIC = f"healthcare/devices/{DEVICE}/vitals"
WAIT_S = 10.0
NOT_AUTHORIZED = 135  # also Mosquitto 2.0's CONNACK for a wrong password (not 134)


class Client:
    """An MQTT 5 client over TLS that waits for its CONNACK and for each PUBACK."""

    def __init__(self, broker: Mosquitto, user: str, password: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{user}", protocol=mqtt.MQTTv5
        )
        self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.username_pw_set(user, password)
        self.connack: ReasonCode | None = None
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._acks: dict[int, ReasonCode] = {}
        self._subscribed = threading.Event()
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, msg.payload))
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        with self._cond:
            assert self._cond.wait_for(lambda: self.connack is not None, WAIT_S), "no CONNACK"

    def _on_connect(self, _c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        with self._cond:
            self.connack = rc
            self._cond.notify_all()

    def _on_publish(
        self, _c: object, _u: object, mid: int, rc: ReasonCode, _p: Properties | None
    ) -> None:
        with self._cond:
            self._acks[mid] = rc
            self._cond.notify_all()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(WAIT_S), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason."""
        info = self.client.publish(topic, payload, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self._acks, WAIT_S), "no PUBACK"
            return self._acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def connected(broker: Mosquitto, user: str, password: str) -> Iterator[Client]:
    client = Client(broker, user, password)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def credential() -> DeviceCredential:
    return make_credential(DEVICE)


def assert_only_own_topic(broker: Mosquitto, station_user: str, cred: DeviceCredential) -> None:
    """The device connects with its password, its vitals reach a station, nothing else goes."""
    with (
        connected(broker, station_user, broker.passwords[station_user]) as station,
        connected(broker, cred.username, cred.password) as device,
    ):
        assert station.connack is not None
        assert not station.connack.is_failure
        assert device.connack is not None
        assert not device.connack.is_failure, f"our password line was refused: {device.connack}"
        station.subscribe("healthcare/#")
        forbidden = [
            "healthcare/devices/monitor-a/vitals",  # another device's topic
            f"healthcare/devices/{DEVICE}/alarms",
            "healthcare/station/ward-1/alarms",  # a station's topic
            "healthcare/sensor_data",
        ]
        for topic in forbidden:
            assert device.publish(topic, vitals(DEVICE)).value == NOT_AUTHORIZED, topic
        payload = vitals(DEVICE)
        assert not device.publish(OWN_TOPIC, payload).is_failure
        # Delivery is in order: had a refused publish got through, it would come first.
        assert station.messages.get(timeout=WAIT_S) == (OWN_TOPIC, payload)
        assert station.messages.empty()


def assert_wrong_password_refused(broker: Mosquitto, cred: DeviceCredential) -> None:
    """A wrong password, a near miss and the stored hash itself are all refused."""
    for password in ("wrong", cred.password[:-1], cred.password_line.split(":", 1)[1]):
        with connected(broker, cred.username, password) as impostor:
            assert impostor.connack is not None
            assert impostor.connack.value == NOT_AUTHORIZED, impostor.connack
    assert broker.log_file.read_text().count("disconnected, not authorised") >= 3


def test_a_deployed_credential_grants_its_own_topic_only(
    start_mosquitto: Callable[..., Mosquitto], credential: DeviceCredential
) -> None:
    broker = start_mosquitto(
        "deployed",
        extra_password_lines=[credential.password_line],
        extra_acl_lines=credential.acl,
        device_pattern=False,
    )
    assert_only_own_topic(broker, "station", credential)
    assert_wrong_password_refused(broker, credential)


def test_without_the_acl_lines_the_device_may_connect_but_not_publish(
    start_mosquitto: Callable[..., Mosquitto], credential: DeviceCredential
) -> None:
    broker = start_mosquitto(
        "password-only", extra_password_lines=[credential.password_line], device_pattern=False
    )
    with connected(broker, credential.username, credential.password) as device:
        assert device.connack is not None
        assert not device.connack.is_failure
        assert device.publish(OWN_TOPIC, vitals(DEVICE)).value == NOT_AUTHORIZED


@contextlib.contextmanager
def running(broker: Mosquitto) -> Iterator[Mosquitto]:
    """Start ``broker``; stop it and fail if a process of it survives (as conftest's fixtures)."""
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        leftovers = broker.leftover_pids()
        for pid in leftovers:  # each names this test's own folder: ours to kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"{broker.name} left processes running: {leftovers}"


def test_a_deployed_credential_works_with_the_shipped_hardened_configuration(
    pki: Pki, tmp_path: Path, credential: DeviceCredential
) -> None:
    broker = HardenedMosquitto(
        tmp_path / "hardened",
        pki,
        extra_password_lines=[credential.password_line],
        extra_acl_lines=credential.acl,
    )
    try:
        with running(broker):
            assert_only_own_topic(broker, "station-ward-1", credential)
            assert_wrong_password_refused(broker, credential)
    except BaseException:
        print(f"\n{broker.name} log at failure:\n{broker.log_tail()}")
        raise
