"""Child process of the spool's crash test: appends batches for ever, reporting each commit.

Run as ``python -m tests.spool_writer DB``. After each :meth:`Spool.append` returns it prints
the ``seq`` of the batch's last point, flushed, so the parent knows what was committed when it
sends SIGKILL. Points carry ``seq`` 0, 1, 2, ... in order.
"""

from __future__ import annotations

import sys
from pathlib import Path

from station.services.storage.spool import Spool

BATCH = 64


def main(path: str) -> None:
    """Append until killed."""
    spool = Spool(Path(path))
    spool.open()
    seq = 0
    while True:
        batch = [
            ("dev-1", s, f"vitals,device=dev-1 heartrate=72.0 {s}") for s in range(seq, seq + BATCH)
        ]
        spool.append(batch)
        seq += BATCH
        print(seq - 1, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
