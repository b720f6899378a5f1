"""Load for the live-path tests: C publishers that flood a real broker, a ward of 1 Hz devices,
and a listener that timestamps the station's alarm events as they arrive."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.servers.mosquitto import Mosquitto
from tests.payloads import vitals

LINES_PER_PROCESS = 60_000  # mosquitto_pub -l at QoS 1 stops at 65,535 (PLATFORM-NOTES)


def own_topic(device: str) -> str:
    return f"healthcare/devices/{device}/vitals"


def c_publishers(
    broker: Mosquitto,
    user: str,
    lines: Iterable[bytes],
    folder: Path,
    topic: str,
    processes: int = 1,
) -> list[subprocess.Popen[bytes]]:
    """``mosquitto_pub -l`` processes publishing ``lines`` (split between them) at QoS 1 as
    ``user``, each as fast as the broker takes it."""
    folder.mkdir(parents=True, exist_ok=True)
    batches: list[list[bytes]] = [[] for _ in range(processes)]
    for i, line in enumerate(lines):
        batches[i % processes].append(line)
    procs = []
    for n, batch in enumerate(batches):
        assert len(batch) <= LINES_PER_PROCESS, "mosquitto_pub -l stops at 65,535 messages"
        path = folder / f"{user}-{n}.lines"
        path.write_bytes(b"\n".join(batch) + b"\n")
        command = [
            *("mosquitto_pub", "-h", "localhost", "-p", str(broker.port)),
            *("--cafile", str(broker.ca_file), "-u", user, "-P", broker.passwords[user]),
            *("-i", f"pub-{user}-{n}-{time.monotonic_ns()}", "-t", topic, "-q", "1", "-l"),
        ]
        with path.open("rb") as stdin:
            procs.append(subprocess.Popen(command, stdin=stdin, stderr=subprocess.PIPE))
    return procs


def flood_lines(device: str, count: int, **values: Any) -> list[bytes]:
    """``count`` valid messages of ``device`` stamped now, without ``seq``: several publishers
    interleave them, and a counter would read as gaps and late messages."""
    now = time.time()
    return [vitals(device, at=now + i * 1e-4, **values) for i in range(count)]


def stop_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


def connect_client(broker: Mosquitto, user: str, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.ca_file))
    client.username_pw_set(user, broker.passwords[user])
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("localhost", broker.port)
    client.loop_start()
    assert connected.wait(10), f"{user} could not connect"
    return client


class AlarmListener:
    """Subscribes to the station's alarm events; each is kept with its monotonic arrival time."""

    def __init__(self, broker: Mosquitto, station_id: str = "ward-test") -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._client = connect_client(broker, "station", f"alarm-listener-{time.monotonic_ns()}")
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_a: subscribed.set()
        self._client.subscribe(f"healthcare/station/{station_id}/alarms", qos=1)
        assert subscribed.wait(10)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.events.append((time.monotonic(), json.loads(msg.payload)))

    def first(
        self, match: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[float, dict[str, Any]]:
        """The first event ``match`` accepts (waiting up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for at, event in self.events:
                    if match(event):
                        return at, event
            time.sleep(0.02)
        raise AssertionError(f"no matching alarm event in {timeout} s; saw {self.kinds()}")

    def kinds(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return [(e["bed"], e["parameter"], e["state"]) for _, e in self.events]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Devices:
    """One MQTT client per device, each publishing on its own topic."""

    def __init__(self, broker: Mosquitto, devices: Iterable[str]) -> None:
        self.clients = {
            d: connect_client(broker, d, f"dev-{d}-{time.monotonic_ns()}") for d in devices
        }
        self.seq = dict.fromkeys(self.clients, 0)
        self._lock = threading.Lock()

    def send(self, device: str, **values: Any) -> float:
        """Publish one message now (QoS 1, not waited for); its monotonic publish time."""
        with self._lock:
            self.seq[device] += 1
            seq = self.seq[device]
        payload = vitals(device, seq=seq, **values)
        at = time.monotonic()
        self.clients[device].publish(own_topic(device), payload, qos=1)
        return at

    def close(self) -> None:
        for client in self.clients.values():
            client.disconnect()
            client.loop_stop()


class Ward1Hz:
    """The devices send a normal message every second from a thread until :meth:`stop`."""

    def __init__(self, devices: Devices, names: Iterable[str]) -> None:
        self._devices, self._names = devices, list(names)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ward-1hz", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in self._names:
                self._devices.send(name, heartrate=75)
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
