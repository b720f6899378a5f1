"""Issue 5 against a real Mosquitto: TLS 1.2+ with the configured CA and hostname verification,
mTLS, passwords, the reason of every refusal in words (not just "disconnected"), no retry storm
after a refusal, and the shipped hardened broker configuration and ACL.

The station's own MQTT client (:class:`MqttWorker`) is driven directly and its
``connection_changed`` states are what the status bar would show. Certificates (a second CA, an
expired server certificate, one for another host name) are made for this test session only.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from station.app import Station
from station.config.settings import Settings
from station.domain import ingest
from station.domain.messages import Accepted, Rejection
from station.domain.status import ConnectionState
from station.services.ingest.mqtt_reasons import REFUSED_MIN_S
from station.services.ingest.mqtt_worker import MqttWorker
from tests.integration.servers.mosquitto import HardenedMosquitto, Mosquitto
from tests.integration.servers.pki import Pki, issue_server_cert
from tests.integration.servers.proxy import TcpProxy
from tests.integration.station_harness import station_settings
from tests.payloads import vitals

WAIT_MS = 15_000
NOT_AUTHORIZED = 135
STORM_WINDOW_S = 12.0  # retries at 0, 5 and 15 s: two attempts fit, a third must not
HARDENED_STATION = {"id": "ward-1"}  # the station of config/mosquitto-acl.example
HARDENED_USER = "station-ward-1"


# --- the station's client, observed -----------------------------------------------------------


@dataclass
class Observed:
    """What one :class:`MqttWorker` reported, appended from paho's thread."""

    worker: MqttWorker
    states: list[ConnectionState] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    peer_events: list[tuple[str, object]] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        return bool(self.states) and self.states[-1].connected

    def failure(self) -> str | None:
        """The detail of the last state if it says not connected."""
        return self.states[-1].detail if self.states and not self.states[-1].connected else None


@contextmanager
def running_worker(settings: Settings, password: str) -> Iterator[Observed]:
    """A started :class:`MqttWorker`; stopped (and checked stopped) on exit."""
    worker = MqttWorker(settings, password)
    seen = Observed(worker)
    direct = Qt.ConnectionType.DirectConnection  # recorded in paho's thread, no event loop needed

    def on_ready() -> None:
        items, _more = worker.take(1000)
        for (topic, payload, at), delivery in items:  # parsed as the core parses them
            result = ingest.parse(topic, payload, at, settings.mqtt.topics)
            (seen.accepted if isinstance(result, Accepted) else seen.rejected).append(result)
            worker.ack([delivery])

    worker.connection_changed.connect(seen.states.append, direct)
    worker.messages_ready.connect(on_ready, direct)
    worker.peer_event.connect(lambda station, ev: seen.peer_events.append((station, ev)), direct)
    worker.start()
    try:
        yield seen
    finally:
        assert worker.stop(), "the MQTT thread did not stop in time"
        assert not worker.alive()


def refused_with(qtbot: QtBot, seen: Observed, *parts: str) -> str:
    """Wait for a 'not connected' state and return its detail, which must contain ``parts``."""
    qtbot.waitUntil(lambda: seen.failure() is not None, timeout=WAIT_MS)
    detail = seen.failure()
    assert detail is not None
    for part in parts:
        assert part in detail, f"{part!r} not in {detail!r}"
    assert not any(s.connected for s in seen.states), seen.states
    return detail


def broker_log(broker: Mosquitto) -> str:
    return broker.log_file.read_text(errors="replace") if broker.log_file.exists() else ""


# --- a device -----------------------------------------------------------------------------------


