"""How both paths of the core ask where a message stands in its device's stream.

Why its own module: the record path and the live path each keep a
:class:`~station.domain.sequence.SequenceTracker` (the record path for duplicates and gaps, the
live path for what is newest and what is flagged), and both must put the same question the same
way: by device, device time, ``seq`` and values, received at the station's time.

Pure; called on the core thread.
"""

from __future__ import annotations

from station.domain.messages import Accepted
from station.domain.sequence import SequenceTracker, Verdict


def fingerprint(msg: Accepted) -> tuple[object, ...]:
    """What tells two messages of a device at the same time and ``seq`` apart: their values."""
    return (tuple(sorted(msg.payload.numeric_fields().items())), msg.payload.device_alert)


def observe(tracker: SequenceTracker, msg: Accepted) -> Verdict:
    """Classify ``msg`` in ``tracker`` (which remembers it unless it is a duplicate)."""
    return tracker.observe(
        msg.device_id, msg.device_time, msg.payload.seq, fingerprint(msg), msg.received_at
    )
