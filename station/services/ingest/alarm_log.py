"""The alarm history kept on the core thread: each alarm change folded into its episode and written
to the :class:`~station.services.storage.alarm_store.AlarmStore` once a second, and nurses'
comments on alarms kept and audited.

Why on the core thread: every alarm change passes through
:class:`~station.services.ingest.alarm_changes.AlarmChanges` here, in order, whatever screen is
open; the window's own history is a view that a restart empties. Writes are batched (one
transaction a second, not one per change: 64 beds alarming at once cost one commit). A write
that fails (a full disk) keeps the batch for the next try, bounded, and raises a technical alarm
until a write succeeds again: the alarms themselves still reach the screen and the audit trail.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from station.domain.alarm_history import AlarmComment, AlarmEpisode, AlarmHistory, comment_of
from station.domain.alarms import Alarm
from station.domain.ports import AuditSink
from station.services.ingest.event_capture import EventCapture
from station.services.storage.alarm_store import AlarmStore

log = logging.getLogger(__name__)

FOLDED = 5_000
"""Episodes the core keeps to fold later changes into (an alarm's changes come within hours)."""
MAX_PENDING = 20_000
"""Episodes waiting for a write that keeps failing; past this the oldest waiting are dropped (the
audit trail still has every change)."""


class AlarmLog:
    """Folds, batches and writes alarm episodes; keeps comments. Core thread only.

    ``fault(message)`` raises (a message) or ends (None) the station's technical alarm for a
    history that cannot be written; ``commented(alarm_id, comment)`` tells the GUI.
    """

    def __init__(
        self,
        store: AlarmStore | None,
        audit: AuditSink,
        clock: Callable[[], float],
        commented: Callable[[str, AlarmComment], None],
    ) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._commented = commented
        self._folded = AlarmHistory(FOLDED)
        self._pending: dict[str, AlarmEpisode] = {}
        self.dropped = 0
        self.fault: Callable[[str | None], None] = lambda _message: None
        self.capture: EventCapture | None = None
        """Told of every alarm change: a high alarm's raise schedules its event capture."""
        self._failing = False

    def add(self, alarm: Alarm) -> None:
        """Fold one alarm change into its episode, to be written at the next flush."""
        if self.capture is not None:
            self.capture.alarm(alarm)
        if self._store is None:
            return
        episode = self._folded.add(alarm)
        self._pending.pop(episode.alarm_id, None)
        self._pending[episode.alarm_id] = episode
        while len(self._pending) > MAX_PENDING:
            del self._pending[next(iter(self._pending))]
            self.dropped += 1

    def flush(self) -> None:
        """Write what changed since the last flush (the core's 1 s timer, and its shutdown)."""
        if self._store is None or not self._pending:
            return
        try:
            self._store.save(list(self._pending.values()))
        except sqlite3.Error as exc:
            if not self._failing:
                log.error("alarm history not written: %s", exc)
                self._failing = True
                self.fault(f"Alarm history not written, review after a restart incomplete: {exc}")
            return
        self._pending.clear()
        if self._failing:
            self._failing = False
            self.fault(None)

    def comment(self, alarm_id: str, mark: str, text: str, user: str) -> None:
        """A nurse's comment on an alarm: kept, audited, shown. An unknown mark is refused
        (audited as a failure); a comment that cannot be written is still audited and shown."""
        try:
            comment = comment_of(self._clock(), user, mark, text)
        except ValueError as exc:
            self._audit.record(
                "alarm.comment",
                actor=user,
                role="nurse",
                target=alarm_id,
                outcome="failure",
                details={"reason": str(exc)},
            )
            return
        kept = True
        if self._store is not None:
            self.flush()  # the episode first, so a reader never sees a comment without it
            try:
                self._store.add_comment(alarm_id, comment)
            except sqlite3.Error as exc:
                log.error("alarm comment not written: %s", exc)
                kept = False
        self._audit.record(
            "alarm.comment",
            actor=user,
            role="nurse",
            target=alarm_id,
            details={"mark": comment.mark, "text": comment.text, "kept": kept},
        )
        self._commented(alarm_id, comment)
