"""The lines a revocation prints, applied to a real Mosquitto, end the device's access there.

``station devices revoke`` (and the devices dialog) give the ``mosquitto_passwd -D`` command and
the ACL lines onboarding had the admin add. Here a broker runs with a device's onboarding lines
(only those grant it anything: ``device_pattern=False``); the device connects and publishes; the
admin runs the printed command as printed (with this broker's password file for the path),
deletes the printed ACL lines and reloads Mosquitto (SIGHUP, what ``systemctl reload mosquitto``
sends); then the device's login is refused.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from station.domain.broker_credentials import credential_removal, make_credential
from tests.integration.servers.mosquitto import Mosquitto
from tests.payloads import vitals
from tests.waiting import wait_until

DEVICE = "bedside-9"
TOPIC = f"healthcare/devices/{DEVICE}/vitals"
NOT_AUTHORIZED = 135  # Mosquitto 2.0's CONNACK for an unknown user or a wrong password


class Device:
    """An MQTT 5 client over TLS as the device; remembers its CONNACK and whether it was cut."""

    def __init__(self, broker: Mosquitto, password: str) -> None:
        self.connack: ReasonCode | None = None
        self.dropped = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"dev-{DEVICE}", protocol=mqtt.MQTTv5
        )
        self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.username_pw_set(DEVICE, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.dropped.set()
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"

    def _on_connect(self, _c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        self.connack = rc
        self._connected.set()

    def publish(self) -> None:
        """Publish its vitals at QoS 1 and wait for the PUBACK."""
        info = self.client.publish(TOPIC, vitals(DEVICE), qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_printed_removal_lines_end_the_devices_login_at_the_broker(
    start_mosquitto: Callable[..., Mosquitto],
) -> None:
    credential = make_credential(DEVICE)
    broker = start_mosquitto(
        "revoke",
        extra_password_lines=[credential.password_line],
        extra_acl_lines=credential.acl,
        device_pattern=False,
    )
    device = Device(broker, credential.password)
    try:
        assert device.connack is not None
        assert not device.connack.is_failure, device.connack
        device.publish()

        removal = credential_removal(DEVICE)
        command = shlex.split(removal.password_command(str(broker.password_file)))
        subprocess.run(command, check=True, capture_output=True)
        acl = broker.acl_file.read_text().splitlines()
        assert all(line in acl for line in removal.acl)  # the very lines onboarding added
        kept = [line for line in acl if line not in removal.acl]
        broker.acl_file.write_text("".join(f"{line}\n" for line in kept))
        assert f"{DEVICE}:" not in broker.password_file.read_text()
        os.kill(broker.pid, signal.SIGHUP)  # what `systemctl reload mosquitto` sends
        # Mosquitto re-checks its clients against the reloaded files: the device is cut off.
        wait_until(device.dropped.is_set, 10, "the revoked device disconnected by the reload")
    finally:
        device.close()

    again = Device(broker, credential.password)
    try:
        assert again.connack is not None
        assert again.connack.value == NOT_AUTHORIZED, again.connack
    finally:
        again.close()
