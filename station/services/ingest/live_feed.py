"""The live feed: a second, non-persistent MQTT session that feeds the screen and the alarms.

Why a second session: the persistent session
(:class:`~station.services.ingest.mqtt_worker.MqttWorker`) delivers every message in order, each
acknowledged only once it is in the spool, with the broker's in-flight window between them.
Whatever is queued there comes first: measured on one shared session, a device flooding at QoS 1
delayed another bed's HR 170 alarm by 19 s, and after a restart the backlog of the persistent
session held live alarms back by 8.6 s. The live session is clean (nothing queued for it while
away, no in-flight window: QoS 0), so the broker hands it each device's message as it is published,
whatever the record path still has to store. The two paths meet in the core: the live path shows
and alarms, the record path stores; a message seen on both is shown once (the core's live order
drops the second copy).

Retained messages are skipped here: they are old by definition. Each message is put in the
:class:`LiveInbox` under its source (the device the topic names, or the id claimed on the shared
topic), which keeps a budget per device; parsing and checks happen on the core thread, only for
what the budget lets through.

A flooding device is cut off at the broker: a device the topic names that sends more than
:data:`MUTE_AFTER` times its budget within a second, or more than its budget two seconds
running, is unsubscribed from this session for
:data:`MUTE_S` (then tried again). Why: parsing MQTT in Python costs tens of µs a message, and
under a flood the record path competes for the same interpreter, so a live session that must
read every flooding message falls behind the broker (measured: 16 s behind, every bed's data
with it). Unsubscribed, the flood no longer reaches this session at all; the flooding device's
bed is fed by the record path meanwhile (the core's fallback for a device the live feed does not
deliver), its "device flooding" alarm stays on, and all it sends is recorded. This needs a
subscription per device, so it works where the station knows its devices (onboarded admission);
under open admission the live session subscribes to the wildcard and cannot single one out.

Thread model: paho's network thread, named ``live-mqtt``, runs :meth:`_on_message`; the core is
woken by :attr:`ready` (queued) when the inbox goes from empty to not empty, so the core's event
queue holds at most one live wake-up however fast messages come.

Signals:
    ready(): the inbox has messages for the core.
    connection_changed(bool connected, str detail)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from PySide6.QtCore import QObject, Signal

from station.config.settings import Settings
from station.domain.ingest import MAX_PAYLOAD_BYTES, topic_device
from station.services.ingest.live_inbox import Flooding, LiveInbox, LiveItem, source_key
from station.services.ingest.mqtt_client import _Client, _tls_context
from station.services.ingest.mqtt_reasons import RECONNECT_MAX_S, RECONNECT_MIN_S
from station.services.ingest.paho_loop import guard, join_loop, loop_alive, start_loop

log = logging.getLogger(__name__)

UNREADABLE = "?"  # the source of shared-topic messages whose claimed id cannot be read
MUTE_AFTER = 2
"""A device sending more than this many times its budget within one second, or over its budget
two seconds running, is unsubscribed. Counted here, where the messages are read: under a flood
this thread reads fewer than the broker has, so the threshold must be low to be reached."""
MUTE_S = 30.0
"""How long a flooding device stays unsubscribed from the live session before a new try."""


def device_topics(filters: tuple[str, ...], devices: frozenset[str] | None) -> set[str]:
    """The live session's subscriptions: each per-device filter (one ``+`` level) spelt out for
    every device in ``devices``, so that one of them can be left out; the filters as they are
    when ``devices`` is None (open admission: any device may come)."""
    topics: set[str] = set()
    for flt in filters:
        levels = flt.split("/")
        if devices is None or "+" not in levels or "#" in levels:
            topics.add(flt)
            continue
        at = len(levels) - 1 - levels[::-1].index("+")  # the level topic_device reads
        topics.update("/".join([*levels[:at], d, *levels[at + 1 :]]) for d in devices)
    return topics


def claimed_device(payload: bytes) -> str:
    """The ``device_id`` a shared-topic payload claims, cheaply (only to pick its budget; the
    core parses and checks the whole message later)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return UNREADABLE
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return UNREADABLE
    claimed = doc.get("device_id") if isinstance(doc, dict) else None
    return claimed[:64] if isinstance(claimed, str) and claimed else UNREADABLE


