"""The station's MQTT client reads its socket in large chunks (:class:`_Client`), against a real
Mosquitto: a burst waiting in the socket arrives whole, in order, each message once, and the last
packets read into memory are handed on without waiting for the socket to bring more. Over plain
TCP one read brings many packets; over TLS one brings one record, which Mosquitto writes per
packet: one read a message instead of paho's three or more."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.services.ingest.mqtt_client import _Client
from tests.integration.live_load import connect_client
from tests.integration.servers.mosquitto import Mosquitto
from tests.waiting import wait_until

BURST = 1000
TOPIC = "healthcare/station/reads-test/burst"


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_a_burst_in_the_socket_is_read_in_chunks_whole_and_in_order(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, tls: bool
) -> None:
    reads: list[int] = []
    socket_read = mqtt.Client._sock_recv

    def counted(self: mqtt.Client, bufsize: int) -> bytes:
        if isinstance(self, _Client):
            reads.append(bufsize)
        return socket_read(self, bufsize)

    monkeypatch.setattr(mqtt.Client, "_sock_recv", counted)
    got: list[bytes] = []
    subscribed = threading.Event()
    client = _Client(CallbackAPIVersion.VERSION2, client_id="reads-test", protocol=mqtt.MQTTv5)
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
        reads.clear()
        for n in range(BURST):
            publisher.publish(TOPIC, str(n).encode(), qos=1).wait_for_publish(5)
        client.loop_start()
        # No more bytes come after the burst (keepalive 60 s): what was read into memory must
        # be handed on by itself.
        wait_until(lambda: len(got) == BURST, 10, "the whole burst")
        assert got == [str(n).encode() for n in range(BURST)]
        most = BURST + 10 if tls else BURST // 10  # a few more: reads that found nothing
        assert len(reads) <= most, f"{len(reads)} socket reads for {BURST} messages"
    finally:
        client.loop_stop()
        client.disconnect()
        publisher.loop_stop()
        publisher.disconnect()