class Device:
    """A device's MQTT 5 client over TLS that returns each PUBACK's reason code."""

    def __init__(self, broker: Mosquitto, user: str, client_id: str | None = None) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"dev-{user}", protocol=mqtt.MQTTv5
        )
        self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.username_pw_set(user, broker.passwords[user])
        self._acks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self._connack: ReasonCode | None = None
        self.disconnected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda *_args: self.disconnected.set()
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        with self._cond:
            assert self._cond.wait_for(lambda: self._connack is not None, 10), "no CONNACK"
        assert self._connack is not None
        assert not self._connack.is_failure, f"device {user} refused: {self._connack}"

    def _on_connect(self, _c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        with self._cond:
            self._connack = rc
            self._cond.notify_all()

    def _on_publish(
        self, _c: object, _u: object, mid: int, rc: ReasonCode, _p: Properties | None
    ) -> None:
        with self._cond:
            self._acks[mid] = rc
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason."""
        info = self.client.publish(topic, payload, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self._acks, 10), "no PUBACK"
            return self._acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def device(broker: Mosquitto, user: str, client_id: str | None = None) -> Iterator[Device]:
    dev = Device(broker, user, client_id)
    try:
        yield dev
    finally:
        dev.close()


# --- TLS: the right CA, and the refusals with their reasons ------------------------------------


def test_the_right_ca_connects_with_tls_1_2_or_later(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    settings = station_settings(mosquitto, tmp_path)  # host "localhost": the name is verified
    with running_worker(settings, mosquitto.passwords["station"]) as seen:
        qtbot.waitUntil(lambda: seen.connected, timeout=WAIT_MS)
        assert seen.states[-1].detail.startswith("connected")
        sock = seen.worker._client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in {"TLSv1.2", "TLSv1.3"}
        assert sock.server_hostname == "localhost"


def test_another_ca_is_refused_with_the_reason_and_not_retried_fast(
    qtbot: QtBot, mosquitto: Mosquitto, other_pki: Pki, tmp_path: Path
) -> None:
    with TcpProxy(mosquitto.host, mosquitto.port) as proxy:
        settings = station_settings(
            mosquitto, tmp_path, mqtt={"port": proxy.port, "ca_file": str(other_pki.ca_cert)}
        )
        with running_worker(settings, mosquitto.passwords["station"]) as seen:
            detail = refused_with(qtbot, seen, "TLS: certificate verify failed", "wrong CA?")
            assert detail.startswith("TLS: certificate verify failed: ")
            # A verification failure is not retried at once: nothing else within 5 s.
            first = proxy.attempts()[0]
            qtbot.waitUntil(lambda: time.monotonic() >= first + REFUSED_MIN_S, timeout=WAIT_MS)
            assert len(proxy.attempts()) == 1, proxy.attempts()
    # And the broker saw the station reject its certificate.
    assert "alert unknown ca" in broker_log(mosquitto)


def test_an_expired_server_certificate_is_refused_with_the_reason(
    qtbot: QtBot, pki: Pki, start_mosquitto: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    expired = issue_server_cert(pki, tmp_path / "certs", "expired", expired=True)
    broker = start_mosquitto("expired", server_cert=expired)
    settings = station_settings(broker, tmp_path)
    with running_worker(settings, broker.passwords["station"]) as seen:
        detail = refused_with(qtbot, seen, "TLS: certificate has expired")
    assert detail == "TLS: certificate has expired (the broker's certificate: renew it)"


def test_a_hostname_mismatch_is_refused_with_the_reason(
    qtbot: QtBot, pki: Pki, start_mosquitto: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    elsewhere = issue_server_cert(pki, tmp_path / "certs", "elsewhere", ["broker.example.org"])
    broker = start_mosquitto("elsewhere", server_cert=elsewhere)
    settings = station_settings(broker, tmp_path)  # connects to "localhost"
    with running_worker(settings, broker.passwords["station"]) as seen:
        refused_with(
            qtbot, seen, "TLS: hostname mismatch: certificate is not valid for 'localhost'"
        )


def test_plain_mqtt_to_the_tls_port_is_refused_with_the_reason(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    settings = station_settings(mosquitto, tmp_path, mqtt={"tls": False, "ca_file": ""})
    with running_worker(settings, mosquitto.passwords["station"]) as seen:
        refused_with(
            qtbot,
            seen,
            "broker closed the connection before answering MQTT",
            "set mqtt.tls = true",
        )
    # Not one byte of MQTT got through: the broker's TLS layer refused the plain CONNECT.
    assert "wrong version number" in broker_log(mosquitto)
    assert "New client connected" not in broker_log(mosquitto)


def test_tls_to_a_plain_port_is_refused_with_the_reason(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    assert mosquitto.plain_port is not None
    settings = station_settings(mosquitto, tmp_path, mqtt={"port": mosquitto.plain_port})
    with running_worker(settings, mosquitto.passwords["station"]) as seen:
        detail = refused_with(qtbot, seen)
    assert detail == "TLS: broker did not answer TLS (plain MQTT port?)"


def test_mtls_connects_with_the_client_certificate_and_says_why_without_it(
    qtbot: QtBot,
    pki: Pki,
    other_pki: Pki,
    start_mosquitto: Callable[..., Mosquitto],
    tmp_path: Path,
) -> None:
    broker = start_mosquitto("mtls", require_certificate=True)
    password = broker.passwords["station"]
    with_cert = {"client_cert": str(pki.client_cert), "client_key": str(pki.client_key)}
    settings = station_settings(broker, tmp_path / "ok", mqtt=with_cert)
    with running_worker(settings, password) as seen:
        qtbot.waitUntil(lambda: seen.connected, timeout=WAIT_MS)
        sock = seen.worker._client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in {"TLSv1.2", "TLSv1.3"}
    # Without a certificate, and with one from a CA the broker does not trust:
    with running_worker(station_settings(broker, tmp_path / "none"), password) as seen:
        refused_with(qtbot, seen, "TLS: broker requires a client certificate")
    wrong_ca = {"client_cert": str(other_pki.client_cert), "client_key": str(other_pki.client_key)}
    with running_worker(
        station_settings(broker, tmp_path / "wrong", mqtt=wrong_ca), password
    ) as seen:
        # Under TLS 1.3 the broker's alert about the client certificate comes after the
        # handshake, and may lose the race with its close ("closed the connection before
        # answering MQTT"); the worker retries within 5 s, and an attempt names the reason.
        refused = "TLS: broker refused the client certificate"

        def named() -> str | None:
            found = [s.detail for s in seen.states if not s.connected and refused in s.detail]
            return found[-1] if found else None

        qtbot.waitUntil(lambda: named() is not None, timeout=2 * WAIT_MS)
        assert "unknown ca" in (named() or "")
        assert not any(s.connected for s in seen.states), seen.states
    log = broker_log(broker)
    assert log.count("New client connected") == 1
    assert "peer did not return a certificate" in log


# --- credentials ------------------------------------------------------------------------------


def test_a_wrong_password_shows_rejected_credentials_and_retries_no_faster_than_every_5_s(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with TcpProxy(mosquitto.host, mosquitto.port) as proxy:
        settings = station_settings(mosquitto, tmp_path, mqtt={"port": proxy.port})
        with running_worker(settings, "not-the-password") as seen:
            refused_with(qtbot, seen, "broker rejected credentials")
            first = proxy.attempts()[0]
            # Retries at +5 s and then +15 s (doubling): two attempts in the window, not three.
            qtbot.waitUntil(
                lambda: time.monotonic() >= first + STORM_WINDOW_S,
                timeout=int((STORM_WINDOW_S + 5) * 1000),
            )
            attempts = [t for t in proxy.attempts() if t < first + STORM_WINDOW_S]
            states = list(seen.states)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) == 2, f"attempts at {[round(t - first, 2) for t in attempts]} s"
    assert all(gap >= REFUSED_MIN_S for gap in gaps), gaps
    # Each attempt reached the broker and was refused there...
    assert broker_log(mosquitto).count("disconnected, not authorised") >= len(attempts)
    # ...and a refusal repeated is one state, not a new change at every retry.
    assert len(states) == 1, states
    assert states[0].detail == (
        "broker rejected credentials (Not authorized): check mqtt.username and its password"
    )


def test_a_wrong_password_over_mqtt_3_1_1_shows_the_same_reason(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    settings = station_settings(mosquitto, tmp_path, mqtt={"protocol": "3.1.1"})
    with running_worker(settings, "not-the-password") as seen:
        refused_with(qtbot, seen, "broker rejected credentials")


def test_a_broker_that_is_not_there_says_connection_refused(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = mosquitto.port
    mosquitto.stop()
    settings = station_settings(mosquitto, tmp_path)
    with running_worker(settings, mosquitto.passwords["station"]) as seen:
        detail = refused_with(qtbot, seen)
    assert detail.startswith(f"cannot reach broker localhost:{port}: connection refused")


# --- the shipped hardened configuration ----------------------------------------------------------


def hardened_settings(broker: HardenedMosquitto, data_dir: Path) -> Settings:
    """The station of the shipped ACL: id ``ward-1``, user (and client id) ``station-ward-1``."""
    return station_settings(
        broker, data_dir, station=HARDENED_STATION, mqtt={"username": HARDENED_USER}
    )


def test_the_hardened_config_loads_and_refuses_anonymous_clients_and_big_packets(
    qtbot: QtBot, hardened_mosquitto: HardenedMosquitto, tmp_path: Path
) -> None:
    broker = hardened_mosquitto
    output = broker.output_file.read_text(errors="replace")
    assert f"Loading config file {broker.include_dir / 'hardened.conf'}" in output
    assert f"Loading config file {broker.include_dir / 'ward.conf'}" in output
    log = broker_log(broker)
    assert "Error" not in log
    # The TLS listener is the only one: no default plain listener on 1883.
    listening = [line for line in log.splitlines() if "listen socket on port" in line]
    assert listening, log
    assert all(line.endswith(f"port {broker.port}.") for line in listening), listening
    # max_packet_size: a packet over 32 KiB costs its sender the connection.
    with device(broker, "monitor-a") as dev:
        dev.client.publish("healthcare/devices/monitor-a/vitals", b" " * 40_000, qos=1)
        assert dev.disconnected.wait(10), "a 40 kB packet was accepted"
    qtbot.waitUntil(
        lambda: "monitor-a disconnected due to oversize packet" in broker_log(broker),
        timeout=WAIT_MS,
    )
    anonymous = station_settings(broker, tmp_path, station=HARDENED_STATION, mqtt={"username": ""})
    with running_worker(anonymous, "") as seen:
        refused_with(qtbot, seen, "broker rejected credentials")
    with running_worker(hardened_settings(broker, tmp_path), "wrong") as seen:
        refused_with(qtbot, seen, "broker rejected credentials")


def test_hardened_a_device_cannot_publish_for_another_device_or_a_station(
    qtbot: QtBot, hardened_mosquitto: HardenedMosquitto, tmp_path: Path
) -> None:
    broker = hardened_mosquitto
    settings = hardened_settings(broker, tmp_path)
    fake_ack = {"alarm_id": "x", "state": "acknowledged", "by": "intruder", "bed": "Bed 2"}
    with running_worker(settings, broker.passwords[HARDENED_USER]) as seen:
        qtbot.waitUntil(lambda: seen.connected, timeout=WAIT_MS)
        with device(broker, "monitor-a") as dev:
            forged = {
                # Another device's topic, with a payload that would pass as that device's.
                "healthcare/devices/monitor-b/vitals": vitals("monitor-b", heartrate=150),
                # The document's single topic, where the payload alone names the device.
                "healthcare/sensor_data": vitals("monitor-b", heartrate=151),
                # Another station's alarm events: a forged acknowledgement.
                "healthcare/station/ward-2/alarms": json.dumps(fake_ack).encode(),
                # This station's own status.
                "healthcare/station/ward-1/status": b'{"state": "offline"}',
            }
            for topic, payload in forged.items():
                assert dev.publish(topic, payload).value == NOT_AUTHORIZED, topic
            own = dev.publish("healthcare/devices/monitor-a/vitals", vitals("monitor-a"))
            assert not own.is_failure, own
        # The device's own message arrives; one client's messages arrive in order, so anything
        # forged before it would have arrived first.
        qtbot.waitUntil(lambda: len(seen.accepted) >= 1, timeout=WAIT_MS)
        assert [m.device_id for m in seen.accepted] == ["monitor-a"]
        assert seen.rejected == []
        assert seen.peer_events == []
        assert seen.connected


def test_hardened_a_device_cannot_take_over_the_stations_client_id(
    qtbot: QtBot, hardened_mosquitto: HardenedMosquitto, tmp_path: Path
) -> None:
    broker = hardened_mosquitto
    settings = hardened_settings(broker, tmp_path)
    with running_worker(settings, broker.passwords[HARDENED_USER]) as seen:
        qtbot.waitUntil(lambda: seen.connected, timeout=WAIT_MS)
        states_before = list(seen.states)
        # A device (or a stolen device password) connecting with the station's client id...
        with device(broker, "monitor-a", client_id=settings.client_id) as dev:
            assert not dev.publish(
                "healthcare/devices/monitor-a/vitals", vitals("monitor-a")
            ).is_failure
            # ...is connected as itself, and the station keeps its connection and its data.
            qtbot.waitUntil(lambda: len(seen.accepted) >= 1, timeout=WAIT_MS)
        assert seen.states == states_before
        assert seen.worker._client.is_connected()
        with device(broker, "monitor-b") as other:
            other.publish("healthcare/devices/monitor-b/vitals", vitals("monitor-b"))
        qtbot.waitUntil(lambda: len(seen.accepted) >= 2, timeout=WAIT_MS)
        assert [m.device_id for m in seen.accepted] == ["monitor-a", "monitor-b"]
        assert seen.states == states_before
    log = broker_log(broker)
    assert "as monitor-a (p5, c1, k60, u'monitor-a')" in log
    assert "already connected, closing old connection" not in log


def test_without_use_username_as_clientid_a_device_pushes_the_station_off(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Why the hardened configuration has it: the fixture broker does not, and there a device
    that borrows the station's client id disconnects the station (which then says so)."""
    settings = station_settings(mosquitto, tmp_path)
    with running_worker(settings, mosquitto.passwords["station"]) as seen:
        qtbot.waitUntil(lambda: seen.connected, timeout=WAIT_MS)
        with device(mosquitto, "monitor-a", client_id=settings.client_id):
            qtbot.waitUntil(lambda: seen.failure() is not None, timeout=WAIT_MS)
        # Mosquitto 2.0.11 closes the old connection without a DISCONNECT saying why.
        assert seen.states[1].detail.startswith("connection lost: "), seen.states
        qtbot.waitUntil(lambda: seen.connected, timeout=WAIT_MS)  # and it comes back
    assert "Client station-ward-test already connected, closing old connection" in broker_log(
        mosquitto
    )


def test_hardened_the_station_runs_both_sessions_with_their_own_users(
    qtbot: QtBot,
    hardened_mosquitto: HardenedMosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """use_username_as_clientid: the live session has a user of its own, so the two sessions
    do not push each other off, and a device's message reaches the tile through it."""
    broker = hardened_mosquitto
    live_user = f"{HARDENED_USER}-live"
    settings = station_settings(
        broker,
        tmp_path,
        station=HARDENED_STATION,
        mqtt={"username": HARDENED_USER, "live_username": live_user},
    )
    monkeypatch.setenv("STATION_MQTT_PASSWORD", broker.passwords[HARDENED_USER])
    monkeypatch.setenv("STATION_MQTT_LIVE_PASSWORD", broker.passwords[live_user])
    station = Station(settings, user="nurse-test")
    qtbot.addWidget(station.window)
    station.start()
    try:
        qtbot.waitUntil(lambda: station.live.connected, timeout=WAIT_MS)
        with device(broker, "monitor-a") as dev:
            dev.publish("healthcare/devices/monitor-a/vitals", vitals("monitor-a", heartrate=93))
        tile = station.window.tiles["Bed 1"]
        qtbot.waitUntil(lambda: tile.hr.value.text() == "93", timeout=WAIT_MS)
        assert station.live.connected
        assert station.mqtt._client.is_connected()
    finally:
        assert station.stop()
    assert "session taken over" not in broker_log(broker)
