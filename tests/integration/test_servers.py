"""The fixtures give the station the servers it is promised: proven against the real binaries.

If these fail, every other integration test would fail for the wrong reason; and each one pins a
server behaviour the station relies on (the ACL that ties a device to its credential, the broker's
persistence across a restart, the historian's series names and deduplication).
"""

from __future__ import annotations

import json
import queue
import socket
import ssl
import threading
import time
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.processes import Series
from tests.integration.servers.victoria import VictoriaMetrics

TIMEOUT_S = 10.0
RC_NOT_AUTHORIZED = 135
RC_BAD_CREDENTIALS = 134

T = TypeVar("T")


class Probe:
    """A paho 2.x MQTT 5 client whose callbacks only hand events to queues the test waits on.

    Callbacks run on paho's network thread and never raise: an exception there would end that
    thread silently and the test would time out instead of failing with a reason.
    """

    def __init__(
        self,
        broker: Mosquitto,
        username: str | None,
        password: str | None = None,
        *,
        client_id: str = "",
        tls: bool = True,
        port: int | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.host = broker.host
        default_port = broker.port if tls else broker.plain_port
        assert default_port is not None
        self.port = port if port is not None else default_port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=ca_file or str(broker.ca_file))
        self.connacks: queue.Queue[tuple[ReasonCode, bool]] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.disconnected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.acks.put((mid, rc))
        self.client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put(rcs)
        self.client.on_disconnect = lambda *_args: self.disconnected.set()

    def _on_connect(
        self, _client: Any, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self.connacks.put((reason, bool(flags.session_present)))

    def connect(
        self, *, clean_start: bool = True, session_expiry_s: int | None = None
    ) -> tuple[ReasonCode, bool]:
        """Connect and return the CONNACK's reason code and session-present flag."""
        properties = None
        if session_expiry_s is not None:
            # Without it paho asks for none, and the broker forgets the session on disconnect.
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = session_expiry_s
        self.client.connect(
            self.host, self.port, keepalive=30, clean_start=clean_start, properties=properties
        )
        self.client.loop_start()
        return _get(self.connacks, "CONNACK")

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait until the broker grants it."""
        self.client.subscribe(topic, qos=1)
        (granted,) = _get(self.subacks, f"SUBACK for {topic}")
        assert granted.value == 1, f"subscription to {topic} refused: {granted}"

    def publish(self, topic: str, payload: dict[str, Any]) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        while True:
            mid, reason = _get(self.acks, f"PUBACK for {topic}")
            if mid == info.mid:
                return reason

    def next_message(self) -> mqtt.MQTTMessage:
        """Return the next message received, waiting for it."""
        return _get(self.messages, "a message")

    def close(self) -> None:
        """Disconnect (keeping a persistent session, if one was asked for) and stop paho."""
        if self.client.is_connected():
            self.client.disconnect()
            self.disconnected.wait(TIMEOUT_S)
        self.client.loop_stop()


def _get(source: queue.Queue[T], what: str) -> T:
    try:
        return source.get(timeout=TIMEOUT_S)
    except queue.Empty:
        raise AssertionError(f"no {what} within {TIMEOUT_S} s") from None


@pytest.fixture
def probes() -> Any:
    """Make probes and close them all after the test, whatever happened in it."""
    made: list[Probe] = []

    def make(*args: Any, **kwargs: Any) -> Probe:
        probe = Probe(*args, **kwargs)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        probe.close()


def vitals(device: str, seq: int) -> dict[str, Any]:
    """A payload of the contract's shape."""
    return {
        "device_id": device,
        "timestamp": "2025-01-01T12:00:00Z",
        "heartrate": 72,
        "oxygen": 98,
        "seq": seq,
    }


def _connected_station(
    broker: Mosquitto, probes: Any, client_id: str = "", session_expiry_s: int | None = None
) -> Probe:
    """Connect as the station and subscribe to everything it may read."""
    station = probes(broker, "station", broker.passwords["station"], client_id=client_id)
    # Mosquitto 2.0.11 writes to disk only sessions whose CONNECT said clean_start=False: one
    # opened with clean_start=True survives a disconnect but not a broker restart. A persistent
    # session is therefore asked for with clean_start=False from its very first connect.
    reason, _ = station.connect(
        clean_start=session_expiry_s is None, session_expiry_s=session_expiry_s
    )
    assert not reason.is_failure, reason
    station.subscribe("healthcare/#")
    return station


# --- Mosquitto --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "topic"),
    [
        ("monitor-a", "healthcare/devices/monitor-a/vitals"),
        ("sensor", "healthcare/sensor_data"),
    ],
)
def test_publisher_reaches_station_over_tls(
    mosquitto: Mosquitto, probes: Any, user: str, topic: str
) -> None:
    """A device on its own topic, and the document's sensor on the single topic, reach the
    station through the TLS listener with their own credentials."""
    station = _connected_station(mosquitto, probes)
    device = probes(mosquitto, user, mosquitto.passwords[user])
    assert not device.connect()[0].is_failure

    assert device.publish(topic, vitals("monitor-a", 1)).value == 0

    message = station.next_message()
    assert message.topic == topic
    assert json.loads(message.payload) == vitals("monitor-a", 1)


