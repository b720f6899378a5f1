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

Connection failures (issue 5): the status bar must say *why* the station is not connected, in
words hospital IT can act on, and a refusal must not turn into a retry storm. paho's
``on_connect_fail`` gives no reason, so the reason is taken where it arises: the exception of the
connection attempt (:class:`_Client` keeps it from ``reconnect()``, which paho's loop calls for
every attempt), the TLS socket's own errors (the SSL context's ``sslsocket_class`` records them:
certificate checks fail in the handshake, but a TLS 1.3 broker refuses a client certificate only
at the first read), and the CONNACK reason code; :mod:`station.services.ingest.mqtt_reasons` turns
them into the ``detail`` shown and the wait before the next attempt. A state is emitted only when it
changes: the same refusal every minute is one report, not a new one each time.

Hand-off to the core (issue 13): messages are not sent one signal each. They wait in
:attr:`MqttWorker.received`, and :attr:`messages_ready` is emitted only when that queue goes from
empty to not empty; the core takes them in chunks (:meth:`take`). So the core's event queue holds
at most one record wake-up whatever the message rate, and the live feed's wake-up never waits
behind thousands of queued record events (it waited behind them on ``main``: a QoS 0 flood grew
the core's queue without bound). The queue itself is bounded by the broker's in-flight window
for QoS 1, as nothing is acknowledged before the core has spooled it, and by
:data:`MAX_RECEIVED` for QoS 0 (past it QoS 0 messages are dropped and counted).

Signals:
    messages_ready(): :meth:`take` has messages for the core.
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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from PySide6.QtCore import QObject, Signal

from station import __version__
from station.config.settings import MqttSection, Settings
from station.domain import ingest
from station.domain.messages import Accepted, Rejection
from station.domain.status import ConnectionState
from station.domain.timefmt import iso_ms
from station.services.ingest.mqtt_reasons import (
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    Failure,
    describe_closed_early,
    describe_connect_error,
    describe_lost,
    describe_refusal,
    next_delay,
)
from station.services.ingest.paho_loop import guard, join_loop, loop_alive, start_loop

log = logging.getLogger(__name__)


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


def audit_topic(station_id: str) -> str:
    """The audit trail's latest signed checkpoint, retained (CONTRACT §2, extended)."""
    return f"healthcare/station/{station_id}/audit"


RECEIVE_MAXIMUM = 256
"""QoS 1 messages the broker may send before the station acknowledges any (MQTT 5 Receive
Maximum; Mosquitto honours it over its ``max_inflight_messages``, measured: 20 unacknowledged
without it, 200 with 200). Acknowledgements wait for the spool's group commit, so the window
bounds what one commit carries: 20 made a commit of 16 messages pay a disk sync each (about
20 µs a message); the core commits per :data:`~station.services.ingest.core.COMMIT_BATCH_V5`. A
larger window only means more messages redelivered after a crash, which the spool and the order
tracker drop as duplicates."""

OUTBOUND_IN_FLIGHT = 1000
"""Alarm events and status sent and not yet acknowledged by the broker at most."""
MAX_RECEIVED = 20_000
"""Received messages waiting for the core at most, for QoS 0 (QoS 1 waits in the broker)."""

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


# -- paho client and TLS socket that keep the reason -------------------------------------------


class _Client(mqtt.Client):
    """paho's client that keeps the exception that ended its last connection attempt.

    paho's network loop calls ``reconnect()`` (public API) for every attempt, catches the
    ``OSError`` it raises and calls ``on_connect_fail`` without it; ``connect_error`` keeps it for
    that callback. Any other exception would end paho's loop thread (it catches only
    ``OSError``), so it is kept and raised again as an ``OSError``: the attempt counts as failed,
    is retried with the backoff and its reason is shown.
    """

    connect_error: BaseException | None = None

    def reconnect(self) -> MQTTErrorCode:
        self.connect_error = None
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise
        except Exception as exc:
            self.connect_error = exc
            raise OSError(str(exc)) from exc


def _recording_tls_socket(record: Callable[[OSError], None]) -> type[ssl.SSLSocket]:
    """An ``ssl.SSLSocket`` class that hands its handshake and read errors to ``record`` (the
    SSL context makes its sockets of ``sslsocket_class``, a documented hook). The non-blocking
    "try again" signals of a healthy socket are not errors and are not recorded."""

    class RecordingSSLSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            try:
                super().do_handshake(block)
            except OSError as exc:
                record(exc)
                raise

        def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
            try:
                return super().recv(buflen, flags)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                raise
            except OSError as exc:
                record(exc)
                raise

    return RecordingSSLSocket


def _tls_context(m: MqttSection, record: Callable[[OSError], None]) -> ssl.SSLContext:
    """TLS 1.2 or later, the broker's certificate verified against ``ca_file`` (or the system
    store) and its host name checked; the client certificate for mTLS when configured."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if m.ca_file:
        context.load_verify_locations(cafile=str(Path(m.ca_file).expanduser()))
    else:
        context.load_default_certs()
    if m.client_cert:
        context.load_cert_chain(
            str(Path(m.client_cert).expanduser()), str(Path(m.client_key).expanduser())
        )
    context.sslsocket_class = _recording_tls_socket(record)
    return context


class MqttWorker(QObject):
    """Owns the paho client and its network thread. Created on the GUI thread; its signals are
    emitted from the ``mqtt`` thread.

    Args:
        settings: the validated configuration.
        password: the broker password from the keyring or environment (never logged).
        clock: UTC epoch seconds, injected for tests (the station passes
            :meth:`StationClock.now`, so a clock step back does not reject live data as
            "from the future").
    """

    messages_ready = Signal()
    peer_event = Signal(str, object)
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
        self._received: deque[tuple[Accepted | Rejection, Delivery]] = deque()
        self._received_lock = threading.Lock()
        self._scheduled = False  # a messages_ready is on its way to the core
        self.dropped_qos0 = 0
        self.loop_restarts = 0
        self.acks_skipped = 0
        # Per connection attempt, touched only by paho's thread (reset in _on_pre_connect).
        self._tls_error: OSError | None = None
        self._refusal: Failure | None = None
        self._session_up = False
        self._delay_set = False
        self._delay: int | None = None  # the last wait before a retry; None after a success
        self._report_lock = threading.Lock()
        self._reported: tuple[bool, str, bool] | None = None
        m = settings.mqtt
        self._topics = tuple(m.topics)
        self._v5 = m.protocol == "5"
        self._status_topic = status_topic(settings.station.id)
        self._alarms_topic = alarms_topic(settings.station.id)
        self._audit_topic = audit_topic(settings.station.id)
        self._checkpoint: bytes | None = None
        self._subscribed = False
        self.on_checkpoint_seen: Callable[[bytes], None] | None = None
        """Called on the ``mqtt`` thread with the retained audit checkpoint (set by the app)."""
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
            manual_ack=True,
        )
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        # paho sends at most 20 unacknowledged QoS 1 publishes by default; the broker's PUBACKs
        # come back behind the in-flight vitals on the same stream, so under a flood alarm
        # events queued behind that window (measured: seconds late on the alarms topic).
        client.max_inflight_messages_set(OUTBOUND_IN_FLIGHT)
        if m.tls:
            client.tls_set_context(_tls_context(m, self._record_tls_error))
            client.tls_insecure_set(False)
        if m.username:
            client.username_pw_set(m.username, password)
        client.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        client.on_pre_connect = self._guard(self._on_pre_connect)
        client.on_connect = self._guard(self._on_connect)
        client.on_disconnect = self._guard(self._on_disconnect)
        client.on_message = self._guard(self._on_message)
        client.on_connect_fail = self._guard(self._on_connect_fail)
        client.on_subscribe = self._guard(self._on_subscribe)
        self._client = client

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; reconnects until :meth:`stop` (see :func:`next_delay`)."""
        m = self._settings.mqtt
        props: Properties | None = None
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = m.session_expiry_s
            props.ReceiveMaximum = RECEIVE_MAXIMUM
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
        start_loop(self._client, "mqtt")

    def alive(self) -> bool:
        """True while paho's network thread runs."""
        return loop_alive(self._client)

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
        return join_loop(self._client, timeout)

    # -- outbound --------------------------------------------------------------------------

    def _status(self, state: str) -> bytes:
        doc = {
            "state": state,
            "version": __version__,
            "since": iso_ms(self._started_at if state == "online" else self._clock()),
            "beds": self._settings.ward.beds,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def publish_checkpoint(self, payload: str) -> None:
        """Publish the audit trail's latest signed checkpoint, retained (QoS 1), from any
        thread: the broker then holds a copy outside the station's folder, which finds a
        rollback of that folder. It is sent only once the subscription to the same topic is
        acknowledged, and again after every (re)connect: the retained copy a restarted station
        finds there must reach it before its own new checkpoint replaces it."""
        self._checkpoint = payload.encode()
        if self._subscribed:
            self._client.publish(self._audit_topic, self._checkpoint, qos=1, retain=True)

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

    def take(self, limit: int) -> tuple[list[tuple[Accepted | Rejection, Delivery]], bool]:
        """Up to ``limit`` received messages in arrival order (any thread; the core's), and
        whether more are waiting. When none are left, the next message wakes the core again."""
        with self._received_lock:
            n = min(limit, len(self._received))
            items = [self._received.popleft() for _ in range(n)]
            more = bool(self._received)
            if not more:
                self._scheduled = False
            return items, more

    def _hand_over(self, item: tuple[Accepted | Rejection, Delivery]) -> None:
        with self._received_lock:
            if len(self._received) >= MAX_RECEIVED and item[1].qos == 0:
                # QoS 1 is bounded by the in-flight window; a QoS 0 flood is not: past the
                # bound its messages are dropped here (counted), never the core's memory.
                self.dropped_qos0 += 1
                return
            self._received.append(item)
            wake = not self._scheduled
            self._scheduled = True
        if wake:
            self.messages_ready.emit()

    # -- callbacks (mqtt thread) -----------------------------------------------------------

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        return guard(fn, "ingest")

    def _report(self, connected: bool, detail: str, deliberate: bool = False) -> None:
        """Emit the connection state if it differs from the last one emitted: a refusal repeated
        at every retry is one report, not a new state change each time."""
        state = (connected, detail, deliberate)
        with self._report_lock:
            if state == self._reported:
                return
            self._reported = state
        self.connection_changed.emit(ConnectionState(connected, detail, self._clock(), deliberate))

    def _failed(self, failure: Failure) -> None:
        """Report an attempt's failure and set the wait before paho's next attempt (paho waits
        right after the callback that calls this; ``reconnect_delay_set`` with min = max makes
        the wait exactly ours). Once per attempt: a refused CONNACK is followed by a disconnect."""
        if not self._delay_set:
            self._delay_set = True
            self._delay = next_delay(self._delay, failure.persistent)
            self._client.reconnect_delay_set(self._delay, self._delay)
            log.debug("next connection attempt in %d s", self._delay)
        self._report(False, failure.detail)

    def _record_tls_error(self, exc: OSError) -> None:
        self._tls_error = exc

    def _on_pre_connect(self, _client: mqtt.Client, _userdata: object) -> None:
        # A new attempt: forget what the last one saw.
        self._tls_error = None
        self._refusal = None
        self._session_up = False
        self._delay_set = False

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            # paho closes the connection next and calls _on_disconnect, which sets the wait.
            self._refusal = describe_refusal(reason)
            self._failed(self._refusal)
            return
        self._session_up = True
        self._delay = None
        with self._ack_lock:
            self._generation += 1
        topics = (*self._topics, PEER_ALARMS, self._audit_topic)
        _no_delay(client)
        if self._v5:
            subs: list[tuple[str, Any]] = [(t, SubscribeOptions(qos=1)) for t in topics]
        else:
            subs = [(t, 1) for t in topics]
        self._subscribed = False
        client.subscribe(subs)
        client.publish(self._status_topic, self._status("online"), qos=1, retain=True)
        resumed = " (session resumed)" if flags.session_present else ""
        self._report(True, f"connected{resumed}")

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        # Before paho reconnects: an acknowledgement of this connection's messages must not go
        # out on the next one (where its packet id may name another message).
        with self._ack_lock:
            self._generation += 1
        if self._stopping.is_set():
            self._report(False, "stopped", deliberate=True)
            return
        m = self._settings.mqtt
        if self._session_up:
            self._session_up = False
            lost = describe_lost(reason, flags.is_disconnect_packet_from_server)
            self._failed(Failure(lost, persistent=False))
        elif self._refusal is not None:
            self._failed(self._refusal)
        else:
            self._failed(describe_closed_early(m.tls, self._tls_error, m.host, bool(m.client_cert)))

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        # The broker has sent the retained audit checkpoint with this acknowledgement's batch;
        # only now may this station's own checkpoint replace it.
        self._subscribed = True
        if self._checkpoint is not None:
            self._client.publish(self._audit_topic, self._checkpoint, qos=1, retain=True)
        # A broker ACL that refuses the vitals topics leaves the station "connected" and deaf:
        # that must be an alarm, not a green light.
        refused = [str(r) for r in reasons if r.is_failure]
        vitals_refused = [str(r) for r in reasons[: len(self._topics)] if r.is_failure]
        if refused and not vitals_refused:
            # Only the peer-alarms or audit-checkpoint subscription was refused: vitals still
            # flow, so this is not a deaf station; acknowledgements from other stations (or the
            # broker's copy of the last checkpoint) won't arrive.
            topics = f"{PEER_ALARMS} / {self._audit_topic}"
            log.error(
                "peer alarms or audit checkpoint unavailable: %s refused: %s", topics, refused
            )
            return
        if refused:
            self._report(False, f"subscription refused by broker: {', '.join(refused)}")

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
        if self._stopping.is_set():
            return
        m = self._settings.mqtt
        failure = describe_connect_error(
            self._client.connect_error,
            m.host,
            m.port,
            tls_error=self._tls_error,
            client_cert=bool(m.client_cert),
        )
        self._failed(failure)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        delivery = Delivery(self._generation, msg.mid, msg.qos)
        if msg.topic == self._audit_topic:
            # The checkpoint the broker kept (retained) for this station: the audit writer
            # compares it with the trail, which finds a folder put back to an older copy.
            self.ack([delivery])
            if self.on_checkpoint_seen is not None:
                self.on_checkpoint_seen(bytes(msg.payload))
            return
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
        self._hand_over((result, delivery))
