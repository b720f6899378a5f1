"""Suite-wide fixtures: headless Qt, no real keyring anywhere, and no test may leave a station
thread running.

The keyring, in two layers. The ``keyring`` library itself, in this process and in every child
process a test starts (the CLI and station-process tests: they inherit the environment), is
pinned to its fail backend, so nothing can reach the desktop's keyring, whatever a test does.
Above it, every test runs with the station's in-memory keyring installed
(:func:`station.config.credentials.use_memory_keyring`; the ``memory_keyring`` fixture gives it to
a test that wants to look inside), except in a module that sets its keyring itself: one that
imports ``use_memory_keyring`` or ``tests.keyring_memory.installed_keyring`` (to install a fresh
memory keyring, or a backend that must be refused) gets only the fail backend between its own
installs. A child process has no memory keyring: its secrets come from its environment
(``STATION_AUDIT_KEY`` below, the broker password and historian token its test sets), and the
rest reads as "no secure keyring", as on a server without one.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator

import pytest
from keyring.backends import fail

from station.config.credentials import MemoryKeyring, use_memory_keyring
from tests.keyring_memory import installed_keyring, sets_its_own_keyring

NO_KEYRING = f"{fail.Keyring.__module__}.{fail.Keyring.__qualname__}"

# Before any Qt import: every test renders offscreen, on CI and on a desktop alike.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Every station a test starts keys its audit trail (issue 7) with a key made for this run only,
# never the machine's keyring; child processes (the CLI tests) inherit it.
os.environ.setdefault("STATION_AUDIT_KEY", base64.b64encode(os.urandom(32)).decode())
# Before anything asks keyring for its backend: the fail backend, here and in every child process,
# whatever the machine (or a keyringrc.cfg) would choose.
os.environ["PYTHON_KEYRING_BACKEND"] = NO_KEYRING

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
        "adt-listener",
        "hl7-out",
        "accounts",
        "settings-save",
        "audit-load",
        "audit-export",
        "quarantine-query",
        "reports",
        "history-load",
        "sd-notify",
        "log-writer",
        "audit-seals",
    }
)
THREAD_GRACE_S = 5.0


# Defined before no_thread_left_running, so it is torn down after that fixture has waited for the
# station's threads: none of them outlives the keyring it was given.
@pytest.fixture(autouse=True)
def memory_keyring(request: pytest.FixtureRequest) -> Iterator[MemoryKeyring | None]:
    """The station's in-memory keyring for the test (None where the module sets its own), over a
    ``keyring`` library reset to the fail backend, so a backend a test left behind goes too."""
    with installed_keyring(fail.Keyring()):
        if sets_its_own_keyring(request.module):
            yield None
        else:
            with use_memory_keyring() as ring:
                yield ring


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
