"""Server processes for the integration tests: free loopback ports, start, wait until ready, stop by
process id, and an ``atexit`` hook that kills what an interrupted run left behind.
"""

from __future__ import annotations

import atexit
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
POLL_INTERVAL_S = 0.02
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
"""The configuration files this repository ships (``config/``)."""

Series = dict[str, Any]
"""One line of ``/api/v1/export``: ``metric`` (labels), ``values``, ``timestamps`` (ms)."""

_live: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _kill_leftovers() -> None:
    """Kill what a crashed or interrupted run did not stop, so no server outlives pytest."""
    for proc in list(_live.values()):
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that were free on 127.0.0.1.

    The sockets are held open together so that the kernel cannot hand out the same port twice.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """Return one TCP port that was free on 127.0.0.1."""
    return free_ports(1)[0]


def port_open(host: str, port: int) -> bool:
    """Tell whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def processes_mentioning(text: str) -> list[int]:
    """Return the ids of live processes whose command line contains ``text``.

    Each server's command line names its own temporary folder, so this finds exactly this test's
    leftovers, and never the brokers of another test run on the same machine.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended while we looked
        if text in cmdline:
            found.append(int(entry.name))
    return found


# --- processes --------------------------------------------------------------------------------


class ServerProcess:
    """One server binary run in its own folder: start, wait until ready, stop by process id.

    Subclasses say how to run it (``command``) and how to tell it is ready (``is_ready``).
    ``pids`` keeps every process id this server had, so a fixture can prove that none outlived it.
    """

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.output_file = workdir / f"{self.name}.out"
        self.pids: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Return the command line that runs the server."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """Tell whether the running server answers as it should."""
        raise NotImplementedError

    def log_files(self) -> list[Path]:
        """Return the files where the server writes what it does."""
        return [self.output_file]

    @property
    def pid(self) -> int:
        """The process id of the current (or last) run."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the current process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Run the server and return once it is ready.

        Raises:
            RuntimeError: it exited or did not get ready in time (with the end of its log); a
                process that did not get ready is killed first.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running as pid {self.pid}")
        with self.output_file.open("ab") as output:
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._proc = proc
        self.pids.append(proc.pid)
        _live[proc.pid] = proc
        deadline = time.monotonic() + timeout
        while True:
            ready = self.is_ready()
            # Checked after is_ready: a port taken by someone else must not pass for ours.
            if proc.poll() is not None:
                _live.pop(proc.pid, None)
                raise RuntimeError(
                    f"{self.name} exited with {proc.returncode} while starting:\n{self.log_tail()}"
                )
            if ready:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} was not ready after {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(POLL_INTERVAL_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Ask the server to end (SIGTERM) and wait; SIGKILL it if it does not end in time.

        Returns:
            Its exit status (negative: the signal that ended it), None if it never started.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _live.pop(proc.pid, None)
        return proc.returncode

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash or a power cut would."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _live.pop(proc.pid, None)

    def restart(self) -> None:
        """Stop the server in order and start it again on the same ports with the same data."""
        self.stop()
        self.start()

    def leftover_pids(self) -> list[int]:
        """Return the ids of processes of this server that are still alive (should be none)."""
        alive = {pid for pid in self.pids if pid in _live and _live[pid].poll() is None}
        return sorted(alive | set(processes_mentioning(str(self.workdir))))

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of each log file, for error messages and failed tests."""
        parts = []
        for path in self.log_files():
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} ---\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no log from {self.name})"
