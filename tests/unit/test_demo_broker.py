"""The embedded demo broker with the simulator against it: in-process, no external server.

Waits are on events with deadlines; the only timed part is the simulator's own duration.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from station.services.demo.broker import THREAD_NAME as BROKER_THREAD
from station.services.demo.broker import EmbeddedBroker
from station.services.demo.simulator import THREAD_NAME as SIM_THREAD
from station.services.demo.simulator import Simulator, SimulatorConfig

DEADLINE_S = 10.0


def thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}


@pytest.fixture
def broker() -> Iterator[tuple[EmbeddedBroker, int]]:
    embedded = EmbeddedBroker()
    port = embedded.start(timeout=DEADLINE_S)
    yield embedded, port
    embedded.stop()


class Subscriber:
    """A paho 3.1.1 client on its own loop thread that records what arrives, by device."""

    def __init__(self, port: int, client_id: str, *, clean: bool = True) -> None:
        self.port = port
        self.subscribed = threading.Event()
        self.all_devices = threading.Event()
        self.all_messages = threading.Event()
        self.by_device: dict[str, int] = {}
        self.payloads: list[bytes] = []
        self.want_devices = 0
        self.want_messages = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=clean,
        )
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.payloads.append(bytes(msg.payload))
        device = json.loads(msg.payload)["device_id"]
        self.by_device[device] = self.by_device.get(device, 0) + 1
        if self.want_devices and len(self.by_device) >= self.want_devices:
            self.all_devices.set()
        if self.want_messages and len(self.payloads) >= self.want_messages:
            self.all_messages.set()

    def connect(self, *, subscribe: bool = True) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if subscribe:
            self.client.subscribe("healthcare/#", qos=1)
            assert self.subscribed.wait(DEADLINE_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_simulated_ward_reaches_a_subscriber_and_everything_stops(
    broker: tuple[EmbeddedBroker, int],
) -> None:
    embedded, port = broker
    assert BROKER_THREAD in thread_names()
    sub = Subscriber(port, "test-sub")
    sub.want_devices = 8
    sub.connect()
    sim = Simulator(
        SimulatorConfig("127.0.0.1", port, beds=8, rate=5.0, duration=2.0, protocol="3.1.1")
    )
    sim.start()
    assert SIM_THREAD in thread_names()
    assert sim.connected.wait(DEADLINE_S), "the simulator never connected"
    assert sub.all_devices.wait(DEADLINE_S), f"devices seen: {sorted(sub.by_device)}"
    assert set(sub.by_device) == {f"sim-bed{n:02d}" for n in range(1, 9)}

    t0 = time.monotonic()
    assert sim.stop(timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    assert sim.published >= 8
    sub.close()
    t0 = time.monotonic()
    assert embedded.stop(timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    assert not embedded.running
    assert not sim.running
    assert BROKER_THREAD not in thread_names()
    assert SIM_THREAD not in thread_names()


def test_full_run_is_paced_and_delivered(broker: tuple[EmbeddedBroker, int]) -> None:
    _, port = broker
    sub = Subscriber(port, "test-count")
    sub.want_messages = 80
    sub.connect()
    sim = Simulator(
        SimulatorConfig("127.0.0.1", port, beds=8, rate=5.0, duration=2.0, protocol="3.1.1")
    )
    finished = threading.Event()

    def run_to_end() -> None:  # as the CLI would: run() blocks until the duration ends
        sim.run()
        finished.set()

    runner = threading.Thread(target=run_to_end, name="test-sim-run")
    runner.start()
    assert finished.wait(DEADLINE_S)
    runner.join(DEADLINE_S)
    # 2 s at 5 Hz is 10 ticks of 8 beds; every one acknowledged by the broker.
    assert sim.published == 80
    assert sub.all_messages.wait(DEADLINE_S), f"received {len(sub.payloads)}"
    sub.close()
    assert len(sub.payloads) == 80
    assert all(count == 10 for count in sub.by_device.values())


def test_persistent_session_keeps_qos1_messages_while_away(
    broker: tuple[EmbeddedBroker, int],
) -> None:
    _, port = broker
    station = Subscriber(port, "test-station", clean=False)
    station.connect()
    station.close()  # the station restarts; its session and subscription stay on the broker

    sim = Simulator(
        SimulatorConfig("127.0.0.1", port, beds=2, rate=5.0, duration=0.5, protocol="3.1.1")
    )
    sim.run()
    assert sim.published == 6

    back = Subscriber(port, "test-station", clean=False)
    back.want_devices = 2
    back.connect(subscribe=False)
    assert back.all_devices.wait(DEADLINE_S), "queued messages were not delivered on reconnect"
    back.close()


def test_start_fails_clearly_on_a_busy_port(broker: tuple[EmbeddedBroker, int]) -> None:
    _, port = broker
    second = EmbeddedBroker(port=port)
    with pytest.raises(RuntimeError, match="could not listen"):
        second.start(timeout=DEADLINE_S)
    assert not second.running


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="rate"):
        SimulatorConfig("127.0.0.1", 1883, rate=0)
    with pytest.raises(ValueError, match="scenario"):
        SimulatorConfig("127.0.0.1", 1883, scenario="chaos")
    with pytest.raises(ValueError, match="protocol"):
        SimulatorConfig("127.0.0.1", 1883, protocol="4")
    assert "secret" not in repr(SimulatorConfig("h", 1883, username="u", password="secret"))


def test_simulator_without_a_broker_retries_and_still_stops() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sim = Simulator(SimulatorConfig("127.0.0.1", port, beds=2, rate=5.0, protocol="3.1.1"))
    sim.start()
    assert not sim.connected.wait(0.5)
    t0 = time.monotonic()
    assert sim.stop(timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    assert SIM_THREAD not in thread_names()
    assert sim.published == 0


def _connect_code(port: int, user: str | None, password: str | None) -> str:
    """The CONNACK reason the embedded broker gives these credentials."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"t-{user}-{password}",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    if user is not None:
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


def test_an_onboarded_device_needs_its_password_others_stay_free(
    broker: tuple[EmbeddedBroker, int],
) -> None:
    server, port = broker
    server.credentials.add("mon-9", "handed-out-once")
    assert _connect_code(port, "mon-9", "handed-out-once") == "Success"
    assert _connect_code(port, "mon-9", "guess") == "Not authorized"
    assert _connect_code(port, None, None) == "Success"  # the simulated ward, loopback only
    assert _connect_code(port, "sim-bed01", "") == "Success"
