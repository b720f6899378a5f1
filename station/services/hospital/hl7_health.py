"""How the HL7 interface is doing, told once per change: the audit trail, the station's technical
alarms and the status bar's words.

Why one place: the sender sees every try, but people must see changes, not tries. A connection
that goes down is audited once (``hl7.connection``), not once per retry. Trouble that lasts
``down_alarm_s`` becomes the technical alarm ``hl7`` (medium: the ward's own screen still alarms,
but a pager or the record fed by the engine does not), cleared by the next accepted message:

- *down*: no connection, no answer, an answer that is not this message's ACK; from the first
  failed try (the sender retries, so a lasting outage keeps failing);
- *not accepting*: ``AR``/``CE`` answers, retried like no answer;
- *refusing*: ``AE``/``CR`` (quarantined at once) only once :data:`REFUSALS` messages in a row
  were refused, counted from the first of them. One refused message is that message's fault, not
  the engine's: with little traffic (observations off) it would otherwise raise the alarm after
  ``down_alarm_s`` of an engine that works.

An outbox that is full or cannot be used becomes ``hl7_outbox``. All times are monotonic: a clock
step neither raises nor hides the alarm.

Thread-safe: the ``hl7-out`` thread reports, the GUI thread reads :meth:`Health.status`, which
does no I/O.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from station.domain.ports import AuditSink

log = logging.getLogger(__name__)

DOWN = "hl7"
OUTBOX = "hl7_outbox"
PRIORITY = "medium"
REFUSALS = 3
"""Refused messages in a row (nothing accepted between) before refusals are the engine's trouble."""
_UNREACHABLE, _DEFERRING, _REFUSING = "down", "deferring", "refusing"
_WORDS = {
    _UNREACHABLE: ("down", "down"),
    _DEFERRING: ("not accepting messages", "not accepting"),
    _REFUSING: ("refusing messages", "refused"),
}
"""Trouble kind → (the alarm's words, the status bar's)."""

Condition = Callable[[str, bool, str, str], None]
"""Raise (True) or clear (False) a station technical alarm: parameter, present, priority,
message (:meth:`station.links.StationConditions.set`)."""


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