@pytest.mark.parametrize(
    ("user", "denied_topic", "allowed_topic"),
    [
        (
            "monitor-a",
            "healthcare/devices/monitor-b/vitals",
            "healthcare/devices/monitor-a/vitals",
        ),
        ("monitor-a", "healthcare/sensor_data", "healthcare/devices/monitor-a/vitals"),
        ("sensor", "healthcare/devices/monitor-a/vitals", "healthcare/sensor_data"),
        ("station", "healthcare/devices/monitor-a/vitals", "healthcare/station/s1/status"),
    ],
)
def test_acl_stops_publishing_as_someone_else(
    mosquitto: Mosquitto, probes: Any, user: str, denied_topic: str, allowed_topic: str
) -> None:
    """A credential cannot put words in another device's topic: the broker refuses the PUBLISH
    and the station never sees it. That is what lets the station trust the device in the topic.

    The refusal is proven without waiting for nothing: the same client then publishes on its own
    topic, and the broker handles one connection's packets in order, so the station's first
    message must be that one.
    """
    station = _connected_station(mosquitto, probes)
    sender = probes(mosquitto, user, mosquitto.passwords[user])
    assert not sender.connect()[0].is_failure

    refused = sender.publish(denied_topic, vitals("monitor-b", 1))
    accepted = sender.publish(allowed_topic, vitals("monitor-a", 2))

    assert refused.value == RC_NOT_AUTHORIZED, refused
    assert accepted.value == 0, accepted
    message = station.next_message()
    assert (message.topic, json.loads(message.payload)["seq"]) == (allowed_topic, 2)
    assert station.messages.empty()


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
@pytest.mark.parametrize("credentials", ["wrong-password", "unknown-user", "anonymous"])
def test_bad_credentials_are_refused(
    mosquitto: Mosquitto, probes: Any, tls: bool, credentials: str
) -> None:
    """No listener lets in a wrong password, an unknown user or an anonymous client."""
    username, password = {
        "wrong-password": ("station", mosquitto.passwords["station"] + "x"),
        "unknown-user": ("intruder", mosquitto.passwords["station"]),
        "anonymous": (None, None),
    }[credentials]
    probe = probes(mosquitto, username, password, tls=tls)

    reason, _ = probe.connect()

    assert reason.is_failure
    assert reason.value in {RC_NOT_AUTHORIZED, RC_BAD_CREDENTIALS}, reason
    assert probe.disconnected.wait(TIMEOUT_S), "the broker kept a refused client connected"


