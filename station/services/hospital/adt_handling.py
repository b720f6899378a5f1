"""One ADT message from frame to ACK: read, checked, handed to the admission path, answered.

Runs on the listener's thread (``adt-listener``, :mod:`.adt_listener`); it blocks there, for at
most ``reply_timeout_s``, while the admission path (the GUI thread's ward admin and its worker)
applies the request: the ACK says AA only once the change is saved, so nothing acknowledged is
lost. When the answer does not come in time (a GUI held up, a disk that does not answer) no ACK
is sent and the connection closes: the engine resends, and the resend, found here by its
control id, gets the answer that came meanwhile, never a second change. A resend after a restart
(the ids are kept in memory only) is planned again, and a change already in force plans to
nothing (:mod:`station.domain.adt.planning`).

Every message is audited (``adt.received``: event, control id, ACK code, outcome, reason, the
patient's pseudonymous id) under the interface's actor, and reported to the admin's journal;
names, MRNs and birth dates go to neither, nor to the log.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import traceback
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Protocol

from station.domain.adt.ack import Sender, build_ack
from station.domain.adt.beds import BedMap
from station.domain.adt.feed import Received
from station.domain.adt.framing import Frame, Oversized
from station.domain.adt.parsing import Receiver, check_header, decode, parse_request, read_header
from station.domain.adt.requests import (
    ErrorCode,
    Header,
    PlacedRequest,
    Refusal,
    content_error,
    header_error,
)
from station.domain.ports import AuditSink
from station.domain.roles import INTERFACE_ROLE, interface_actor

log = logging.getLogger(__name__)

SEEN_MAX = 1000
"""Control ids remembered for resends (the newest)."""
WAIT_SLICE_S = 0.1
"""How often a wait for the admission path looks whether the station is stopping."""
FAULT = "fault"
"""The outcome of a message the station failed on (a bug): audited, journalled, alarmed."""


@dataclass(frozen=True, slots=True)
class Applied:
    """The admission path's answer when it did what was asked (``changed``) or found nothing
    to do; ``reason`` in words, the patient's pseudonym and the bed where known."""

    reason: str
    patient: str = ""
    bed: str = ""
    changed: bool = True


@dataclass(frozen=True, slots=True)
class NotNow:
    """The admission path cannot answer now (the station is stopping): no ACK, the engine
    resends."""

    reason: str


Answer = Applied | Refusal | NotNow


class Pending:
    """A request handed to the admission path, answered once from another thread."""

    def __init__(self) -> None:
        self._settled = threading.Event()
        self._answer: Answer | None = None

    def settle(self, answer: Answer) -> None:
        """The answer (the first one counts); any thread."""
        if not self._settled.is_set():
            self._answer = answer
            self._settled.set()

    def wait(self, timeout: float) -> Answer | None:
        """The answer, or None if none came within ``timeout`` seconds."""
        self._settled.wait(max(0.0, timeout))
        return self._answer


class Admissions(Protocol):
    """What the handler needs of the admission path (the GUI thread's bridge); thread-safe."""

    def apply(self, placed: PlacedRequest) -> Pending:
        """Hand ``placed`` to the ward admin; the answer follows on the returned object."""
        ...

    def report(self, entry: Received) -> None:
        """Journal one message for the admin's view (and the "refused" alarm)."""
        ...


@dataclass(frozen=True, slots=True)
class _Seen:
    digest: bytes
    pending: Pending


