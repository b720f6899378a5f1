"""The record path on the core thread: every message of the persistent session, in order.

Each accepted message is checked against the device registry, given its bed and staged for the
group commit (:mod:`station.services.ingest.group_commit`) with its delivery, so it is
acknowledged in arrival order once durable; each rejection is counted, kept in the quarantine and
acknowledged alike. Without the patient's storage consent nothing of theirs goes to the historian.
The quarantine is kept twice: the newest :data:`QUARANTINE_SIZE` in memory for the status bar,
and, with a :class:`~station.services.storage.quarantine_store.QuarantineStore`, the newest
thousands on disk for the admin's quarantine view, staged here and written by
:meth:`RecordPath.flush_quarantine` (the core's watch timer, or a full batch).

Order (issue 4): a :class:`~station.domain.sequence.SequenceTracker` drops duplicates (QoS 1
redeliveries, replays) before they are stored twice, stores late (out-of-order) data at its
device time, and turns a jump in ``seq`` into a data gap on the bed and a ``data.gap`` audit
record. Rejections put a technical alarm on a bed only when the topic proves which device sent
them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter, deque
from collections.abc import Callable

from station.domain.alarms import Priority
from station.domain.ingest import topic_device_cached
from station.domain.lineprotocol import vitals_line
from station.domain.messages import Accepted, Rejection
from station.domain.sequence import Order, SequenceTracker
from station.domain.status import IngestStats
from station.domain.ward import MONITORED
from station.domain.watch import InvalidDataWatch
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.device_gate import DeviceGate
from station.services.ingest.group_commit import GroupCommit
from station.services.ingest.message_order import observe
from station.services.ingest.pacing import MAX_TRACKED, Throttle
from station.services.ingest.record_inbox import Delivery
from station.services.storage.quarantine_store import QuarantineStore
from station.services.storage.trends import TrendSample

log = logging.getLogger(__name__)

QUARANTINE_SIZE = 200


class RecordPath:
    """Accepted and rejected messages of the persistent session to the group commit, with the
    counters and the quarantine the status bar shows.

    Owned by the core worker and run on the core thread. ``gap`` is the worker's ``data_gap``
    signal; ``invalid`` is shared with the station watch, which ends its alarms; ``quarantine``
    keeps the rejections across restarts (None: in memory only).
    """

    def __init__(
        self,
        state: CoreState,
        alarms: AlarmChanges,
        devices: DeviceGate,
        commits: GroupCommit,
        invalid: InvalidDataWatch,
        throttle: Throttle,
        gap: Callable[[str, int, float], None],
        *,
        quarantine: QuarantineStore | None = None,
    ) -> None:
        self._settings = state.settings
        self._station = state.settings.station.id
        self._time = state.time
        self._ward = state.ward
        self._policy = state.policy
        self._audit = state.audit
        self._alarms = alarms
        self._devices = devices
        self._commits = commits
        self._invalid = invalid
        self._throttle = throttle
        self._on_gap = gap
        self.accepted = 0
        self._unknown_keys: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._quarantine: deque[Rejection] = deque(maxlen=QUARANTINE_SIZE)
        self._kept = quarantine
        self._kept_fault: str | None = None
        self._sequence = SequenceTracker()  # duplicates, gaps

    def record(self, msg: Accepted, delivery: Delivery | None) -> bool:
        """Order, bed, spool; acknowledged at the commit. True if the message may go live."""
        refused = self._devices.refusal(msg, audit=True)
        if refused is not None:
            self.reject(refused, delivery)
            return False
        self.accepted += 1
        if msg.unknown_keys and (
            msg.device_id in self._unknown_keys or len(self._unknown_keys) < MAX_TRACKED
        ):
            self._unknown_keys[msg.device_id] += 1
        bed = self._ward.bed_of(msg.device_id, msg.received_at)
        policy = self._policy.get(bed, MONITORED) if bed is not None else MONITORED
        # A device without a bed is still recorded (bed tag empty): nothing accepted is lost.
        # Without the patient's storage consent nothing of theirs goes to the historian.
        point = vitals_line(self._station, bed or "", msg) if policy.store else None
        sample = None
        if bed is not None and self._commits.keeps_trends:
            values = msg.payload.numeric_fields()
            sample = TrendSample(bed, msg.device_id, round(msg.device_time * 1000), values)
        # Classified only once everything that could fail is built: a message the tracker has
        # seen is a duplicate on redelivery, so it must not be remembered and then dropped.
        verdict = observe(self._sequence, msg)
        if verdict.order is Order.DUPLICATE:
            self._commits.stage(None, None, delivery)  # stored already; acknowledged with the rest
            return False
        row = None if point is None else (msg.device_id, msg.payload.seq, point)
        self._commits.stage(row, sample, delivery)
        if verdict.missing:
            self._gap(msg, bed, verdict.missing, verdict.after_seq)
        return True

    def reject(self, rej: Rejection, delivery: Delivery | None) -> None:
        """Count, keep in the quarantine, log without flooding. Never slows ingest. A technical
        alarm goes on a bed only when the topic names the device that sent the message (the
        broker's ACL vouches for it): on a shared topic anyone can claim any id, and a claimed
        id must not let one credential put alarms on every bed."""
        self._commits.stage(None, None, delivery)  # acknowledged in order with the accepted ones
        self._reasons[rej.reason] += 1
        self._quarantine.append(rej)
        if self._kept is not None and self._kept.stage(rej):
            self.flush_quarantine()  # a flood: written per batch, not only on the timer
        now = self._time.monotonic()
        device = topic_device_cached(rej.topic, self._settings.mqtt.topics)
        bed = self._ward.assigned(device) if device is not None else None
        if device is not None and bed is not None and self._invalid.rejected(device, now):
            self._alarms.technical(
                device,
                bed,
                "invalid_data",
                True,
                Priority.MEDIUM,
                f"Invalid data from device: {rej.reason} ({self._invalid.count(device)} in 60 s)",
            )
        more = self._throttle(rej.reason)
        if more is not None:
            # Audited like the log line: one record a minute per reason, with the count left
            # out, so a flood of forgeries is in the trail without flooding it. The claimed id
            # is only a claim; the excerpt stays in the quarantine (it may hold a patient's
            # values).
            self._audit.record(
                "ingest.rejected",
                target=rej.topic[:200],
                outcome="failure",
                details={
                    "reason": rej.reason,
                    "claimed_device": (rej.device_id or "")[:64],
                    "not_recorded_before": more,
                },
            )
            log.warning(
                "rejected message on %s from %s: %s: %s (%d more like it not logged)",
                rej.topic,
                rej.device_id or "?",
                rej.reason,
                rej.detail,
                more,
            )

    def flush_quarantine(self) -> None:
        """Write the staged rejections to the quarantine store (core's watch timer, a full
        batch, the stop). A failing store is a low-priority technical alarm, ended by the next
        write that succeeds; the rows wait in memory (bounded) meanwhile."""
        if self._kept is None or not self._kept.staged:
            return
        try:
            self._kept.flush()
        except (sqlite3.Error, OSError, RuntimeError) as exc:
            self._quarantine_failed(f"{exc}")
        else:
            self._quarantine_failed(None)

    def _quarantine_failed(self, error: str | None) -> None:
        if (error is None) == (self._kept_fault is None):
            return
        self._kept_fault = error
        if error is not None:
            log.error("quarantine store: %s", error)
            self._audit.record(
                "quarantine.fault", outcome="failure", details={"error": error[:300]}
            )
        self._alarms.station(
            "quarantine", error is not None, Priority.LOW, f"Quarantine not kept: {error}"
        )

    def stats(self, late: int) -> IngestStats:
        """The counters and the quarantine for the status bar (``late``: the live path's)."""
        return IngestStats(
            self.accepted,
            sum(self._reasons.values()),
            late,
            tuple(sorted(self._reasons.items())),
            tuple(self._quarantine),
            tuple(self._ward.unassigned[d] for d in sorted(self._ward.unassigned)),
            tuple(sorted(self._unknown_keys.items())),
            self._sequence.duplicates,
            self._sequence.missing,
            self._commits.unspooled,
        )

    def _gap(self, msg: Accepted, bed: str | None, missing: int, after: int | None) -> None:
        """A ``seq`` gap: shown on the bed every time, recorded and logged at most once a
        minute per device (with what was missed since), so a device with a bad link cannot
        flood the trail."""
        if bed is not None:
            self._on_gap(bed, missing, msg.received_at)
        earlier = self._throttle(f"gap:{msg.device_id}", missing)
        if earlier is None:
            return
        log.warning("data gap: %s missed %d messages after seq %s", msg.device_id, missing, after)
        self._audit.record(
            "data.gap",
            target=bed or msg.device_id,
            outcome="failure",
            details={
                "device": msg.device_id,
                "bed": bed,
                "after_seq": after,
                "seq": msg.payload.seq,
                "missing": missing,
                "missing_since_last_record": earlier,
                "device_time": msg.payload.timestamp.isoformat(),
            },
        )