def test_plain_tcp_to_the_tls_port_gets_no_mqtt(mosquitto: Mosquitto, probes: Any) -> None:
    """A client that forgot TLS is dropped before any MQTT is spoken, credentials or not."""
    probe = probes(
        mosquitto, "station", mosquitto.passwords["station"], tls=False, port=mosquitto.port
    )
    probe.client.connect(mosquitto.host, mosquitto.port)
    probe.client.loop_start()
    assert probe.disconnected.wait(TIMEOUT_S), "the TLS port kept a plain-TCP client connected"
    assert probe.connacks.empty()

    # The same at the byte level: a CONNECT packet gets a TLS alert or nothing, never a CONNACK.
    # MQTT 5 CONNECT: "MQTT", level 5, clean start, keep-alive 60, no properties, empty client id.
    connect_packet = bytes.fromhex("100d00044d5154540502003c000000")
    with socket.create_connection((mosquitto.host, mosquitto.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(connect_packet)
        try:
            reply = sock.recv(16)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"\x20"), reply


def test_tls_client_refuses_a_server_it_does_not_trust(mosquitto: Mosquitto) -> None:
    """The broker's certificate is from the test CA only: a client with the system CAs refuses
    it, so the tests do prove that the station must be given the CA file."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.tls_set()  # the system's CAs, not ours
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(mosquitto.host, mosquitto.port)


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_queued_message_survives_broker_restart(
    mosquitto: Mosquitto, probes: Any, how: str
) -> None:
    """A QoS 1 message published while the station is away waits in its persistent session, and
    survives an orderly broker restart, and a crash too once the next autosave (1 s) ran."""
    station = _connected_station(mosquitto, probes, "station-s1", session_expiry_s=3600)
    station.close()  # offline; the broker keeps the session for the expiry it asked for

    device = probes(mosquitto, "monitor-a", mosquitto.passwords["monitor-a"])
    assert not device.connect()[0].is_failure
    acknowledged_at = time.time()
    assert device.publish("healthcare/devices/monitor-a/vitals", vitals("monitor-a", 7)).value == 0
    device.close()

    old_pid = mosquitto.pid
    if how == "restart":
        mosquitto.restart()  # SIGTERM: the broker saves everything on the way out
    else:
        _wait_until(
            lambda: (
                mosquitto.persistence_file.exists()
                and mosquitto.persistence_file.stat().st_mtime > acknowledged_at
            ),
            "an autosave after the PUBACK",
        )
        mosquitto.kill()
        mosquitto.start()
    assert mosquitto.pid != old_pid

    station = probes(mosquitto, "station", mosquitto.passwords["station"], client_id="station-s1")
    reason, session_present = station.connect(clean_start=False, session_expiry_s=3600)
    assert not reason.is_failure, reason
    assert session_present
    message = station.next_message()  # no new SUBSCRIBE: the session still has it
    assert message.topic == "healthcare/devices/monitor-a/vitals"
    assert json.loads(message.payload)["seq"] == 7


def _wait_until(condition: Any, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


# --- victoria-metrics -------------------------------------------------------------------------

LINE = r"vitals,station=s1,device=d1,bed=Bed\ 1 heartrate=72,oxygen=98 1735732800000"
TIME_MS = 1735732800000
VITALS = '{__name__=~"vitals_.*"}'


def _write(victoria: VictoriaMetrics, *lines: str) -> None:
    """Write through influxdb-client's v2 API, synchronously, as the station's historian does."""
    with InfluxDBClient(url=victoria.url, token="unused", org="o") as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        for line in lines:
            write_api.write(bucket="vitals", record=line, write_precision=WritePrecision.MS)


def _by_name(series: list[Series]) -> dict[str, Series]:
    return {s["metric"]["__name__"]: s for s in series}


def test_influx_line_reads_back_as_one_series_per_field(victoria: VictoriaMetrics) -> None:
    """The historian's line protocol lands as ``vitals_<field>`` series with the tags as labels,
    the value and the millisecond timestamp unchanged (and org and bucket dropped)."""
    _write(victoria, LINE)

    series = _by_name(victoria.wait_for(VITALS, lambda found: len(found) == 2))

    labels = {"station": "s1", "device": "d1", "bed": "Bed 1"}
    assert series["vitals_heartrate"] == {
        "metric": {"__name__": "vitals_heartrate", **labels},
        "values": [72],
        "timestamps": [TIME_MS],
    }
    assert series["vitals_oxygen"]["metric"] == {"__name__": "vitals_oxygen", **labels}
    assert (series["vitals_oxygen"]["values"], series["vitals_oxygen"]["timestamps"]) == (
        [98],
        [TIME_MS],
    )


def test_same_point_written_twice_counts_once(victoria: VictoriaMetrics) -> None:
    """A retried write (after a timeout the server did not report) must not double a point.

    A later point is written last and waited for: once it is visible, so are the two before it.
    """
    later = LINE.replace(str(TIME_MS), str(TIME_MS + 1000))
    _write(victoria, LINE, LINE, later)

    series = victoria.wait_for(
        '{__name__="vitals_heartrate"}',
        lambda found: bool(found) and TIME_MS + 1000 in found[0]["timestamps"],
    )

    assert series[0]["timestamps"] == [TIME_MS, TIME_MS + 1000]
    assert series[0]["values"] == [72, 72]


def test_points_survive_a_restart(victoria: VictoriaMetrics) -> None:
    """An orderly restart keeps the store: the fixture's restart() is safe for outage tests."""
    _write(victoria, LINE)
    before = victoria.wait_for(VITALS, lambda found: len(found) == 2)
    old_pid = victoria.pid

    victoria.restart()

    assert victoria.pid != old_pid
    after = victoria.export(VITALS)
    assert _by_name(after) == _by_name(before)