class LiveFeed(QObject):
    """Owns the live paho client. Created on the GUI thread; its signals come from ``live-mqtt``.

    Args:
        settings: the validated configuration.
        password: the live user's broker password (never logged).
        now: the station's wall time (:meth:`StationClock.now`), stamped on each message.
        monotonic: the clock of the per-device budget windows.
    """

    ready = Signal()
    connection_changed = Signal(bool, str)

    def __init__(
        self,
        settings: Settings,
        password: str | None,
        now: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        super().__init__()
        m = settings.mqtt
        self._topics = tuple(m.topics)
        self._now, self._monotonic = now, monotonic
        self.inbox = LiveInbox(settings.devices.live_budget_hz)
        self.retained_skipped = 0
        self.unrouted_skipped = 0
        self.wanted: frozenset[str] | None = None
        """Devices that reach a bed (None: any may, open admission). Set by the core thread as
        a whole new set, read here: a message for no bed is not worth parsing live."""
        self._subs_lock = threading.Lock()  # the live thread and the core thread change these
        self._subscribed: set[str] = set()
        self._session = False
        self._muted: dict[str, tuple[float, int]] = {}  # device → (monotonic until, rate)
        self.connected = False
        self._stopping = threading.Event()
        v5 = m.protocol == "5"
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.live_client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if m.tls:
            client.tls_set_context(_tls_context(m, lambda _exc: None))
            client.tls_insecure_set(False)
        user = m.live_username or m.username
        if user:
            client.username_pw_set(user, password)
        client.on_connect = self._guard(self._on_connect)
        client.on_disconnect = self._guard(self._on_disconnect)
        client.on_message = self._guard(self._on_message)
        client.on_subscribe = self._guard(self._on_subscribe)
        self._client = client
        self._v5 = v5
        self._settings = settings

    def route(self, devices: frozenset[str] | None) -> None:
        """The devices that reach a bed now (from the core thread): subscribe to theirs."""
        self.wanted = devices
        self._resubscribe()

    def flooding(self, now: float) -> list[Flooding]:
        """Sources over budget, and the devices cut off for flooding (from the core thread, once
        a second); a device whose time is up is subscribed to again."""
        found = self.inbox.flooding(now)
        with self._subs_lock:
            expired = [d for d, (until, _) in self._muted.items() if until <= now]
            for device in expired:
                del self._muted[device]
            seen = {f.source for f in found if f.proven}
            found += [
                Flooding(d, rate, True) for d, (_, rate) in self._muted.items() if d not in seen
            ]
        if expired:
            log.info("live feed: subscribing again to %s", ", ".join(expired))
            self._resubscribe()
        return found

    def _mute(self, device: str, rate: int) -> None:
        with self._subs_lock:
            if device in self._muted or self.wanted is None:
                return
            self._muted[device] = (self._monotonic() + MUTE_S, rate)
        log.warning(
            "live feed: %s floods (%d msg in under 1 s): unsubscribed for %.0f s",
            device,
            rate,
            MUTE_S,
        )
        self._resubscribe()

    def _resubscribe(self) -> None:
        """Bring the session's subscriptions to what the devices and mutes say (any thread:
        paho only queues the packets for its own thread). The packets are queued under the lock,
        so two threads cannot send their changes in the opposite order to their decisions."""
        with self._subs_lock:
            if not self._session:
                return
            wanted = self.wanted
            if wanted is not None:
                wanted = frozenset(d for d in wanted if d not in self._muted)
            want = device_topics(self._topics, wanted)
            new, gone = want - self._subscribed, self._subscribed - want
            self._subscribed = want
            if gone:
                self._client.unsubscribe(sorted(gone))
            if new:
                self._client.subscribe([(t, 0) for t in sorted(new)])
            elif not want:
                # No device to follow yet (a new ward): connected, with nothing to hear.
                self._set_connected(True, "live feed connected (no device on a bed yet)")

    def start(self) -> None:
        """Connect in the background; paho reconnects until :meth:`stop`."""
        m = self._settings.mqtt
        self._client.connect_async(
            m.host,
            m.port,
            keepalive=m.keepalive_s,
            clean_start=True if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        )
        start_loop(self._client, "live-mqtt")

    def alive(self) -> bool:
        """True while paho's network thread runs."""
        return loop_alive(self._client)

    def stop(self, timeout: float = 1.0) -> bool:
        """Disconnect and join the thread; whether it stopped within ``timeout``."""
        self._stopping.set()
        self._client.disconnect()
        return join_loop(self._client, timeout)

    # -- callbacks (live-mqtt thread) --------------------------------------------------------

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        return guard(fn, "the live feed")

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._set_connected(False, f"live feed refused: {reason}")
            return
        with self._subs_lock:
            self._session, self._subscribed = True, set()  # a clean session has none
        self._resubscribe()

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        # Connected but refused by the ACL is deaf, not live: the core must keep feeding the
        # screen from the recording session and say so.
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("live feed subscription refused by the broker: %s", ", ".join(refused))
            self._set_connected(False, f"live subscription refused: {', '.join(refused)}")
        else:
            self._set_connected(True, "live feed connected")

    def _on_disconnect(self, *_args: object) -> None:
        with self._subs_lock:
            self._session = False
        detail = "stopped" if self._stopping.is_set() else "live feed lost"
        self._set_connected(False, detail)

    def _set_connected(self, connected: bool, detail: str) -> None:
        if connected != self.connected:
            self.connected = connected
            self.connection_changed.emit(connected, detail)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            self.retained_skipped += 1  # a retained value is old: never live
            return
        payload = bytes(msg.payload)
        named = topic_device(msg.topic, self._topics)
        device = named or claimed_device(payload)
        wanted = self.wanted
        if wanted is not None and device not in wanted:
            self.unrouted_skipped += 1  # the record path lists it for an admin
            return
        source = source_key(device, named is not None)
        item = LiveItem(msg.topic, payload, self._now())
        if self.inbox.put(source, item, self._monotonic()):
            self.ready.emit()
        count, budget = self.inbox.last_count, self.inbox.budget
        over = count > MUTE_AFTER * budget or (count > budget and self.inbox.last_previous > budget)
        if named is not None and over:
            self._mute(named, max(count, self.inbox.last_previous))