class Health:
    """See the module docstring. ``peer`` is ``host:port`` (no secret in it)."""

    def __init__(
        self,
        *,
        audit: AuditSink,
        condition: Condition,
        monotonic: Callable[[], float],
        down_alarm_s: float,
        peer: str,
    ) -> None:
        self._audit = audit
        self._condition = condition
        self._clock = monotonic
        self._down_alarm_s = down_alarm_s
        self._peer = peer
        self._lock = threading.Lock()
        self._link: str | None = None  # None until the first try, then "up" or "down"
        self._trouble_since: float | None = None
        self._trouble = ""
        self._kind = _UNREACHABLE
        self._refusals = 0  # refused in a row, nothing accepted since the first
        self._refused_since = 0.0
        self._alarm = False
        self._queued = 0
        self._full = False
        self._held = False
        self._faults: dict[str, str] = {}
        self._outbox_alarm = ""
        self.rejected = 0
        """Messages the engine refused (or that could not be rendered) since the start."""

    # -- reports from the sender (hl7-out thread) ----------------------------------------------

    def connected(self) -> None:
        """A connection opened. With nothing waiting, that is enough to call the engine back,
        unless it was refusing messages: only an accepted one says it takes them again."""
        self._set_link("up", "")
        with self._lock:
            refusing = self._trouble_since is not None and self._kind == _REFUSING
            idle = self._queued == 0 and not refusing
        if idle:
            self._recovered()

    def failed(self, reason: str) -> None:
        """A try failed: no connection, no ACK in time, an answer that is not one."""
        self._set_link("down", reason)
        self._troubled(reason, _UNREACHABLE)

    def deferred(self, code: str) -> None:
        """The engine answered ``AR``/``CE``: the message stays queued and is tried again; trouble
        as much as no answer."""
        self._set_link("up", "")  # it answered
        self._troubled(f"answered {code}", _DEFERRING)

    def gave_up(self, code: str) -> None:
        """A message answered ``AR``/``CE`` too often was quarantined: counted; the trouble goes
        on until a message is accepted."""
        with self._lock:
            self.rejected += 1
        self.deferred(code)

    def accepted(self) -> None:
        """The engine accepted a message (``AA``)."""
        with self._lock:
            self._refusals = 0
        self._set_link("up", "")
        self._recovered()

    def unsendable(self) -> None:
        """A message could not be rendered (a fault of this station, not of the engine): counted
        with the refused ones for the status bar; the sender audits and logs it."""
        with self._lock:
            self.rejected += 1

    def refused(self, code: str) -> None:
        """The engine refused a message (``AE``/``CR``): trouble only from the
        :data:`REFUSALS`-th in a row, dated from the first of them."""
        with self._lock:
            self.rejected += 1
            self._refusals += 1
            if self._refusals == 1:
                self._refused_since = self._clock()
            streak, since = self._refusals, self._refused_since
        self._set_link("up", "")  # it answered
        if streak >= REFUSALS:
            self._troubled(f"{streak} messages refused in a row ({code})", _REFUSING, since)

    def queue(self, queued: int, full: bool, held: bool = False) -> None:
        """The outbox's size, whether its budget holds reports back, and whether observations
        are held (the patient table could not be read: whose consent is missing is unknown)."""
        with self._lock:
            self._queued = queued
            self._held = held
            changed = full != self._full
            self._full = full
        if changed:
            self._audit.record(
                "hl7.outbox_full",
                outcome="failure" if full else "success",
                details={"state": "full" if full else "ok", "queued": queued},
            )
            self._outbox_condition()

    def fault(self, problem: str | None, part: str = "outbox") -> None:
        """``part`` (``outbox``, ``stores``, ``tls``) cannot be used (``problem``), or can again
        (None). Each part's changes are audited once (``hl7.fault``)."""
        with self._lock:
            was = self._faults.get(part)
            if problem is None:
                self._faults.pop(part, None)
            else:
                self._faults[part] = problem
        if problem == was:
            return
        if problem is None:
            log.info("HL7 interface: %s usable again", part)
            self._audit.record("hl7.fault", details={"part": part, "state": "recovered"})
        else:
            log.error("HL7 interface: %s", problem)
            self._audit.record(
                "hl7.fault", outcome="failure", details={"part": part, "error": problem}
            )
        self._outbox_condition()

    def tick(self) -> None:
        """Raise the ``hl7`` alarm once trouble has lasted ``down_alarm_s`` (any thread)."""
        with self._lock:
            since, raised = self._trouble_since, self._alarm
            due = since is not None and not raised
            due = due and self._clock() - since >= self._down_alarm_s  # type: ignore[operator]
            if due:
                self._alarm = True
                what = _WORDS[self._kind][0]
                message = (
                    f"HL7 interface {what} for {_age(self._clock() - since)}"  # type: ignore[operator]
                    f" ({self._trouble}): {self._queued} messages waiting"
                )
        if due:
            self._condition(DOWN, True, PRIORITY, message)

    # -- the status bar (GUI thread) -----------------------------------------------------------

    def status(self) -> str:
        """A few words: ``HL7: up``, ``HL7: sending, 120 queued``, ``HL7: down 3 min, 120
        queued``; with what was refused and a full outbox. No I/O."""
        with self._lock:
            now = self._clock()
            if self._faults:
                words = "HL7: fault"
            elif self._trouble_since is not None:
                what = _WORDS[self._kind][1]
                words = f"HL7: {what} {_age(now - self._trouble_since)}"
            elif self._link is None:
                words = "HL7: connecting"
            elif self._queued and not self._held:
                words = "HL7: sending"
            else:
                words = "HL7: up"
            if self._queued:
                words += f", {self._queued} queued"
            if self.rejected:
                words += f", {self.rejected} rejected"
            if self._full:
                words += " · outbox full"
            if self._held:
                words += " · observations held (patient table unreadable)"
            return words

    # -- inside --------------------------------------------------------------------------------

    def _set_link(self, state: str, reason: str) -> None:
        with self._lock:
            changed = state != self._link
            self._link = state
        if changed:
            log.info("HL7 interface %s (%s)%s", state, self._peer, f": {reason}" if reason else "")
            details: dict[str, object] = {"state": state, "peer": self._peer}
            if reason:
                details["reason"] = reason
            self._audit.record(
                "hl7.connection",
                target=self._peer,
                outcome="success" if state == "up" else "failure",
                details=details,
            )

    def _troubled(self, reason: str, kind: str, since: float | None = None) -> None:
        with self._lock:
            start = self._clock() if since is None else since
            if self._trouble_since is None or start < self._trouble_since:
                self._trouble_since = start
            self._trouble = reason
            self._kind = kind
        self.tick()

    def _recovered(self) -> None:
        with self._lock:
            raised = self._alarm
            self._trouble_since = None
            self._trouble = ""
            self._kind = _UNREACHABLE
            self._alarm = False
        if raised:
            self._condition(DOWN, False, PRIORITY, "HL7 interface working again")

    def _outbox_condition(self) -> None:
        with self._lock:
            if self._faults:
                message = f"HL7 interface cannot work: {'; '.join(self._faults.values())}"
            elif self._full:
                message = (
                    f"HL7 outbox full ({self._queued} messages): new reports wait in the"
                    " stores until the engine takes the backlog"
                )
            else:
                message = ""
            was, self._outbox_alarm = self._outbox_alarm, message
        if message != was:
            self._condition(OUTBOX, bool(message), PRIORITY, message or "HL7 outbox usable")
