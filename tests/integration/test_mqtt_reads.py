"""The station's MQTT client reads its socket in large chunks (:class:`_Client`), against a real
Mosquitto: a burst waiting in the socket arrives whole, in order, each message once, and the last
packets read into memory are handed on without waiting for the socket to bring more. Over plain
TCP one read brings many packets; over TLS one brings one record, which Mosquitto writes per
packet: one read a message instead of paho's three or more. And what the client sends (PUBACKs,
alarm events) goes out between reads while a backlog keeps its socket full."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.services.ingest.mqtt_client import _Client
from tests.integration.live_load import (
    c_publishers,
    connect_client,
    flood_lines,
    own_topic,
    stop_all,
)
from tests.integration.servers.mosquitto import Mosquitto
from tests.waiting import wait_until

BURST = 1000
TOPIC = "healthcare/station/reads-test/burst"
FLOODER = "bed-1"
OUT = "healthcare/station/reads-test/out"


@pytest.fixture
def mosquitto_devices() -> tuple[str, ...]:
    return (FLOODER,)


class _Counting(_Client):
    """The station's client, counting its reads of the socket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0

    def _read_socket(self) -> bytes:
        self.reads += 1
        return super()._read_socket()


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_a_burst_in_the_socket_is_read_in_chunks_whole_and_in_order(
    mosquitto: Mosquitto, tls: bool
) -> None:
    got: list[bytes] = []
    subscribed = threading.Event()
    client = _Counting(CallbackAPIVersion.VERSION2, client_id="reads-test", protocol=mqtt.MQTTv5)
    port = mosquitto.port
    if tls:
        client.tls_set(ca_certs=str(mosquitto.ca_file))
    else:
        assert mosquitto.plain_port is not None
        port = mosquitto.plain_port
    client.username_pw_set("station", mosquitto.passwords["station"])
    client.on_message = lambda _c, _u, msg: got.append(msg.payload)
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_connect = lambda c, *_a: c.subscribe(TOPIC, qos=0)
    client.connect("localhost", port, keepalive=60)
    client.loop_start()
    publisher = connect_client(mosquitto, "station", "reads-test-publisher")
    try:
        assert subscribed.wait(10)
        client.loop_stop()  # the burst waits in the socket, as behind a busy interpreter
        client.reads = 0
        for n in range(BURST):
            publisher.publish(TOPIC, str(n).encode(), qos=1).wait_for_publish(5)
        client.loop_start()
        # No more bytes come after the burst (keepalive 60 s): what was read into memory must
        # be handed on by itself.
        wait_until(lambda: len(got) == BURST, 10, "the whole burst")
        assert got == [str(n).encode() for n in range(BURST)]
        most = BURST + 10 if tls else BURST // 10  # a few more: reads that found nothing
        assert client.reads <= most, f"{client.reads} socket reads for {BURST} messages"
    finally:
        client.loop_stop()
        client.disconnect()
        publisher.loop_stop()
        publisher.disconnect()


def test_what_the_client_sends_goes_out_while_a_backlog_keeps_its_socket_full(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    received = 0
    slow = True
    subscribed = threading.Event()
    # Plain TCP, where one read brings many packets (over TLS one read is one record, one
    # packet, and the memory is empty after each).
    assert mosquitto.plain_port is not None
    client = _Client(CallbackAPIVersion.VERSION2, client_id="reads-busy", protocol=mqtt.MQTTv5)
    client.username_pw_set("station", mosquitto.passwords["station"])

    def on_message(_c: mqtt.Client, _u: object, _msg: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if slow:
            time.sleep(0.0005)  # slower than the flood: the socket never runs dry

    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_connect = lambda c, *_a: c.subscribe(own_topic(FLOODER), qos=0)
    client.connect("localhost", mosquitto.plain_port, keepalive=60)
    client.loop_start()
    listener = connect_client(mosquitto, "station", "reads-test-listener")
    heard = threading.Event()
    listener.on_message = lambda *_a: heard.set()
    listener.subscribe(OUT, qos=1)
    lines = flood_lines(FLOODER, 60_000, heartrate=80)
    flood = c_publishers(mosquitto, FLOODER, lines, tmp_path / "flood", own_topic(FLOODER))
    try:
        assert subscribed.wait(10)
        wait_until(lambda: received > 5_000, 20, "the backlog building up")
        sent = time.monotonic()
        client.publish(OUT, b"alarm", qos=1)
        assert heard.wait(5), "the publish waited behind the backlog"
        assert time.monotonic() - sent < 1.0
        # The backlog was still there: the client goes on reading it after the publish.
        after = received
        wait_until(lambda: received > after + 1_000, 5, "more of the backlog")
    finally:
        slow = False
        stop_all(flood)
        client.disconnect()
        client.loop_stop()
        listener.loop_stop()
        listener.disconnect()
