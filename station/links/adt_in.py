"""The ADT feed (``[adt]``), built from the app's parts: listener, handler and the bridge to the
ward admin, wired (``docs/adt-inbound.md``).

What the screen needs of it reaches the UI through the ward admin, which the dialogs already
hold: :attr:`WardAdmin.adt_feed` is set here to the feed's census (the admit dialog's look-up)
and journal (Manage ▾ ADT messages…). The status bar's words come from :meth:`AdtLink.status`.

Technical alarms: ``adt`` (MEDIUM) while the listener cannot listen (port in use, TLS files
unusable, a ``[adt] beds`` table the ward does not fit): admissions from the hospital would not
reach the beds (audited once per problem, ``adt.fault``; ``adt.listening`` once it listens);
``adt_refused`` (LOW) from a refused message until an admin has seen it.
"""

from __future__ import annotations

import logging

from station.domain.adt.ack import Sender
from station.domain.adt.beds import BedMap
from station.domain.adt.feed import AdtFeed
from station.domain.adt.framing import Frame
from station.domain.adt.parsing import Receiver
from station.links.parts import LinkParts
from station.presenters.adt_admissions import REFUSED_ALARM, AdtAdmissions
from station.services.hospital.adt_handling import AdtHandler
from station.services.hospital.adt_listener import AdtListener

log = logging.getLogger(__name__)

LISTENER_ALARM = "adt"


def build(parts: LinkParts) -> AdtLink | None:
    """The ADT link, or None when ``[adt]`` is off."""
    if not parts.settings.adt.enabled:
        return None
    return AdtLink(parts)


class AdtLink:
    """See the module docstring. Built and asked for its status on the GUI thread."""

    def __init__(self, parts: LinkParts) -> None:
        section = parts.settings.adt
        self._conditions, self._clock = parts.conditions, parts.clock
        self.feed = AdtFeed.empty()
        parts.ward.adt_feed = self.feed
        self.admissions = AdtAdmissions(
            parts.ward, self.feed, self._refused_alarm, wall=parts.clock.now
        )
        self.problem = ""
        self._audit = parts.audit
        self._said = ""  # the last state audited (the listener's thread, or start before it)
        try:
            beds = BedMap(parts.ward.beds, section.point_of_care, section.beds)
        except ValueError as exc:  # the ward and [adt] beds disagree: said at start
            self.problem = str(exc)
            beds = BedMap(parts.ward.beds)
        receiver = Receiver(
            section.receiving_application, section.receiving_facility, section.processing_id
        )
        sender = Sender(
            section.receiving_application or "CENTRAL-STATION", section.receiving_facility
        )
        self.listener = AdtListener(section, self._handle, self._on_state, parts.audit,
                                    parts.clock.monotonic)  # fmt: skip
        self.handler = AdtHandler(
            receiver=receiver,
            sender=sender,
            beds=beds,
            admissions=self.admissions,
            audit=parts.audit,
            name=section.name,
            reply_timeout_s=section.reply_timeout_s,
            wall=parts.clock.now,
            monotonic=parts.clock.monotonic,
            stopping=lambda: self.listener.stopping,
        )

    def start(self) -> None:
        """Start listening (the port opens on the listener's thread)."""
        if self.problem:
            log.error("ADT: not started: %s", self.problem)
            self._on_state("not listening", self.problem)
            return
        self.listener.start()

    def request_stop(self) -> None:
        """Tell the listener to stop without waiting (:meth:`HospitalLinks.stop` tells every
        interface before it waits for any)."""
        self.listener.request_stop()

    def stop(self, timeout: float) -> bool:
        """Close the port and connections; a message waiting for the ward admin gets no ACK
        (the engine resends it to the next start)."""
        return self.listener.stop(timeout)

    def status(self) -> str | None:
        """``ADT: listening :2576, 12 today`` or what keeps it from listening (no I/O)."""
        state = self.feed.state
        if state.startswith("listening"):
            return f"ADT: {state}, {self.feed.today(self._clock.now())} today"
        return f"ADT: {state}"

    def _handle(self, frame: Frame, peer: str) -> bytes | None:
        return self.handler.handle(frame, peer)

    def _on_state(self, state: str, problem: str) -> None:
        """From the listener's thread (or the start): the alarm, the words for the screen, and
        an audit record when it starts listening or a new problem keeps it from it (not each
        retry)."""
        if problem:
            message = f"ADT feed not received: {problem}"
            self._conditions.set(LISTENER_ALARM, True, "medium", message)
        else:
            self._conditions.set(LISTENER_ALARM, False, "medium", "")
        said = problem or state
        if said != self._said and state != "stopped":
            self._said = said
            if problem:
                details: dict[str, object] = {"error": problem[:300]}
                self._audit.record("adt.fault", target="adt", outcome="failure", details=details)
            else:
                self._audit.record("adt.listening", target="adt", details={"state": state})
        self.admissions.listening(state, problem)

    def _refused_alarm(self, present: bool, message: str) -> None:
        self._conditions.set(REFUSED_ALARM, present, "low", message)
