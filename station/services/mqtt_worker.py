"""The station's MQTT client: device vitals in, status and alarm events out.

Thread model: paho's own network thread (``loop_start``, renamed ``mqtt``) does all socket I/O.
It must be paho's thread, not one of ours running ``loop_forever``: without it paho believes no
network thread exists and ``publish()`` writes to the TLS socket from the *calling* thread, so the
core thread would share the socket with the loop and could block mid-reconnect (seen here: alarms
delayed by seconds). All paho callbacks run in ``mqtt``; they parse with
:func:`station.domain.ingest.parse` and emit Qt signals, which reach the core thread through
queued connections. Callbacks never raise (a raising paho callback silently ends the network
thread while ``is_connected()`` still says True — PLATFORM-NOTES); :meth:`watch` lets the core
check the thread and restarts it if it died. ``publish_alarm`` only queues and is thread-safe.

Acknowledgement (issue 4): the client runs with paho's ``manual_ack``. A vitals message is
acknowledged (PUBACK) only when the core has its point in the spool: each message travels with
a :class:`Delivery`, and the core calls :meth:`MqttWorker.ack` after the group commit. Until then
the broker keeps the message and redelivers it after a crash or a reconnect.

Signals:
    message_accepted(Accepted, Delivery), message_rejected(Rejection, Delivery),
    connection_changed(ConnectionState),
    peer_event(str station_id, dict event): an alarm event of another station of the ward
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from PySide6.QtCore import QObject, Signal

from station import __version__
from station.domain import ingest
from station.domain.messages import Accepted
from station.domain.timefmt import iso_ms
from station.settings import Settings

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 5


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """Broker connection as the screen and the audit trail see it."""

    connected: bool
    detail: str
    at: float
    deliberate: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """What acknowledging one received message needs: its packet id and QoS on the connection
    (``generation``) it arrived on. A packet id means nothing on a later connection, so an
    acknowledgement for an earlier one is not sent; the broker redelivers that message and the
    spool and the sequence tracker recognise it."""

    generation: int
    mid: int
    qos: int


def status_topic(station_id: str) -> str:
    """Retained station status (CONTRACT §2)."""
    return f"healthcare/station/{station_id}/status"


def alarms_topic(station_id: str) -> str:
    """Alarm events (CONTRACT §2)."""
    return f"healthcare/station/{station_id}/alarms"


PEER_ALARMS = "healthcare/station/+/alarms"
MAX_PEER_EVENT_BYTES = 4096


def _peer_station(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["healthcare", "station"] and parts[3] == "alarms":
        return parts[2]
    return None


def _no_delay(client: mqtt.Client) -> None:
    """Disable Nagle's algorithm on the broker socket. paho leaves it on, so a small alarm
    event sent right after PUBACKs waited for the broker's delayed ACK: about 40 ms measured
    here (``station bench --scenario alarms``) on every alarm."""
    sock = client.socket()
    if not isinstance(sock, socket.socket):  # ssl.SSLSocket is a socket.socket too
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:  # not a TCP socket (e.g. a unix socket): nothing to tune
        log.debug("TCP_NODELAY not set: %s", exc)


class MqttWorker(QObject):
    """Owns the paho client and its network thread. Created on the GUI thread; its signals are
    emitted from the ``mqtt`` thread.

    Args:
        settings: the validated configuration.
        password: the broker password from the keyring or environment (never logged).
        clock: UTC epoch seconds, injected for tests.
    """

    message_accepted = Signal(object, object)
    peer_event = Signal(str, object)
    message_rejected = Signal(object, object)
    connection_changed = Signal(object)

    def __init__(
        self,
        settings: Settings,
        password: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._clock = clock
        self._started_at = clock()
        self._stopping = threading.Event()
        self._started = False
        self._generation = 0  # bumped at every connect and disconnect; see Delivery
        self._ack_lock = threading.Lock()  # a reconnect cannot slip between check and send
        self.loop_restarts = 0
        self.acks_skipped = 0
        m = settings.mqtt
        self._topics = tuple(m.topics)
        self._v5 = m.protocol == "5"
        self._status_topic = status_topic(settings.station.id)
        self._alarms_topic = alarms_topic(settings.station.id)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
            manual_ack=True,
        )
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if m.tls:
            client.tls_set(
                ca_certs=m.ca_file or None,
                certfile=m.client_cert or None,
                keyfile=m.client_key or None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            client.tls_insecure_set(False)
        if m.username:
            client.username_pw_set(m.username, password)
        client.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        client.on_connect = self._guard(self._on_connect)
        client.on_disconnect = self._guard(self._on_disconnect)
        client.on_message = self._guard(self._on_message)
        client.on_connect_fail = self._guard(self._on_connect_fail)
        client.on_subscribe = self._guard(self._on_subscribe)
        self._client = client

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; reconnects with 1–5 s backoff until :meth:`stop`."""
        m = self._settings.mqtt
        props: Properties | None = None
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = m.session_expiry_s
        self._client.connect_async(
            m.host,
            m.port,
            keepalive=m.keepalive,
            clean_start=False if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )
        self._start_loop()
        self._started = True

    def _start_loop(self) -> None:
        self._client.loop_start()
        thread = self._loop_thread()
        if thread is not None:
            thread.name = "mqtt"

    def _loop_thread(self) -> threading.Thread | None:
        # paho keeps its network thread in a private attribute; it is the only handle there is.
        thread: threading.Thread | None = getattr(self._client, "_thread", None)
        return thread

    def alive(self) -> bool:
        """True while paho's network thread runs."""
        thread = self._loop_thread()
        return thread is not None and thread.is_alive()

    def watch(self) -> bool:
        """Called by the core once a second: True if the network thread was alive. If it died
        (it should not: callbacks are guarded), it is counted, logged and started again, and
        False tells the core to raise the 'ingest stopped' alarm for that moment."""
        if not self._started or self._stopping.is_set() or self.alive():
            return True
        self.loop_restarts += 1
        log.error("MQTT network thread died; restarting it (%d)", self.loop_restarts)
        self._client.loop_stop()
        self._start_loop()
        return False

    def stop(self, timeout: float = 3.0) -> bool:
        """Publish ``offline`` (retained), disconnect and join the thread. Returns whether it
        stopped within ``timeout``."""
        self._stopping.set()
        if self._client.is_connected():
            info = self._client.publish(
                self._status_topic, self._status("offline"), qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout=min(0.5, timeout / 3))
            except (RuntimeError, ValueError):
                log.warning("offline status not confirmed before disconnect")
        self._client.disconnect()
        thread = self._loop_thread()
        if thread is None:
            return True
        # paho's loop_stop() joins without a limit; join with ours first, then let it tidy up.
        thread.join(timeout)
        if thread.is_alive():
            log.error("MQTT network thread did not stop within %.1f s", timeout)
            return False
        self._client.loop_stop()
        return True

    # -- outbound --------------------------------------------------------------------------

    def _status(self, state: str) -> bytes:
        doc = {
            "state": state,
            "version": __version__,
            "since": iso_ms(self._started_at if state == "online" else self._clock()),
            "beds": self._settings.ward.beds,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def publish_alarm(self, event: dict[str, object]) -> None:
        """Send one alarm state change (QoS 1). Queued by paho while disconnected."""
        payload = json.dumps(event, separators=(",", ":")).encode()
        self._client.publish(self._alarms_topic, payload, qos=1, retain=False)

    def ack(self, deliveries: list[Delivery]) -> None:
        """Acknowledge received messages, in the order they arrived (any thread: paho appends the
        packet to a deque and wakes its loop; ``_ack_lock`` keeps a reconnect from slipping
        between the generation check and the send). Those of an earlier connection are
        skipped: the broker redelivers them."""
        with self._ack_lock:
            for d in deliveries:
                if d.qos == 0:
                    continue
                if d.generation != self._generation:
                    self.acks_skipped += 1
                    continue
                self._client.ack(d.mid, d.qos)

    # -- callbacks (mqtt thread) -----------------------------------------------------------

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        def wrapped(*args: Any) -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("MQTT callback %s failed; ingest continues", fn.__name__)

        return wrapped

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.connection_changed.emit(
                ConnectionState(False, f"refused by broker: {reason}", self._clock())
            )
            return
        with self._ack_lock:
            self._generation += 1
        topics = (*self._topics, PEER_ALARMS)
        _no_delay(client)
        if self._v5:
            subs: list[tuple[str, Any]] = [(t, SubscribeOptions(qos=1)) for t in topics]
        else:
            subs = [(t, 1) for t in topics]
        client.subscribe(subs)
        client.publish(self._status_topic, self._status("online"), qos=1, retain=True)
        resumed = " (session resumed)" if flags.session_present else ""
        self.connection_changed.emit(ConnectionState(True, f"connected{resumed}", self._clock()))

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        # Before paho reconnects: an acknowledgement of this connection's messages must not go
        # out on the next one (where its packet id may name another message).
        with self._ack_lock:
            self._generation += 1
        if self._stopping.is_set():
            self.connection_changed.emit(ConnectionState(False, "stopped", self._clock(), True))
            return
        self.connection_changed.emit(
            ConnectionState(False, f"connection lost: {reason}", self._clock())
        )

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        # A broker ACL that refuses the vitals topics leaves the station "connected" and deaf:
        # that must be an alarm, not a green light.
        refused = [str(r) for r in reasons if r.is_failure]
        vitals_refused = [str(r) for r in reasons[: len(self._topics)] if r.is_failure]
        if refused and not vitals_refused:
            # Only the peer-alarms subscription (the last one) was refused: vitals still flow,
            # so this is not a deaf station; acknowledgements from other stations won't arrive.
            log.error("peer alarm sync unavailable: broker refused %s: %s", PEER_ALARMS, refused)
            return
        if refused:
            detail = f"subscription refused by broker: {', '.join(refused)}"
            self.connection_changed.emit(ConnectionState(False, detail, self._clock()))

    def _on_peer(self, station: str, raw: bytes) -> None:
        if len(raw) > MAX_PEER_EVENT_BYTES:
            return
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("unreadable alarm event from station %s", station[:64])
            return
        if isinstance(event, dict):
            self.peer_event.emit(station, event)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        m = self._settings.mqtt
        self.connection_changed.emit(
            ConnectionState(False, f"cannot reach broker {m.host}:{m.port}", self._clock())
        )

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        delivery = Delivery(self._generation, msg.mid, msg.qos)
        peer = _peer_station(msg.topic)
        if peer is not None:
            # Peer alarm events are applied at once and kept nowhere: nothing to make durable.
            self.ack([delivery])
            if peer != self._settings.station.id:
                self._on_peer(peer, bytes(msg.payload))
            return
        try:
            result = ingest.parse(msg.topic, bytes(msg.payload), self._clock(), self._topics)
        except Exception:
            self.ack([delivery])  # parse never raises; if it did, redelivery would loop for ever
            raise
        if isinstance(result, Accepted):
            self.message_accepted.emit(result, delivery)
        else:
            self.message_rejected.emit(result, delivery)
