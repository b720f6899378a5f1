"""The HL7 interface's thread (``hl7-out``): reads the stores into the outbox, sends the outbox to
the engine, one message at a time, and keeps :class:`~.hl7_health.Health` told.

Why one thread for both: the outbox is one SQLite file with one writer, and neither job may hold
up the core or the screen; reading the stores waits at most for one exchange with the engine
(``ack_timeout_s``), which delays queuing, never loses anything (the stores are on disk).

Sending: alarms before observations, each in queue order. ``AA``/``CA`` takes a message off the
queue; ``AE``/``CR`` quarantines it (``hl7.rejected`` in the audit trail: control id, type, code,
bed, pseudonym; never the engine's text, which may quote a patient); no answer, a broken
connection, an answer that is not an ACK for this message, and ``AR``/``CE`` (the engine's
application unavailable, or unable to commit: what a short outage answers) leave it queued, and it
is sent again, with the same control id, after a back-off that doubles from 1 s to
``retry_max_s`` (monotonic clock). A message answered ``AR``/``CE`` :data:`MAX_DEFERRALS` times in
a row is quarantined too (the engine means it), and the back-off goes on for the next one.
A message is rendered when it is sent: identity only if the patient's export consent allows it
then; an observation whose patient withdrew storage consent meanwhile is withheld instead.

:meth:`Hl7Sender.set_subjects` and :meth:`Hl7Sender.status` may be called from any thread (the
link calls them on the GUI thread); everything else happens on ``hl7-out``.
"""

from __future__ import annotations

import logging
import sqlite3
import ssl
import threading

from station.config.hl7_settings import Hl7Section
from station.domain.clock import StationClock
from station.domain.hl7.ack import ACCEPTED, RETRY, Ack, AckError, parse_ack
from station.domain.hl7.content import AlarmReport, ObservationReport, ReportError, from_json
from station.domain.hl7.render import Header, RenderError, render
from station.domain.hl7.subjects import Subjects
from station.domain.ports import AuditSink
from station.domain.timefmt import iso_ms
from station.services.hospital.hl7_collector import Collector
from station.services.hospital.hl7_health import Condition, Health
from station.services.hospital.hl7_mllp_client import MllpClient, MllpError, Stopped
from station.services.hospital.hl7_outbox import Outbox, Queued
from station.services.hospital.hl7_sources import SourceError, Sources

log = logging.getLogger(__name__)

THREAD = "hl7-out"
POLL_S = 0.5
"""The stores are read this often (an alarm change reaches the engine within about 1.5 s)."""
SEND_SLICE_S = 1.0
"""Sending goes on this long at most before the stores are read again."""
IDLE_PROBE_S = 30.0
"""With nothing to send and no connection, the engine is tried this often (a down engine is
found without traffic)."""
CONNECT_TIMEOUT_S = 5.0
PRUNE_S = 600.0
MAX_DEFERRALS = 5
"""``AR``/``CE`` answers to one message, in a row, before it is quarantined. Counted in memory: a
restart gives a message at most this many tries more, never fewer."""
FAULT_RETRY_S = 5.0


