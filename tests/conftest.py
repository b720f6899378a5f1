"""Suite-wide fixtures: headless Qt, and no test may leave a station thread running."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator

import pytest

# Before any Qt import: every test renders offscreen, on CI and on a desktop alike.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Every station a test starts keys its audit trail (issue 7) with a key made for this run only,
# never the machine's keyring; child processes (the CLI tests) inherit it.
os.environ.setdefault("STATION_AUDIT_KEY", base64.b64encode(os.urandom(32)).decode())

OWNED_THREADS = frozenset(
    {
        "mqtt",
        "live-mqtt",
        "historian",
        "audit",
        "simulator",
        "demo-broker",
        "trend-query",
        "settings-test",
        "ward-admin",
        "accounts",
        "settings-save",
        "audit-load",
        "audit-export",
    }
)
THREAD_GRACE_S = 5.0


def _ours() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in OWNED_THREADS and t.is_alive()]


@pytest.fixture(autouse=True)
def no_thread_left_running() -> Iterator[None]:
    """Fail a test that leaves one of the station's named threads running (STYLE rule 4)."""
    before = set(_ours())
    yield
    deadline = time.monotonic() + THREAD_GRACE_S
    left = [t for t in _ours() if t not in before]
    while left and time.monotonic() < deadline:
        left[0].join(0.1)
        left = [t for t in _ours() if t not in before]
    assert not left, f"threads left running: {[t.name for t in left]}"
