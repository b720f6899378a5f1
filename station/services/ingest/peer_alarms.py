"""Peer acknowledgements on the core thread: another station's alarm event, taken only when a
trusted station of the ward signed it, and never for this station's own technical alarms.

Why a part of its own: an alarm event on ``healthcare/station/+/alarms`` acknowledges that alarm
here, so before the hardening any client able to publish there could silence any alarm of every
station, "audit trail rolled back" included, under any name, recorded as a nurse. Here:

- only an acknowledgement is looked at (an alarm event of state ``acknowledged``, or
  ``cleared`` with a user: a latched alarm acknowledged there); other state changes are the
  peer's own business and are never applied;
- it must be signed by a station listed in ``[peers] stations`` with its key
  (:class:`~station.domain.peer_signature.PeerKeys`): unsigned, signed with another key, altered,
  from an unlisted station or naming another station than its topic, it is refused;
- a trusted peer may acknowledge physiological alarms, a device's own alert and a device's
  technical alarms named from the device's data (both stations see them alike), never this
  station's own technical alarms (:meth:`AlarmChanges.peer_acknowledge`);
- what is applied is recorded as ``<user>@<station>`` in role ``peer`` with ``via`` = that
  station: the name is that station's word, not a login here.

A refusal is counted by reason (:attr:`PeerAlarms.refused`) and audited as
``alarm.peer_refused`` at most once a minute per peer station, with how many were left out.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

from station.domain.peer_signature import PeerKeys, PeerRefusal
from station.domain.ports import AuditSink
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.pacing import Throttle

log = logging.getLogger(__name__)

ACKNOWLEDGING = ("acknowledged", "cleared")
"""Alarm event states that carry an acknowledgement (with a user; a plain clear has none)."""
ALARM_ID = re.compile(r"[0-9a-f]{16}")
PEER_USER = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
"""A peer's ``by``: the user there, or what a third station relayed (``<user>@<station>``);
bounded, no control characters, as it goes into this station's audit trail and screen."""


def _acknowledgement(event: dict[str, object]) -> tuple[str, str] | PeerRefusal:
    """The alarm id and the user of a signed acknowledgement, or why they cannot be taken."""
    alarm_id, by = event.get("alarm_id"), event.get("by")
    if not isinstance(alarm_id, str) or not ALARM_ID.fullmatch(alarm_id):
        return PeerRefusal("invalid", f"alarm_id {str(alarm_id)[:40]!r}")
    if not isinstance(by, str) or not PEER_USER.fullmatch(by):
        return PeerRefusal("invalid", "by is not a user name")
    return alarm_id, by


class PeerAlarms:
    """Checks and applies the ward's other stations' acknowledgements. Core thread only.

    Args:
        station: this station's id.
        keys: the allowlist of peer stations and their public keys.
        alarms: the alarm changes, which apply an acknowledgement and hand it on.
        audit: the audit trail (refusals).
        throttle: the core's shared throttle (one refusal record a minute per peer).
    """

    def __init__(
        self,
        station: str,
        keys: PeerKeys,
        alarms: AlarmChanges,
        audit: AuditSink,
        throttle: Throttle,
    ) -> None:
        self._station = station
        self._keys = keys
        self._alarms = alarms
        self._audit = audit
        self._throttle = throttle
        self.refused: Counter[str] = Counter()
        """Peer acknowledgements not applied, by reason."""
        self.applied = 0
        """Peer acknowledgements taken (whether or not the alarm was still open here)."""

    def receive(self, station: str, event: dict[str, object]) -> None:
        """An alarm event of ``station`` (the topic's): apply it if it is an acknowledgement
        this station may take, refuse and count it if it is one it may not."""
        if station == self._station:
            return  # our own, should the broker hand it back
        if event.get("state") not in ACKNOWLEDGING or event.get("by") is None:
            return  # a raise, an escalation, a clear by the condition: nothing to apply here
        alarm_id = event.get("alarm_id")
        fields = self._keys.check(event, station) or _acknowledgement(event)
        if isinstance(fields, PeerRefusal):
            self._refuse(station, fields, alarm_id)
            return
        alarm_id, by = fields
        if not self._alarms.peer_acknowledge(station, alarm_id, by):
            detail = "this station's own technical alarm: only a nurse here acknowledges it"
            self._refuse(station, PeerRefusal("own_alarm", detail), alarm_id)
            return
        self.applied += 1

    def _refuse(self, station: str, refusal: PeerRefusal, alarm_id: object) -> None:
        self.refused[refusal.reason] += 1
        name = station[:64]
        left_out = self._throttle(f"alarm-peer:{name}")
        if left_out is None:
            return
        log.warning(
            "acknowledgement from station %s refused: %s: %s (%d more not logged)",
            name,
            refusal.reason,
            refusal.detail,
            left_out,
        )
        self._audit.record(
            "alarm.peer_refused",
            target=name,
            outcome="failure",
            details={
                "reason": refusal.reason,
                "detail": refusal.detail,
                "alarm_id": alarm_id[:40] if isinstance(alarm_id, str) else None,
                "left_out": left_out,
            },
        )
