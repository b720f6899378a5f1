"""One station per data folder: the lock refuses a second holder and dies with its process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from station.services.storage.instance_lock import InstanceLock, InstanceLockedError, holder


def test_second_lock_on_the_same_folder_is_refused_naming_the_pid(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path)
    first.acquire()
    assert holder(tmp_path) == os.getpid()
    with pytest.raises(InstanceLockedError, match=rf"in use by process {os.getpid()}"):
        InstanceLock(tmp_path).acquire()
    first.release()
    assert holder(tmp_path) is None
    again = InstanceLock(tmp_path)
    again.acquire()
    assert again.held
    again.release()


def test_lock_file_is_owner_only(tmp_path: Path) -> None:
    lock = InstanceLock(tmp_path / "data")
    lock.acquire()
    assert (tmp_path / "data" / "station.lock").stat().st_mode & 0o777 == 0o600
    lock.release()


def test_no_lock_file_means_no_holder(tmp_path: Path) -> None:
    assert holder(tmp_path) is None


def test_lock_of_a_killed_process_is_free_again(tmp_path: Path) -> None:
    """A crashed station (SIGKILL) never blocks its own restart: the kernel drops the flock."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from station.services.storage.instance_lock import InstanceLock\n"
        "InstanceLock(Path(sys.argv[1])).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        assert holder(tmp_path) == proc.pid
        with pytest.raises(InstanceLockedError):
            InstanceLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    assert holder(tmp_path) is None
    lock = InstanceLock(tmp_path)
    lock.acquire()
    lock.release()