class AdtHandler:
    """See the module docstring. Used by one thread (the listener's).

    Args:
        receiver: what MSH must say (receiving application and facility, processing id).
        sender: how the ACK names the station when the message did not.
        beds: PV1-3 → the station's beds.
        admissions: the admission path.
        audit: the trail (thread-safe).
        name: the feed's name for the actor (``adt:<name>``); empty: the sending facility.
        reply_timeout_s: longest wait for the admission path.
        wall: wall time (MSH-7, the journal); monotonic: for the wait.
        stopping: True once the listener is stopping (a wait ends at once, unanswered).
    """

    def __init__(
        self,
        *,
        receiver: Receiver,
        sender: Sender,
        beds: BedMap,
        admissions: Admissions,
        audit: AuditSink,
        name: str,
        reply_timeout_s: float,
        wall: Callable[[], float],
        monotonic: Callable[[], float],
        stopping: Callable[[], bool],
    ) -> None:
        self._receiver, self._sender, self._beds = receiver, sender, beds
        self._admissions, self._audit, self._name = admissions, audit, name
        self._timeout, self._wall, self._monotonic = reply_timeout_s, wall, monotonic
        self._stopping = stopping
        self._seen: OrderedDict[tuple[str, str, str], _Seen] = OrderedDict()
        self._ids = count(1)
        self._start = int(wall())

    def handle(self, frame: Frame, peer: str) -> bytes | None:
        """The ACK for ``frame`` (ER7, UTF-8, not yet framed), or None: no answer in time,
        close the connection without one. Never raises.

        A fault here (a bug) must not stall the feed unseen, as leaving it unanswered would:
        the engine would resend the same message forever while the status bar says
        "listening". So it is audited and journalled (outcome ``fault``, which raises the "ADT
        message refused" alarm) and answered AE with code 207 (application internal error),
        which the engine's operator sees; a message whose header cannot be read even so is left
        unanswered (an ACK without MSA-2 matches nothing)."""
        try:
            return self._handle(frame, peer)
        except Exception as exc:  # its message may quote the message's values: not logged
            return self._fault(frame, peer, exc)

    def _handle(self, frame: Frame, peer: str) -> bytes | None:
        if isinstance(frame, Oversized):
            return self._oversized(frame, peer)
        text = decode(frame)
        try:
            header = read_header(text)
        except Refusal as refusal:
            return self._refuse(None, refusal, peer, "rejected", self._actor(None))
        actor = self._actor(header)
        key = (header.sending_application.namespace, header.sending_facility.namespace,
               header.control_id)  # fmt: skip
        digest = hashlib.sha256(frame).digest()
        seen = self._seen.get(key)
        if seen is not None and header.control_id:
            if seen.digest != digest:
                reused = header_error(
                    ErrorCode.DUPLICATE_KEY,
                    "this control id was used for another message",
                    "MSH^1^10",
                )
                return self._refuse(header, reused, peer, "rejected", actor)
            return self._await(header, seen.pending, peer, actor, duplicate=True)
        try:
            event = check_header(header, self._receiver)
            if event is None:
                applied = Applied(f"event {_clean(header.trigger, 8)} is not read here", "", "")
                return self._reply(header, applied, peer, actor, "no change")
            request = parse_request(text, header, event)
        except Refusal as refusal:
            return self._refuse(header, refusal, peer, "rejected", actor)
        placed = PlacedRequest(
            request, self._beds.place(request.location), self._beds.place(request.prior), actor
        )
        pending = self._admissions.apply(placed)
        self._seen[key] = _Seen(digest, pending)
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        return self._await(header, pending, peer, actor, bed=placed.location.bed or "")

    # -- answers -----------------------------------------------------------------------------

    def _await(
        self,
        header: Header,
        pending: Pending,
        peer: str,
        actor: str,
        *,
        duplicate: bool = False,
        bed: str = "",
    ) -> bytes | None:
        deadline = self._monotonic() + self._timeout
        answer = None
        while answer is None and not self._stopping():
            left = deadline - self._monotonic()
            if left <= 0:
                break
            answer = pending.wait(min(WAIT_SLICE_S, left))
        if answer is None or isinstance(answer, NotNow):
            if isinstance(answer, NotNow):
                reason = answer.reason
            elif self._stopping():
                reason = "the station is stopping"
            else:
                reason = f"not applied within {self._timeout:g} s"
            self._record(header, "", "no reply", reason, peer, actor, bed=bed)
            log.warning(
                "ADT %s %s: no ACK sent (%s)", _clean(header.trigger, 8), _id(header), reason
            )
            return None
        if isinstance(answer, Refusal):
            outcome = "duplicate" if duplicate else "refused"
            return self._refuse(header, answer, peer, outcome, actor, bed=bed)
        outcome = "duplicate" if duplicate else "applied" if answer.changed else "no change"
        return self._reply(header, answer, peer, actor, outcome)

    def _reply(
        self, header: Header, applied: Applied, peer: str, actor: str, outcome: str
    ) -> bytes:
        self._record(
            header, "AA", outcome, applied.reason, peer, actor, applied.patient, applied.bed
        )
        return self._ack(header, None)

    def _refuse(
        self,
        header: Header | None,
        refusal: Refusal,
        peer: str,
        outcome: str,
        actor: str,
        *,
        bed: str = "",
    ) -> bytes:
        self._record(header, refusal.ack, outcome, refusal.reason, peer, actor, bed=bed)
        log.warning(
            "ADT %s %s: %s %s (%s)",
            _clean(header.trigger, 8) if header else "?",
            _id(header),
            refusal.ack,
            _clean(refusal.reason, 200),
            _clean(refusal.where, 40) or "-",
        )
        return self._ack(header, refusal)

    def _oversized(self, frame: Oversized, peer: str) -> bytes:
        try:
            header: Header | None = read_header(decode(frame.head))
        except Refusal:
            header = None
        refusal = header_error(
            ErrorCode.SEGMENT_SEQUENCE,
            f"message of {frame.size // 1024} KiB is larger than this station takes",
        )
        return self._refuse(header, refusal, peer, "rejected", self._actor(header))

    def _fault(self, frame: Frame, peer: str, exc: Exception) -> bytes | None:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        kind = type(exc).__name__
        try:
            header = _header_of(frame)
            answered = "AE sent" if header is not None else "no ACK sent"
            log.error(
                "ADT %s %s from %s: not handled (%s at %s:%s); %s",
                _clean(header.trigger, 8) if header else "?", _id(header), peer, kind,
                where.filename, where.lineno, answered,
            )  # fmt: skip
            refusal = content_error(
                ErrorCode.INTERNAL_ERROR, f"internal error at the station ({kind}, see its log)"
            )
            ack = refusal.ack if header is not None else ""
            self._record(header, ack, FAULT, refusal.reason, peer, self._actor(header))
            return self._ack(header, refusal) if header is not None else None
        except Exception as again:  # the trail or the ACK failing too: still never raise
            log.error("ADT: a fault (%s) not answered: %s as well", kind, type(again).__name__)
            return None

    def _actor(self, header: Header | None) -> str:
        """``adt:<name>``: the configured name, else the sending facility (MSH-4)."""
        sender = header.sending_facility.namespace if header is not None else ""
        return interface_actor("adt", self._name or sender)

    def _ack(self, header: Header | None, refusal: Refusal | None) -> bytes:
        control_id = f"ADT{self._start % 10**9}{next(self._ids)}"
        at = datetime.fromtimestamp(self._wall())
        text = build_ack(header, refusal, sender=self._sender, control_id=control_id, at=at)
        return text.encode("utf-8")

    def _record(
        self,
        header: Header | None,
        ack: str,
        outcome: str,
        reason: str,
        peer: str,
        actor: str,
        patient: str = "",
        bed: str = "",
    ) -> None:
        event = _clean(header.trigger, 8) if header is not None else ""
        control_id = _clean(header.control_id, 40) if header is not None else ""
        reason = _clean(reason, 200)
        details: dict[str, object] = {
            "event": event,
            "control_id": control_id,
            "ack": ack or "none",
            "outcome": outcome,
            "peer": peer,
        }
        if reason:
            details["reason"] = reason
        if patient:
            details["patient"] = patient
        success = ack == "AA"
        self._audit.record(
            "adt.received",
            actor=actor,
            role=INTERFACE_ROLE,
            target=bed or "adt",
            outcome="success" if success else "failure",
            details=details,
        )
        entry = Received(self._wall(), event, control_id, bed, ack, outcome, reason, patient, peer)
        self._admissions.report(entry)


def _clean(text: str, limit: int) -> str:
    """Text from the network fit for the trail and the log: no control characters nor line or
    paragraph separators (a peer could otherwise forge lines), bounded."""
    kept = "".join(c for c in text if unicodedata.category(c)[0] != "C" and c not in "\u2028\u2029")
    return kept[:limit]


def _header_of(frame: Frame) -> Header | None:
    """The MSH of ``frame`` for the answer to a fault, or None when it cannot be read."""
    try:
        return read_header(decode(frame.head if isinstance(frame, Oversized) else frame))
    except Exception:  # a Refusal, or the fault itself again: no header to answer with
        return None


def _id(header: Header | None) -> str:
    return _clean(header.control_id, 40) if header is not None else "(no control id)"
