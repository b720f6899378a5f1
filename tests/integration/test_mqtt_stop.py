"""Both MQTT sessions stop in time even when the stop comes while paho is still connecting, against
a real Mosquitto. paho's ``reconnect()`` forgets a ``disconnect()`` asked meanwhile (it sets the
state anew and drops the queued packets), so the session came up and its thread ran on: a station
stopped right after start failed to stop in CI (``live-mqtt`` did not stop)."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from station.services.ingest.mqtt_client import _Client
from station.services.ingest.paho_loop import join_loop, loop_alive, start_loop
from tests.integration.servers.mosquitto import Mosquitto
from tests.waiting import wait_until


class _HeldConnect(_Client):
    """The station's client whose connection attempt waits until the stop was asked: the race,
    made certain."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_asked = threading.Event()
        self.attempts = 0

    def reconnect(self) -> MQTTErrorCode:
        self.attempts += 1
        self.stop_asked.wait(10)
        return super().reconnect()


def test_a_stop_asked_during_the_connection_attempt_ends_the_session(
    mosquitto: Mosquitto,
) -> None:
    client = _HeldConnect(CallbackAPIVersion.VERSION2, client_id="stop-test", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(mosquitto.ca_file))
    client.username_pw_set("station", mosquitto.passwords["station"])
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect_async("localhost", mosquitto.port)
    start_loop(client, "stop-test-mqtt")
    try:
        wait_until(lambda: client.attempts > 0, 10, "the connection attempt")
        assert client.attempts == 1
        client.disconnect()  # no socket yet: paho marks it disconnected...
        client.stop_asked.set()  # ...and the attempt goes on regardless
        assert join_loop(client, 3.0), "the session's thread ran on after the stop"
        assert connected.is_set(), "the attempt did connect: the race was there to lose"
        assert not loop_alive(client)
    finally:
        client.stop_asked.set()
        if loop_alive(client):
            client.loop_stop()
