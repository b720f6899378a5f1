"""Ward events on the core thread: this station's limit changes told to the ward, and the other
stations' applied here (issue 15.10, "two stations, one ward").

Why a part of its own: a peer's event is input from the network like a device's vitals, so it is
read strictly, refused and counted when malformed, and never allowed to stop the core; and the
rules that keep a ward of stations consistent live in one place:

- **No echo.** Only a nurse's change here is published (:meth:`PeerEvents.publish_limits`, the
  keeper's ``share``); a peer's change is applied through
  :meth:`~station.services.ingest.bed_limits.BedLimitsKeeper.peer_change`, which publishes
  nothing. The MQTT worker does not hand back this station's own events, and an event naming
  this station, or one already applied (a QoS 1 redelivery), is dropped here too.
- **Who and where.** Each side audits ``alarm.limits_change`` in the nurse's name: here with the
  ward event's ``event_id``, there with the same ``event_id`` and ``via`` = this station.
- **Later wins.** A change older than the limits the bed has (two nurses at two stations at
  once) is refused on the station that has the later one, so every station ends with it.
- **Only listed, signing stations.** Every ward event this station publishes is signed by its
  key (the MQTT worker's :class:`~station.services.ingest.peer_seal.PeerSeal`), and a peer's is
  applied only once :class:`~station.services.ingest.peer_inbox.PeerInbox` has checked it came
  from a station of ``[peers] stations``, signed by that station's key.

A refusal is counted by reason (:attr:`PeerEvents.refused`) and audited as ``ward.peer_refused``
at most once a minute per station and reason, with how many were left out in between.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from station.domain.bed_limits import SavedLimits
from station.domain.ports import AuditSink
from station.domain.ward_events import (
    MAX_BED_PAUSE_S,
    USER_PATTERN,
    AudioPauseBed,
    LimitsChange,
    WardMessage,
    WardRefusal,
    WardSink,
    audio_pause_event,
    limits_change_event,
    parse_ward_event,
)
from station.services.ingest.bed_limits import BedLimitsKeeper
from station.services.ingest.pacing import Throttle

log = logging.getLogger(__name__)

SEEN_EVENTS = 1024
"""Ward event ids remembered to drop a redelivered one (the oldest go first)."""


class PeerEvents:
    """Publishes this station's ward events and applies the peers'. Core thread only.

    Args:
        station: this station's id.
        sink: the publisher (the MQTT worker), or None when the ward's stations are not told
            (tests, a core without a broker).
        limits: the keeper that applies a peer's limits change as it applies a nurse's.
        audit: the audit trail (refusals).
        throttle: the core's shared throttle (one refusal record a minute per key).
    """

    def __init__(
        self,
        station: str,
        sink: WardSink | None,
        limits: BedLimitsKeeper,
        audit: AuditSink,
        throttle: Throttle,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._station = station
        self._sink = sink
        self._limits = limits
        self._audit = audit
        self._throttle = throttle
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.refused: Counter[str] = Counter()
        """Peer events not applied, by reason (``invalid``, ``unknown_bed``, ``stale``, ...)."""
        self.applied = 0
        """Peer limit changes and audio pauses applied here."""
        self._clock = clock
        self.paused: Callable[[str, float], None] = lambda _bed, _seconds: None
        """Tells the screen a bed's audio pause from another station: (bed, seconds left; 0:
        resumed). The core's signal."""

    def publish_limits(self, entry: SavedLimits) -> str | None:
        """Tell the ward's other stations a nurse's new limits for a bed (all the bed's limits
        in force); returns the ward event's id for the audit record, or None when there is
        nobody to tell. The broker being away does not matter here: the publisher queues."""
        if self._sink is None:
            return None
        event_id = secrets.token_hex(8)
        event = limits_change_event(
            event_id, entry.bed, entry.limits, entry.profile, entry.by, entry.at
        )
        self._sink.publish_ward(event)
        return event_id

    def user_action(self, action: str, user: str, details: dict[str, object]) -> None:
        """An audio action taken on this station's screen: a bed's pause or its end is
        published; anything else is not the ward's business."""
        bed = details.get("bed")
        if not isinstance(bed, str):
            return
        if action == "alarm.audio_pause_bed":
            seconds = details.get("seconds")
            if isinstance(seconds, int | float):
                self.publish_pause(bed, float(seconds), user)
        elif action == "alarm.audio_resume_bed":
            self.publish_pause(bed, 0.0, user)

    def publish_pause(self, bed: str, seconds: float, by: str) -> None:
        """Tell the ward's other stations that a nurse here paused a bed's alarm audio for
        ``seconds`` (0: resumed it). A name the accounts would not allow (a resume made while
        the station is locked) is sent as ``unknown``."""
        if self._sink is None:
            return
        who = by if re.fullmatch(USER_PATTERN, by) else "unknown"
        seconds = round(min(max(seconds, 0.0), MAX_BED_PAUSE_S))
        event = audio_pause_event(secrets.token_hex(8), bed, seconds, who, self._clock())
        self._sink.publish_ward(event)

    def receive(self, message: WardMessage) -> None:
        """Read, check and apply a peer's ward event; refuse and count anything else. The
        event comes without its signature fields, from
        :class:`~station.services.ingest.peer_inbox.PeerInbox`, which checked that a station
        of ``[peers]`` signed it (the core never calls this directly)."""
        if message.station == self._station:
            return  # our own, should the broker hand it back: never applied twice
        result = parse_ward_event(message.payload)
        if isinstance(result, WardRefusal):
            self.refuse(message.station, result)
            return
        self._apply(message.station, result)

    def _apply(self, station: str, change: LimitsChange | AudioPauseBed) -> None:
        if change.event_id in self._seen:
            return  # a redelivery (QoS 1): applied once
        self._seen[change.event_id] = None
        if len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        if not self._limits.has_bed(change.bed):
            self.refuse(station, WardRefusal("unknown_bed", repr(change.bed)[:80]))
            return
        if isinstance(change, AudioPauseBed):
            self._pause(station, change)
            return
        if not self._limits.peer_change(change, station):
            detail = f"{change.bed}: this station's limits are newer"
            self.refuse(station, WardRefusal("stale", detail))
            return
        self.applied += 1
        log.info("limits of %s changed by %s at station %s", change.bed, change.by, station)

    def _pause(self, station: str, pause: AudioPauseBed) -> None:
        """A bed's audio paused or resumed at another station: the same here, audited with
        who and where; a pause already over when it arrives is only audited."""
        left = pause.remaining(self._clock())
        action = "alarm.audio_pause_bed" if pause.seconds else "alarm.audio_resume_bed"
        self._audit.record(
            action,
            actor=pause.by,
            role="nurse",
            target=self._station,
            details={
                "bed": pause.bed,
                "seconds": pause.seconds,
                "left": round(left, 1),
                "via": station[:64],
                "event_id": pause.event_id,
            },
        )
        if pause.seconds and left <= 0:
            return
        self.applied += 1
        self.paused(pause.bed, left)

    def refuse(self, station: str, refusal: WardRefusal) -> None:
        """Count a peer's ward event not applied, by reason, and audit it as
        ``ward.peer_refused`` at most once a minute per station and reason (the signature
        check refuses through here too, so one counter and one record say it all)."""
        self.refused[refusal.reason] += 1
        left_out = self._throttle(f"ward:{station[:64]}:{refusal.reason}")
        if left_out is None:
            return
        log.warning(
            "ward event from station %s refused: %s: %s (%d more not logged)",
            station[:64],
            refusal.reason,
            refusal.detail,
            left_out,
        )
        self._audit.record(
            "ward.peer_refused",
            target=station[:64],
            outcome="failure",
            details={"reason": refusal.reason, "detail": refusal.detail, "left_out": left_out},
        )
