"""The station's MQTT client: device vitals in, status and alarm events out.

Thread model: paho's own network thread (``loop_start``, renamed ``mqtt``) does all socket I/O.
It must be paho's thread, not one of ours running ``loop_forever``: without it paho believes no
network thread exists and ``publish()`` writes to the TLS socket from the *calling* thread, so the
core thread would share the socket with the loop and could block mid-reconnect (seen here: alarms
delayed by seconds). All paho callbacks run in ``mqtt``; vitals wait as they came for the core,
which parses them (:mod:`~station.services.ingest.record_inbox`), and Qt signals reach the core
thread through queued connections. Callbacks never raise (a raising paho callback silently ends
the network thread while ``is_connected()`` still says True — PLATFORM-NOTES); :meth:`watch`
lets the core check the thread and restarts it if it died. ``publish_alarm`` only queues and is
thread-safe.

Acknowledgement (issue 4): the client runs with paho's ``manual_ack``. A vitals message is
acknowledged (PUBACK) only when the core has its point in the spool: each message travels with
a :class:`Delivery`, and the core calls :meth:`MqttWorker.ack` after the group commit. Until then
the broker keeps the message and redelivers it after a crash or a reconnect.

Connection failures (issue 5): the status bar says *why* the station is not connected, once per
change, and a refusal does not turn into a retry storm; the callbacks tell a
:class:`~station.services.ingest.connection_report.ConnectionReport` what each attempt saw.

Hand-off to the core (issue 13): messages wait in a
:class:`~station.services.ingest.record_inbox.RecordInbox`, and :attr:`messages_ready` is
emitted only when it goes from empty to not empty; the core takes them in chunks (:meth:`take`).

Signals:
    messages_ready(): :meth:`take` has messages for the core.
    connection_changed(ConnectionState),
    peer_event(str station_id, dict event | WardMessage): an alarm event of another station of
        the ward (decoded JSON), or one of its ward events (unread: the core reads and counts
        it, see :mod:`station.domain.ward_events`)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from PySide6.QtCore import QObject, Signal

from station import __version__
from station.config.settings import Settings
from station.domain.timefmt import iso_ms
from station.domain.ward_events import MAX_WARD_EVENT_BYTES, WardMessage
from station.services.ingest.connection_report import ConnectionReport
from station.services.ingest.mqtt_client import _Client, _tls_context, no_delay
from station.services.ingest.mqtt_reasons import RECONNECT_MAX_S, RECONNECT_MIN_S
from station.services.ingest.mqtt_topics import (
    PEER_ALARMS,
    PEER_WARD,
    alarms_topic,
    audit_topic,
    peer_station,
    peer_ward_station,
    status_topic,
    ward_topic,
)
from station.services.ingest.paho_loop import guard, join_loop, loop_alive, start_loop
from station.services.ingest.peer_seal import PeerSeal, station_signing_key
from station.services.ingest.record_inbox import Delivery, Raw, RecordInbox

log = logging.getLogger(__name__)

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
MAX_PEER_EVENT_BYTES = 4096


class MqttWorker(QObject):
    """Owns the paho client and its network thread. Created on the GUI thread; its signals are
    emitted from the ``mqtt`` thread.

    Args:
        settings: the validated configuration.
        password: the broker password from the keyring or environment (never logged).
        clock: UTC epoch seconds, injected for tests (the station passes
            :meth:`StationClock.now`, so a clock step back does not reject live data as
            "from the future").
        signing_key: the station's audit signing key, which signs its alarm and ward events
            for the ward's other stations (:mod:`~station.services.ingest.peer_seal`); None:
            read from the keyring or ``STATION_AUDIT_KEY``, as the audit trail reads it.
    """

    messages_ready = Signal()
    peer_event = Signal(str, object)
    connection_changed = Signal(object)
    checkpoint_seen = Signal(bytes)
    """The retained audit checkpoint of this station on the broker; emitted on the ``mqtt``
    thread, connected directly by the app to the audit trail's check."""

    def __init__(
        self,
        settings: Settings,
        password: str | None = None,
        clock: Callable[[], float] = time.time,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> None:
        super().__init__()
        self._settings = settings
        key = signing_key or station_signing_key(settings.station.id)
        self._seal = PeerSeal(settings.station.id, key)
        self._clock = clock
        self._started_at = clock()
        self._stopping = threading.Event()
        self._started = False
        self._generation = 0  # bumped at every connect and disconnect; see Delivery
        self._ack_lock = threading.Lock()  # a reconnect cannot slip between check and send
        self._inbox = RecordInbox()
        self.loop_restarts = 0
        self.acks_skipped = 0
        m = settings.mqtt
        self._link = ConnectionReport(m, self.connection_changed.emit, clock, self._retry_in)
        self._topics = tuple(m.topics)
        self._v5 = m.protocol == "5"
        self._status_topic = status_topic(settings.station.id)
        self._alarms_topic = alarms_topic(settings.station.id)
        self._audit_topic = audit_topic(settings.station.id)
        self._ward_topic = ward_topic(settings.station.id)
        self._checkpoint: bytes | None = None
        self._subscribed = False
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
            client.tls_set_context(_tls_context(m, self._link.record_tls_error))
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
        """Connect in the background; reconnects until :meth:`stop` (see
        :func:`~station.services.ingest.mqtt_reasons.next_delay`)."""
        m = self._settings.mqtt
        props: Properties | None = None
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = m.session_expiry_s
            props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(
            m.host,
            m.port,
            keepalive=m.keepalive_s,
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
        self._inbox.close()  # a receiver waiting for the core's room must not hold the loop
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
        """Send one alarm state change (QoS 1), signed for the ward's other stations. Queued by
        paho while disconnected."""
        payload = json.dumps(self._seal(event), separators=(",", ":")).encode()
        self._client.publish(self._alarms_topic, payload, qos=1, retain=False)

    def publish_ward(self, event: dict[str, object]) -> None:
        """Send one ward event (QoS 1, not retained) from any thread; queued by paho while
        disconnected. Never raises: a change a nurse made here is in force here whatever the
        broker does, so a failure to tell the ward is logged, not passed to the core."""
        try:
            payload = json.dumps(self._seal(event), separators=(",", ":")).encode()
            self._client.publish(self._ward_topic, payload, qos=1, retain=False)
        except (TypeError, ValueError, OSError, RuntimeError) as exc:
            log.error("ward event not published: %s", exc)

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

    @property
    def dropped_qos0(self) -> int:
        """QoS 0 messages dropped: the core was
        :data:`~station.services.ingest.record_inbox.MAX_RECEIVED` behind."""
        return self._inbox.dropped_qos0

    def take(self, limit: int) -> tuple[list[tuple[Raw, Delivery]], bool]:
        """Up to ``limit`` received messages in arrival order (any thread; the core's), and
        whether more are waiting. When none are left, the next message wakes the core again."""
        return self._inbox.take(limit)

    def _hand_over(self, item: tuple[Raw, Delivery]) -> None:
        if self._inbox.put(item):
            self.messages_ready.emit()

    # -- callbacks (mqtt thread) -----------------------------------------------------------

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        return guard(fn, "ingest")

    def _retry_in(self, delay: int) -> None:
        self._client.reconnect_delay_set(delay, delay)

    def _on_pre_connect(self, _client: mqtt.Client, _userdata: object) -> None:
        self._link.new_attempt()

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
            self._link.refused(reason)
            return
        self._link.session_up()
        with self._ack_lock:
            self._generation += 1
        topics = (*self._topics, PEER_ALARMS, PEER_WARD, self._audit_topic)
        no_delay(client)
        if self._v5:
            subs: list[tuple[str, Any]] = [(t, SubscribeOptions(qos=1)) for t in topics]
        else:
            subs = [(t, 1) for t in topics]
        self._subscribed = False
        client.subscribe(subs)
        client.publish(self._status_topic, self._status("online"), qos=1, retain=True)
        resumed = " (session resumed)" if flags.session_present else ""
        self._link.report(True, f"connected{resumed}")

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
            self._link.report(False, "stopped", deliberate=True)
            return
        self._link.disconnected(reason, flags)

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
            # Only the peer-alarms, ward-events or audit-checkpoint subscription was refused:
            # vitals still flow, so this is not a deaf station; acknowledgements and limit
            # changes from other stations (or the broker's copy of the last checkpoint) won't
            # arrive.
            topics = f"{PEER_ALARMS} / {PEER_WARD} / {self._audit_topic}"
            log.error(
                "peer events or audit checkpoint unavailable: %s refused: %s", topics, refused
            )
            return
        if refused:
            self._link.report(False, f"subscription refused by broker: {', '.join(refused)}")

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
        self._link.connect_failed(self._client.connect_error)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        delivery = Delivery(self._generation, msg.mid, msg.qos)
        if msg.topic == self._audit_topic:
            # The checkpoint the broker kept (retained) for this station: the audit writer
            # compares it with the trail, which finds a folder put back to an older copy.
            self.ack([delivery])
            self.checkpoint_seen.emit(bytes(msg.payload))
            return
        peer = peer_station(msg.topic)
        if peer is not None:
            # Peer alarm events are applied at once and kept nowhere: nothing to make durable.
            self.ack([delivery])
            if peer != self._settings.station.id:
                self._on_peer(peer, bytes(msg.payload))
            return
        ward_peer = peer_ward_station(msg.topic)
        if ward_peer is not None:
            # Applied (or refused and counted) by the core; our own events are not read back,
            # so no change goes round the ward twice. Beyond the size cap only the cap is
            # copied: the core then counts it as too large.
            self.ack([delivery])
            if ward_peer != self._settings.station.id:
                raw = bytes(msg.payload[: MAX_WARD_EVENT_BYTES + 1])
                self.peer_event.emit(ward_peer, WardMessage(ward_peer, raw))
            return
        self._hand_over(((msg.topic, bytes(msg.payload), self._clock()), delivery))
