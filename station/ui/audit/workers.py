"""The audit view's worker threads: the body each runs, and how the view lets one go.

Reading and verifying the whole trail, or writing an export bundle, takes seconds on a
100 000-record trail, so each runs on a short-lived thread (:data:`LOAD_THREAD`,
:data:`EXPORT_THREAD`) that hands its result, or its error, to a queued signal of the view.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

LOAD_THREAD = "audit-load"
EXPORT_THREAD = "audit-export"
JOIN_TIMEOUT_S = 2.0


def run(job: Callable[[], object], deliver: Callable[[object], None], what: str) -> None:
    """Body of a worker thread: run ``job`` and deliver its result or the text of its error.

    Any exception is caught: a source that fails in an unforeseen way must leave a message in
    the dialog, not a banner that says "Checking…" for ever.
    """
    result: object
    try:
        result = job()
    except Exception as exc:
        if not isinstance(exc, OSError | ValueError):
            log.exception("audit %s failed", what)
        result = exc
    try:
        deliver(result)
    except RuntimeError:  # the dialog was deleted meanwhile; nobody is waiting for this
        log.debug("audit %s result dropped: view gone", what)


def finished(thread: threading.Thread | None) -> None:
    """Join a worker that has delivered its result: it is only returning, so this is at once,
    and no thread of a finished load or export outlives the result the dialog shows."""
    if thread is not None:
        thread.join(JOIN_TIMEOUT_S)


def let_go(thread: threading.Thread | None) -> None:
    """Join a worker when the view closes, for at most :data:`JOIN_TIMEOUT_S`; one still
    running after that is logged and left (its result will be dropped)."""
    if thread is not None:
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():
            log.warning("%s thread still running after %.1f s", thread.name, JOIN_TIMEOUT_S)
