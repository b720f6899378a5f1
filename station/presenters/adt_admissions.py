"""The ADT feed's way into the admission path: the same :class:`WardAdmin` the dialogs use.

Three threads meet here:

- the **listener** (``adt-listener``) calls :meth:`AdtAdmissions.apply` with a request it has
  read and validated, and waits (bounded) on the :class:`~station.services.hospital.adt_handling.
  Pending` it gets back; it also calls :meth:`~AdtAdmissions.report` and
  :meth:`~AdtAdmissions.listening`. Each only emits a signal, queued to
- the **GUI thread**, where this object lives: it keeps the census and the journal
  (:class:`~station.domain.adt.feed.AdtFeed`), raises and ends the "ADT message refused"
  technical alarm, and hands the request to :meth:`WardAdmin.apply`, whose
- **worker** (``ward-admin``) decides against the saved table (:func:`execute`, with
  :func:`~station.domain.adt.planning.plan`) and makes the change with the dialog's own
  operations, audited there under the feed's actor (``adt:<name>``) and role ``interface``. The
  ward admin puts it in force on the GUI thread (bed policy to the core, tiles refreshed) and
  calls back; the callback settles the listener's wait, so the ACK says AA only once the change
  is saved.

An admission by the feed is an admission like the dialog's: no consent is recorded with it (the
nurse asks at the bedside, ``[patients] consent_policy``), so the tile hides the name until then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from station.domain.adt.feed import AdtFeed, Announced, Received
from station.domain.adt.planning import (
    CONFLICT,
    Admit,
    Correct,
    Discharge,
    Nothing,
    Readmit,
    Transfer,
    plan,
)
from station.domain.adt.requests import (
    ANNOUNCING,
    ErrorCode,
    Event,
    PlacedRequest,
    Refusal,
    content_error,
)
from station.domain.patients.records import Patient
from station.domain.roles import INTERFACE_ROLE
from station.presenters.ward_admin import WardAdmin
from station.services.hospital.adt_handling import FAULT, Answer, Applied, NotNow, Pending
from station.services.jobs import JobsStoppedError
from station.services.storage.patient_store import PatientStoreError
from station.services.ward_changes import REFUSALS, Outcome, WardChanges

log = logging.getLogger(__name__)

REFUSED_ALARM = "adt_refused"
"""The station's technical alarm while a refused ADT message has not been seen by an admin."""
LEAVING = frozenset({Event.DISCHARGE, Event.CANCEL_ADMIT})
"""Events after which the patient is no longer offered to the admit dialog."""

Alarm = Callable[[bool, str], None]
"""``alarm(present, message)``: raise or end the "ADT message refused" technical alarm."""


