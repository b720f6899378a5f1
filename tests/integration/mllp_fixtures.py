"""The HL7 interface engine of the integration tests: ``servers/mllp_peer.py`` as a process on a
free loopback port, started by the ``mllp_peer`` fixture and stopped by process id.

Import the fixture into a test module (``from tests.integration.mllp_fixtures import
mllp_peer``). The peer keeps its port across :meth:`MllpPeer.restart`, its log across runs, and
reads its answer mode from a file at every message (:meth:`MllpPeer.answer`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers.processes import LOOPBACK, ServerProcess, free_port, port_open

PEER_SCRIPT = Path(__file__).resolve().parent / "servers" / "mllp_peer.py"


class MllpPeer(ServerProcess):
    """The peer process; ``port`` is fixed at creation, ``received()`` reads its log."""

    name = "mllp-peer"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.log = workdir / "received.jsonl"
        self.mode_file = workdir / "mode"
        self.answer("AA")

    def command(self) -> list[str]:
        return [
            sys.executable,
            str(PEER_SCRIPT),
            "--port",
            str(self.port),
            "--log",
            str(self.log),
            "--mode",
            str(self.mode_file),
        ]

    def is_ready(self) -> bool:
        return port_open(LOOPBACK, self.port)

    def log_files(self) -> list[Path]:
        return [self.output_file, self.log]

    def answer(self, mode: str) -> None:
        """Answer the next messages with ``AA``, ``AE``, ``AR``, or stay ``silent``."""
        temporary = self.mode_file.with_suffix(".tmp")
        temporary.write_text(mode)
        temporary.replace(self.mode_file)

    def received(self) -> list[dict[str, Any]]:
        """Every message received so far, in order, as the peer logged it."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]


@pytest.fixture
def mllp_peer(tmp_path: Path) -> Iterator[MllpPeer]:
    """A running peer answering ``AA``; stopped (and checked stopped) after the test."""
    peer = MllpPeer(tmp_path / "mllp-peer")
    try:
        peer.start()
        yield peer
    finally:
        peer.stop()
        leftovers = peer.leftover_pids()
        for pid in leftovers:  # each names this test's folder on its command line: ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"mllp peer left processes running: {leftovers}"
