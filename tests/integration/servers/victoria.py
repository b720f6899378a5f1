"""A single-node victoria-metrics: the historian as the station sees it (InfluxDB v2 writes)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.integration.servers.processes import (
    LOOPBACK,
    POLL_INTERVAL_S,
    Series,
    ServerProcess,
    free_port,
)


def _find_victoria_metrics() -> str:
    for candidate in (shutil.which("victoria-metrics"), "/usr/bin/victoria-metrics"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("victoria-metrics not found: apt-get install victoria-metrics")


class VictoriaMetrics(ServerProcess):
    """A single-node victoria-metrics: the historian as the station sees it (InfluxDB v2 writes).

    ``-dedup.minScrapeInterval=1ms`` makes a point written twice count once, as InfluxDB does for
    the same measurement, tags and time; ``-retentionPeriod=100y`` keeps points with fixed old
    timestamps (the default keeps one month); ``-search.latencyOffset=0s`` lets queries (not only
    exports) see a point written a moment ago.
    """

    name = "victoria-metrics"

    def __init__(self, workdir: Path, binary: str | None = None) -> None:
        super().__init__(workdir)
        self.binary = binary or _find_victoria_metrics()
        self.host = LOOPBACK
        self.port = free_port()
        self.data_dir = workdir / "data"

    @property
    def url(self) -> str:
        """Base URL, e.g. for ``InfluxDBClient(url=...)``."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-dedup.minScrapeInterval=1ms",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
        ]

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body: bytes = response.read()
            return body

    def flush(self) -> None:
        """Make points received so far searchable now rather than within a second or two."""
        self._get("/internal/force_flush")

    def export(self, match: str) -> list[Series]:
        """Return every series matching a selector, e.g. ``{__name__=~"vitals_.*"}``, all time.

        Each series is ``{"metric": {"__name__": ..., labels...}, "values": [...],
        "timestamps": [ms, ...]}``.
        """
        body = self._get("/api/v1/export", {"match[]": match})
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def wait_for(
        self,
        match: str,
        predicate: Callable[[list[Series]], bool],
        timeout: float = 10.0,
    ) -> list[Series]:
        """Flush and export until ``predicate(series)`` holds; return those series.

        Raises:
            AssertionError: not within ``timeout`` seconds, with what the last export returned.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.flush()
            series = self.export(match)
            if predicate(series):
                return series
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"victoria-metrics: {match} did not satisfy the condition in {timeout} s; "
                    f"last export: {json.dumps(series)[:2000]}"
                )
            time.sleep(POLL_INTERVAL_S * 5)