class AdtAdmissions(QObject):
    """See the module docstring. Lives on the GUI thread (create it there).

    Signals:
        changed(): the feed's census, journal or state changed (GUI thread).
    """

    changed = Signal()
    _wanted = Signal(object)  # (PlacedRequest, Pending), from the listener
    _heard = Signal(object)  # Received, from the listener
    _state = Signal(str, str)  # (state, problem), from the listener

    def __init__(
        self,
        ward: WardAdmin,
        feed: AdtFeed,
        alarm: Alarm,
        *,
        wall: Callable[[], float],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._ward, self.feed, self._alarm, self._wall = ward, feed, alarm, wall
        self._alarmed = False
        queued = Qt.ConnectionType.QueuedConnection
        self._wanted.connect(self._on_wanted, queued)
        self._heard.connect(self._on_heard, queued)
        self._state.connect(self._on_state, queued)
        feed.on_seen = self._seen

    # -- any thread (the listener's) -------------------------------------------------------

    def apply(self, placed: PlacedRequest) -> Pending:
        """Hand ``placed`` to the GUI thread; the answer follows on the returned object."""
        pending = Pending()
        self._wanted.emit((placed, pending))
        return pending

    def report(self, entry: Received) -> None:
        """Journal one answered (or unanswered) message."""
        self._heard.emit(entry)

    def listening(self, state: str, problem: str) -> None:
        """The listener's state in words, and what keeps it from listening ("" when nothing)."""
        self._state.emit(state, problem)

    # -- GUI thread ------------------------------------------------------------------------

    @Slot(object)
    def _on_wanted(self, job: tuple[PlacedRequest, Pending]) -> None:
        placed, pending = job
        self._announce(placed)

        def failed(exc: Exception) -> None:
            pending.settle(_answer_for(exc))

        work = lambda changes: execute(placed, changes)  # noqa: E731
        self._ward.apply(work, done=pending.settle, failed=failed, context=self)

    @Slot(object)
    def _on_heard(self, entry: Received) -> None:
        self.feed.record(entry)
        # A fault is alarmed even unanswered: the engine's resends would otherwise stall unseen.
        if entry.ack in {"AE", "AR"} or entry.outcome == FAULT:
            where = f" ({entry.bed})" if entry.bed else ""
            event = entry.event or "message"
            self._alarm(
                True,
                f"ADT {event}{where} not applied: {entry.reason} (Manage ▾ ADT messages)",
            )
            self._alarmed = True
        self.changed.emit()

    @Slot(str, str)
    def _on_state(self, state: str, problem: str) -> None:
        self.feed.state = f"{state}: {problem}" if problem else state
        self.feed.touched()
        self.changed.emit()

    def _seen(self) -> None:
        """An admin has the journal in view: the refused message is known."""
        if self._alarmed:
            self._alarmed = False
            self._alarm(False, "")

    def _announce(self, placed: PlacedRequest) -> None:
        """Keep the patient for the admit dialog's look-up (this ward's only), or forget one
        who left."""
        request = placed.request
        person = request.person
        if request.event in LEAVING or (
            request.event is Event.TRANSFER and placed.location.elsewhere
        ):
            self.feed.census.forget(person.mrn)
        elif request.event in ANNOUNCING and person.name and not placed.location.elsewhere:
            self.feed.census.announce(
                Announced(
                    person.mrn,
                    person.name,
                    person.birth_date,
                    placed.location.bed,
                    request.event.value,
                    self._wall(),
                )
            )
        self.feed.touched()


def execute(placed: PlacedRequest, changes: WardChanges) -> Outcome[Applied]:
    """Decide and make the change ``placed`` asks, with the dialog's own operations, under the
    feed's actor. The ward admin's worker runs this (it reads the saved table)."""
    try:
        step = plan(placed, changes.saved)
    except Refusal as refusal:
        return Outcome(error=refusal)
    actor, role = placed.actor, INTERFACE_ROLE
    if isinstance(step, Nothing):
        return Outcome(Applied(step.reason, step.patient, step.bed, changed=False))
    done: Outcome[Patient]
    if isinstance(step, Admit):
        done = changes.admit(step.bed, step.name, step.mrn, step.birth_date, actor, role)
        what, bed = f"admitted to {step.bed}", step.bed
    elif isinstance(step, Transfer):
        done = changes.transfer(step.from_bed, step.to_bed, actor, role, step.action)
        what, bed = f"moved from {step.from_bed} to {step.to_bed}", step.to_bed
    elif isinstance(step, Discharge):
        done = changes.discharge(step.bed, actor, role, step.action)
        cancelled = step.action != "patient.discharge"
        what = f"{'stay cancelled' if cancelled else 'discharged'} in {step.bed}"
        bed = step.bed
    elif isinstance(step, Correct):
        done = changes.correct_identity(step.patient_id, step.name, step.birth_date, actor, role)
        what, bed = "name or birth date corrected", ""
    else:
        assert isinstance(step, Readmit)
        done = changes.cancel_discharge(step.patient_id, actor, role)
        what, bed = "discharge cancelled", ""
    applied = None
    if done.error is None and done.value is not None:
        patient = done.value
        applied = Applied(what, patient.patient_id, patient.bed or bed)
    return Outcome(applied, done.error, done.table, done.policy, done.devices, done.changed)


def _answer_for(exc: Exception) -> Answer:
    """The engine's answer to a change the admission path refused or could not make."""
    if isinstance(exc, JobsStoppedError):
        return NotNow("the station is stopping")
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, PatientStoreError):
        return content_error(ErrorCode.INTERNAL_ERROR, f"not saved at the station: {exc}"[:200])
    if isinstance(exc, REFUSALS):  # a rule of the table: its words name no identity
        return content_error(CONFLICT, str(exc)[:200] or type(exc).__name__)
    log.error("ADT change failed: %s", type(exc).__name__)
    return content_error(ErrorCode.INTERNAL_ERROR, "internal error at the station (see its log)")
