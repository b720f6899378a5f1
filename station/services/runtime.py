"""How the interpreter runs the station's threads: its switch interval and its cycle collector.

Why a module of its own: both are process-wide settings measured with ``station bench`` and
made once by the composition root (:mod:`station.app`); their reasons are long and belong with
the numbers, not with the wiring.
"""

from __future__ import annotations

import gc

SWITCH_INTERVAL_S = 0.001
"""How long a busy thread keeps the interpreter lock while another waits (CPython: 5 ms). PySide
releases the lock around every Qt call, so a frame of a few hundred Qt calls waited up to 5 ms
for each while the MQTT and core threads were busy under a flood (measured with ``station
bench --flood``: frames of 60 ms mean for 8 ms of work). A shorter slice costs the busy threads
a little switching and gives the screen its turn sooner."""

YOUNG_COLLECTION_AFTER = 2000
"""Net new container objects before a young-generation collection (CPython: 700)."""


def freeze_startup_heap() -> None:
    """Keep the objects of start-up (modules, Qt wrappers, the window) out of every later
    cycle collection, and collect the young generation less often.

    CPython's full collection walks every tracked object with the interpreter lock held, so
    it stops every thread at once. Under ``station bench --beds 64 --flood --duration 20
    --historian`` each of about 13 full collections took 150-220 ms of CPU, which was the
    GUI timer lag p99 (160 ms) and held ingest back; with the start-up heap frozen they took
    2-40 ms. No collection first: it would cost a test process 0.2 s a station, and what is
    garbage now is a fixed amount, kept until ``stop`` unfreezes it.

    Messages in flight are young objects that die by reference count; with CPython's default
    (700 allocations) a flood collected them about 45 times a second and promoted many. At
    ``YOUNG_COLLECTION_AFTER`` the same bench (medians of 3) ingested 0.60 x ``mosquitto_sub``
    instead of 0.56 and 3.8 x the naive subscriber instead of 2.9, GUI lag p99 48 ms instead
    of 52. The older generations keep CPython's ratios.
    """
    gc.set_threshold(YOUNG_COLLECTION_AFTER, 10, 10)
    gc.freeze()
