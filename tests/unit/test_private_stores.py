"""Every SQLite store of the station is owner-only: created 0600 (with its -wal and -shm) whatever
the process's umask, and a file an older run left readable is narrowed when opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from station.services.storage.alarm_store import AlarmStore
from station.services.storage.quarantine_store import QuarantineStore
from station.services.storage.spool import Spool
from station.services.storage.trends import TrendStore

Opened = AlarmStore | QuarantineStore | Spool | TrendStore
STORES: dict[str, Callable[[Path], Opened]] = {
    "spool": Spool,
    "trends": TrendStore,
    "alarms": AlarmStore,
    "quarantine": QuarantineStore,
}


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("name", sorted(STORES))
def test_a_new_store_is_owner_only(name: str, tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "data" / f"{name}.sqlite"
    store = STORES[name](path)
    store.open()
    try:
        for file in path.parent.glob(f"{name}.sqlite*"):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        store.close()


@pytest.mark.parametrize("name", sorted(STORES))
def test_an_older_readable_store_is_narrowed(name: str, tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / f"{name}.sqlite"
    first = STORES[name](path)
    first.open()
    first.close()
    path.chmod(0o644)
    again = STORES[name](path)
    again.open()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        again.close()