def tls_context(settings: Hl7Section) -> ssl.SSLContext | None:
    """The client TLS context (TLS 1.2+, certificate and host name checked), None for plain."""
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=settings.ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Hl7Sender:
    """See the module docstring.

    Args:
        settings: the ``[hl7]`` section.
        station_id: names the reports (control ids) and, when ``sending_facility`` is empty,
            the facility.
        outbox, sources: the queue and the stores, opened on the thread.
        audit: thread-safe audit sink.
        condition: raises and clears station technical alarms (any thread).
        clock: wall time for report times, monotonic for every wait.
    """

    def __init__(
        self,
        settings: Hl7Section,
        *,
        station_id: str,
        outbox: Outbox,
        sources: Sources,
        audit: AuditSink,
        condition: Condition,
        clock: StationClock,
    ) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._audit = audit
        self._clock = clock
        self._header = Header(
            settings.sending_application,
            settings.sending_facility or station_id[:20],
            settings.receiving_application,
            settings.receiving_facility,
            settings.mrn_authority,
        )
        self._outbox = outbox
        self._sources = sources
        self._collector = Collector(
            outbox,
            sources,
            station_id=station_id,
            mode=settings.observations,
            period_s=settings.summary_period_s,
            budget=settings.outbox_budget,
            wall=clock.now,
            audit=audit,
            stopping=self._stop.is_set,
        )
        peer = f"{settings.host}:{settings.port}"
        self.health = Health(
            audit=audit,
            condition=condition,
            monotonic=clock.monotonic,
            down_alarm_s=settings.down_alarm_s,
            peer=peer,
        )
        self._client: MllpClient | None = None  # made on the thread: its TLS context reads files
        self._lock = threading.Lock()
        self._pending: Subjects | None = None
        self._subjects = Subjects()
        self._had_subjects = False
        self._open = False
        self._full = False
        self._failures = 0
        self._deferrals: dict[int, int] = {}  # outbox row → AR/CE answers in a row
        self._next_try = 0.0
        self._next_probe = 0.0
        self._thread: threading.Thread | None = None

    # -- any thread ----------------------------------------------------------------------------

    def set_subjects(self, subjects: Subjects) -> None:
        """The ward changed: who lies where, and what consent allows (taken on the thread)."""
        with self._lock:
            self._pending = subjects
        self._wake.set()

    def status(self) -> str:
        """The status bar's words (no I/O)."""
        return self.health.status()

    def start(self) -> None:
        """Start ``hl7-out``; returns at once (nothing here touches the network or a disk)."""
        self._thread = threading.Thread(target=self._run, name=THREAD, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop within ``timeout`` s (every wait is sliced); False if the thread is still busy."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- hl7-out -------------------------------------------------------------------------------

    def _run(self) -> None:
        next_collect = next_prune = 0.0
        try:
            while not self._stop.is_set():
                now = self._clock.monotonic()
                try:
                    if not self._ready():
                        self._wait(FAULT_RETRY_S)
                        continue
                    self._take_subjects()
                    if now >= next_collect:
                        self._collect()
                        next_collect = now + POLL_S
                    if now >= next_prune:
                        self._outbox.prune(self._clock.now())
                        next_prune = now + PRUNE_S
                    held = not self._subjects.known
                    self.health.queue(self._outbox.queued, self._full, held)
                    self.health.tick()
                    more = now >= self._next_try and self._send_some(now + SEND_SLICE_S)
                except sqlite3.Error as exc:
                    self.health.fault(f"outbox not written: {exc}")
                    self._wait(FAULT_RETRY_S)
                    continue
                except Exception as exc:  # a bug: said once, then tried again, never silent
                    log.exception("HL7 interface failed")
                    self.health.fault(f"internal error: {type(exc).__name__}")
                    self._wait(FAULT_RETRY_S)
                    continue
                if not more:  # else straight on: the stores first, then the rest of the queue
                    self._wait(next_collect - self._clock.monotonic())
        finally:
            if self._client is not None:
                self._client.close()
            self._sources.close()
            self._outbox.close()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)
        self._wake.clear()

    def _ready(self) -> bool:
        """Make the client and open the outbox (once); a failure is a fault, tried again later."""
        if self._client is None:
            try:
                tls = tls_context(self._settings)
            except (OSError, ssl.SSLError) as exc:
                self.health.fault(f"TLS settings unusable: {exc}", "tls")
                return False
            self.health.fault(None, "tls")
            s = self._settings
            self._client = MllpClient(s.host, s.port, tls, self._stop, self._clock.monotonic)
        if self._open:
            return True
        try:
            self._outbox.open()
        except (sqlite3.Error, OSError) as exc:
            self.health.fault(f"outbox cannot be opened: {exc}")
            return False
        self._open = True
        self.health.fault(None)
        return True

    def _take_subjects(self) -> None:
        with self._lock:
            new, self._pending = self._pending, None
        if new is None:
            return
        old, had = self._subjects, self._had_subjects
        self._subjects, self._had_subjects = new, True
        self._collector.subjects = new
        if not new.known:
            return
        refused = new.storage_refused()
        if had and old.known:
            refused -= old.storage_refused()  # only those withdrawn since the last snapshot
        for patient, count in self._outbox.withhold(refused, self._clock.now()).items():
            self._withheld(patient, count)

    def _withheld(self, patient: str, count: int) -> None:
        log.info("HL7: %d queued observations of patient %s withheld (no storage consent)",
                 count, patient)  # fmt: skip
        self._audit.record(
            "hl7.withheld",
            target=patient,
            details={"patient": patient, "withheld": count, "reason": "no storage consent"},
        )

    def _collect(self) -> None:
        try:
            collected = self._collector.collect()
        except SourceError as exc:  # the outbox's own errors go up: "outbox not written"
            self.health.fault(f"stores not readable: {exc}", "stores")
            return
        self._full = collected.full
        self.health.fault(None, "stores")
        if collected.alarms or collected.observations:
            self.health.fault(None)  # the outbox took them: writable again

    # -- sending -------------------------------------------------------------------------------

    def _send_some(self, until: float) -> bool:
        """Send queued messages until ``until`` (monotonic), the queue is empty or a try fails;
        True when the time ran out with messages left."""
        while not self._stop.is_set():
            if self._clock.monotonic() >= until:
                return True
            item = self._outbox.next(observations=self._subjects.known)
            if item is None:
                self._probe()
                return False
            outcome = self._send(item)
            if outcome == "stopped":
                return False
            if outcome in {"failed", "given up"}:  # given up: quarantined, the engine still not
                self._back_off()  # accepting, so the next message waits its turn too
                return False
            self._failures = 0
            self.health.fault(None)  # the answer is on disk: the outbox is writable
        return False

    def _back_off(self) -> None:
        """Wait before the next try: 1 s, doubling up to ``retry_max_s`` (monotonic)."""
        self._failures += 1
        backoff = min(self._settings.retry_max_s, 2.0 ** (self._failures - 1))
        self._next_try = self._clock.monotonic() + backoff

    @property
    def _mllp(self) -> MllpClient:
        assert self._client is not None, "made by _ready before any exchange"
        return self._client

    def _probe(self) -> None:
        """Nothing to send: check the engine now and then, so a down engine is found anyway (a
        kept connection that is still open is enough; a closed one is opened again)."""
        now = self._clock.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + IDLE_PROBE_S
        if self._mllp.alive():
            return
        try:
            self._mllp.connect(CONNECT_TIMEOUT_S)
        except Stopped:
            return
        except MllpError as exc:
            self._back_off()
            self._next_probe = self._next_try
            self.health.failed(str(exc))
            return
        self._failures = 0
        self.health.connected()

    def _send(self, item: Queued) -> str:
        """One message: ``ok`` (accepted, withheld), ``refused`` (quarantined), ``failed``
        (still queued: back off), ``given up`` (quarantined after :data:`MAX_DEFERRALS`: back
        off) or ``stopped``."""
        try:
            report = from_json(item.body)
        except ReportError as exc:
            return self._unsendable(item, None, str(exc))
        subject = self._subjects.get(report.patient_id) if report.patient_id else None
        if isinstance(report, ObservationReport) and (subject is None or not subject.storage):
            self._outbox.withhold_row(item.row, self._clock.now())
            self._withheld(report.patient_id, 1)
            return "ok"
        identity = subject.identity if subject is not None and subject.export else None
        try:
            message = render(report, self._header, identity)
        except RenderError as exc:
            return self._unsendable(item, report, str(exc))
        self._outbox.attempted(item.row)
        try:
            answer = self._mllp.exchange(message, self._settings.ack_timeout_s, CONNECT_TIMEOUT_S)
        except Stopped:
            return "stopped"
        except MllpError as exc:
            self.health.failed(str(exc))
            return "failed"
        try:
            ack = parse_ack(answer)
        except AckError as exc:
            self._mllp.close()
            self.health.failed(f"the engine's answer is {exc}")
            return "failed"
        if ack.control_id != item.control_id:
            self._mllp.close()
            self.health.failed("an ACK for another message")
            return "failed"
        if ack.verdict == RETRY:
            return self._deferred(item, report, ack)
        self._deferrals.pop(item.row, None)
        if ack.verdict == ACCEPTED:
            self._outbox.acked(item.row, self._clock.now())
            self.health.accepted()
            return "ok"
        self._quarantine(item, report, ack.code, ack.error_code, ack.text)
        self.health.refused(ack.code)
        return "refused"

    def _deferred(self, item: Queued, report: AlarmReport | ObservationReport, ack: Ack) -> str:
        """``AR``/``CE``: tried again after the back-off, like no answer, up to
        :data:`MAX_DEFERRALS` answers in a row; then quarantined."""
        count = self._deferrals.get(item.row, 0) + 1
        if count < MAX_DEFERRALS:
            self._deferrals[item.row] = count
            log.info("HL7 message %s answered %s (%d of %d): tried again",
                     item.control_id, ack.code, count, MAX_DEFERRALS)  # fmt: skip
            self.health.deferred(ack.code)
            return "failed"
        self._deferrals.pop(item.row, None)
        reason = f"{ack.code} {count} times in a row"
        self._quarantine(item, report, ack.code, ack.error_code, ack.text, reason)
        self.health.gave_up(ack.code)
        return "given up"

    def _unsendable(
        self, item: Queued, report: AlarmReport | ObservationReport | None, problem: str
    ) -> str:
        """A report that cannot be rendered: quarantined, a fault of ours, not the engine's."""
        self._quarantine(item, report, "invalid", "", problem, problem)
        self.health.unsendable()
        return "refused"

    def _quarantine(
        self,
        item: Queued,
        report: AlarmReport | ObservationReport | None,
        code: str,
        error_code: str,
        text: str,
        reason: str = "",
    ) -> None:
        """Keep ``item`` out of the queue for the admin, audited (the engine's ``text`` stays in
        the outbox: it may quote a patient; ``reason`` is ours and never quotes one)."""
        self._outbox.rejected(item.row, self._clock.now(), code, text)
        details: dict[str, object] = {
            "control_id": item.control_id,
            "type": f"ORU^{item.kind}",
            "code": code,
            "bed": item.bed,
            "patient": item.patient_id,
            "attempts": item.attempts + 1,
        }
        if error_code:
            details["error_code"] = error_code
        if reason:
            details["reason"] = reason  # ours: a validation failure or a count, never identity
        if isinstance(report, AlarmReport):
            details.update(alarm_id=report.alarm_id, event=report.event.value)
        elif isinstance(report, ObservationReport):
            details.update(since=iso_ms(report.start), until=iso_ms(report.end))
        log.warning("HL7 message %s (ORU^%s) quarantined: %s", item.control_id, item.kind, code)
        self._audit.record(
            "hl7.rejected", target=item.control_id, outcome="failure", details=details
        )
