"""The running end of the audit chain: the next record's seq, prev and epoch, and the checkpoints.

Why a module of its own: what the next record is chained to is one question, answered the same
for every record, whatever happens to the files; the writer (:mod:`station.services.audit.writer`)
owns the thread, the queue and the disk, and asks :class:`TrailChain` for the records to write.
With the station key (:mod:`station.domain.audit.keyed`) every record is also sealed by the
current epoch's key, and a signed checkpoint closes the epoch and opens the next with a fresh key
(the old key is dropped, so it can no longer seal anything). The checkpoints the trail holds are
kept here too, so a checkpoint published earlier (keyring, broker) can be compared with it: a
trail that no longer holds one was rolled back, unless a signed ``station.restore`` in it
accounts for the loss (:mod:`station.services.audit.restore_marks`); the chain signs such a record
with the station key as it makes it.

Threads: the writer's ``audit`` thread makes the records; :meth:`TrailChain.published_problem`
may be called from any thread and reads under the lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.domain.audit.chain import GENESIS, last_chain_state, make_record, parse_record
from station.domain.audit.keyed import (
    CHECKPOINT_ACTION,
    Published,
    checkpoint_details,
    rollback_problem,
    seal,
    sign_checkpoint,
)
from station.services.audit.restore_marks import (
    RESTORE_ACTION,
    RestoreMark,
    marks_in,
    restore_mark,
    sign_restore,
    superseding,
)

log = logging.getLogger(__name__)


class Pending(NamedTuple):
    """A record as a caller handed it over, before it is chained."""

    ts: float
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]


class TrailChain:
    """See the module docstring.

    Args:
        clock: UTC epoch seconds (a checkpoint's time, and when the next one is due).
        station_key: keys the trail; None: hash chain only, no seals, no checkpoints.
        station: names the trail in checkpoints.
        where: every record's AU-3 "where".
        every: a checkpoint after this many records of an epoch (at least 1).
        interval: a checkpoint this many seconds into an epoch that has records.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        station_key: Ed25519PrivateKey | None,
        station: str,
        where: str,
        every: int,
        interval: float,
    ) -> None:
        self._clock = clock
        self._station_key = station_key
        self._station = station
        self._where = where
        self._every = max(1, every)
        self._interval = interval
        self._seq = 0
        self._hash = ""
        self._epoch = 0
        self._epoch_key: Ed25519PrivateKey | None = None
        self._in_epoch = 0
        self._epoch_since = 0.0
        self._to_publish: list[Published] = []
        self._checkpoints: dict[int, str] = {}
        self._lock = threading.Lock()
        self._checked_from = 1  # the first seq whose checkpoints _checkpoints knows
        self._restores: list[RestoreMark] = []  # signed restores in the lines resumed from

    @property
    def seq(self) -> int:
        """The seq of the last record chained."""
        return self._seq

    @property
    def hash(self) -> str:
        """The hash of the last record chained (the next one's ``prev``)."""
        return self._hash

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._epoch

    @property
    def epoch_key(self) -> Ed25519PrivateKey | None:
        """The key sealing the open epoch's records; None when no epoch is open."""
        return self._epoch_key

    def resume(self, source: list[bytes], head_epoch: int) -> None:
        """Chain state, epochs and checkpoints from ``source``: the live file's lines or, when
        it is empty, the newest rotated file's; ``head_epoch`` is the head's."""
        opening = parse_record(source[0]) if source else None
        self._checked_from = opening["seq"] if opening is not None else 1
        self._seq, self._hash = last_chain_state(source)
        if not source:
            self._hash = GENESIS
        self._epoch = head_epoch
        for line in source:
            obj = parse_record(line)
            if obj is None:
                continue
            self._epoch = max(
                self._epoch, obj.get("epoch", 0) if isinstance(obj.get("epoch"), int) else 0
            )
            if obj["action"] != CHECKPOINT_ACTION:
                continue
            self._checkpoints[obj["seq"]] = obj["hash"]  # the stop one too: it is the anchor
            opens = obj["details"].get("opens")
            if isinstance(opens, int):
                self._epoch = max(self._epoch, opens)
        if self._station_key is not None:
            marks = marks_in(source, self._station_key.public_key())
            with self._lock:
                self._restores = marks

    def add(self, pending: Pending) -> list[dict[str, Any]]:
        """The record for ``pending``, chained (and sealed), and the checkpoint it makes due.
        A record that cannot be built is logged and left out: a bug must not stop the thread."""
        try:
            rec = make_record(
                self._seq + 1, *pending, prev=self._hash, where=self._where, epoch=self._epoch
            )
            if self._epoch_key is not None:
                seal(rec, self._epoch_key)
            if pending.action == RESTORE_ACTION and self._station_key is not None:
                sign_restore(rec, self._station_key)  # checked at start without epoch keys
        except Exception:
            log.exception("could not build audit record %s", pending.action)
            return []
        self._advance(rec)
        if "sig" in rec and self._station_key is not None:
            mark = restore_mark(rec, self._station_key.public_key())
            if mark is not None:
                with self._lock:
                    self._restores.append(mark)
        self._in_epoch += 1
        if self._epoch_key is not None and self._in_epoch >= self._every:
            return [rec, *self.checkpoint("count")]
        return [rec]

    def checkpoint_if_due(self) -> list[dict[str, Any]]:
        """The interval checkpoint, if its time has come and the epoch has records."""
        due = self._clock() >= self._epoch_since + self._interval
        if self._epoch_key is not None and self._in_epoch and due:
            return self.checkpoint("interval")
        return []

    def checkpoint_wait(self) -> float | None:
        """Seconds until the interval checkpoint is due; None while none can be."""
        if self._epoch_key is not None and self._in_epoch:
            return max(0.0, self._epoch_since + self._interval - self._clock())
        return None

    def checkpoint(self, reason: str, *, final: bool = False) -> list[dict[str, Any]]:
        """Close the epoch with a signed checkpoint and (unless ``final``) open the next one
        with a fresh key; the old key is dropped here, so it can no longer seal anything.
        Nothing without a station key."""
        key = self._station_key
        if key is None:
            return []
        following = None if final else Ed25519PrivateKey.generate()
        details = checkpoint_details(
            closes=self._epoch,
            opens=following.public_key() if following is not None else None,
            epoch=self._epoch + 1,
            records=self._in_epoch,
            reason=reason,
            station_key=key.public_key(),
        )
        now = self._clock()
        rec = make_record(
            self._seq + 1,
            now,
            "station",
            "system",
            CHECKPOINT_ACTION,
            self._station,
            "success",
            details,
            prev=self._hash,
            where=self._where,
            epoch=self._epoch,
        )
        sign_checkpoint(rec, key)
        self._advance(rec)
        with self._lock:
            self._checkpoints[rec["seq"]] = rec["hash"]
        self._to_publish.append(Published(self._station, rec))
        if following is not None:
            self._epoch += 1
        self._epoch_key, self._in_epoch, self._epoch_since = following, 0, now
        return [rec]

    def take_published(self) -> list[Published]:
        """The checkpoints made since the last call, to hand to the keepers once durable."""
        pending, self._to_publish = self._to_publish, []
        return pending

    def published_problem(
        self, checkpoint: Published, older: Callable[[int], str | None] | None = None
    ) -> str | None:
        """Why the trail does not hold ``checkpoint`` (published earlier), None if it does or a
        signed restore in the trail accounts for it (it replaced that checkpoint, or was made
        after it); from any thread.

        Args:
            older: the hash the trail holds at a ``seq`` before the lines resumed from (read
                from the rotated files); without it such a checkpoint is not judged.
        """
        with self._lock:
            held = self._checkpoints.get(checkpoint.seq)
            seq = self._seq
            restores = list(self._restores)
        if held is None and checkpoint.seq < self._checked_from:
            if older is None:
                return None
            try:
                held = older(checkpoint.seq)
            except OSError as exc:
                return f"the rotated file that holds seq {checkpoint.seq} cannot be read: {exc}"
        problem = rollback_problem(checkpoint, held, seq)
        if problem is None:
            return None
        mark = superseding(checkpoint, restores)
        if mark is not None:
            log.info(
                "the checkpoint published at seq %s (%s) was replaced by the restore at seq %s",
                checkpoint.seq,
                checkpoint.ts,
                mark.seq,
            )
            return None
        return problem

    def _advance(self, rec: dict[str, Any]) -> None:
        with self._lock:  # published_problem reads it from other threads
            self._seq, self._hash = rec["seq"], rec["hash"]
