"""The historian's answers to HTTP errors (issue 4): waits, quarantine, configuration faults.

A real server cannot be made to answer 429, 503 with ``Retry-After``, 401 or a 422 for one point,
so these use :mod:`tests.integration.scripted_http`; waits are measured from the times the server
recorded, and every wait on the historian is a polled deadline. A hanging server, which a real one
can be made into (SIGSTOP), uses victoria-metrics.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.services.ingest.historian import Historian
from station.services.storage.spool import Spool
from tests.integration.scripted_http import Reply, ScriptedWriteServer, gaps, json_error
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.victoria import VictoriaMetrics
from tests.integration.station_harness import publish, running_station, station_settings
from tests.payloads import vitals

T0_MS = 1_767_225_600_000
LINES = [
    f"vitals,station=ward-test,device=monitor-{i} heartrate={60 + i} {T0_MS}" for i in range(20)
]
MARKER = "device=BAD"
BAD = f"vitals,station=ward-test,{MARKER} heartrate=1i {T0_MS}"


@pytest.fixture
def started() -> Iterator[Callable[[ScriptedWriteServer], ScriptedWriteServer]]:
    """Start scripted servers for the test and stop every one of them afterwards."""
    servers: list[ScriptedWriteServer] = []

    def start(server: ScriptedWriteServer) -> ScriptedWriteServer:
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def historian(url: str, **kwargs: object) -> Historian:
    return Historian(url, "ward", "vitals", "token", flush_interval_s=0.05, **kwargs)  # type: ignore[arg-type]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize(("status", "retry_after"), [(429, 2), (503, 1)])
def test_retry_after_is_waited_then_the_points_arrive(
    started: Callable[[ScriptedWriteServer], ScriptedWriteServer], status: int, retry_after: int
) -> None:
    reply = json_error(
        status, "too many requests", "slow down", **{"Retry-After": str(retry_after)}
    )
    server = started(ScriptedWriteServer([reply]))
    h = historian(server.url)
    for line in LINES[:3]:
        h.submit(line)
    h.start()
    try:
        wait_until(lambda: h.status().error is not None, 5, "the throttled status")
        assert f"({status}, Retry-After {retry_after} s)" in (h.status().error or "")
        wait_until(lambda: h.status().written == 3, retry_after + 10, "the points after the wait")
    finally:
        assert h.stop(5.0)
    requests = server.requests
    assert [r.status for r in requests] == [status, 204]
    assert gaps(requests)[0] >= retry_after
    # Exactly that long, not the backoff on top of it.
    assert gaps(requests)[0] < retry_after + 0.9
    assert requests[1].lines == LINES[:3]
    assert h.status().ok
    assert h.status().backlog == 0


def test_503_without_retry_after_backs_off_exponentially(
    started: Callable[[ScriptedWriteServer], ScriptedWriteServer],
) -> None:
    busy = json_error(503, "unavailable", "overloaded")
    server = started(ScriptedWriteServer([busy, busy]))
    h = historian(server.url)
    h.submit(LINES[0])
    h.start()
    try:
        wait_until(lambda: h.status().written == 1, 15, "the point after two backoffs")
    finally:
        assert h.stop(5.0)
    requests = server.requests
    assert [r.status for r in requests] == [503, 503, 204]
    first, second = gaps(requests)
    assert 1.0 <= first < 1.9  # BACKOFF_MIN_S
    assert 2.0 <= second < 2.9  # doubled
    assert requests[-1].lines == [LINES[0]]


def test_a_point_rejected_for_its_content_is_quarantined_and_the_rest_written_once(
    started: Callable[[ScriptedWriteServer], ScriptedWriteServer],
) -> None:
    message = "partial write: field type conflict"

    def script(body: str) -> Reply:
        return json_error(422, "unprocessable entity", message) if MARKER in body else Reply(204)

    server = started(ScriptedWriteServer(script))
    rejected: list[tuple[str, int, str]] = []
    h = historian(server.url, on_rejected=lambda *args: rejected.append(args))
    batch = [*LINES[:7], BAD, *LINES[7:]]
    for line in batch:
        h.submit(line)
    h.start()  # after submitting, so that all 21 points go in one batch
    try:
        wait_until(lambda: h.status().backlog == 0, 10, "the batch to be resolved")
    finally:
        assert h.stop(5.0)
    requests = server.requests
    assert requests[0].lines == batch
    accepted = [line for r in requests if r.status == 204 for line in r.lines]
    assert sorted(accepted) == sorted(LINES)  # every good point written exactly once
    assert rejected == [(BAD, 422, message)]
    status = h.status()
    assert (status.written, status.rejected, status.dropped) == (20, 1, 0)
    assert status.ok
    [quarantined] = h.quarantined()
    assert (quarantined.line, quarantined.status, quarantined.message) == (BAD, 422, message)


def test_401_keeps_every_point_and_says_authorization(
    started: Callable[[ScriptedWriteServer], ScriptedWriteServer],
) -> None:
    server = started(
        ScriptedWriteServer(lambda _: json_error(401, "unauthorized", "unauthorized access"))
    )
    h = historian(server.url)
    h.start()
    try:
        for line in LINES[:5]:
            h.submit(line)
        wait_until(lambda: h.status().error is not None, 5, "the authorization fault")
        status = h.status()
        assert "authoriz" in (status.error or "")
        assert (status.backlog, status.written, status.dropped, status.rejected) == (5, 0, 0, 0)
        assert len(server.requests) == 1  # slow retry (60 s), not a hammering loop
    finally:
        started_at = time.monotonic()
        assert h.stop(5.0)
        assert time.monotonic() - started_at < 1.0  # stop cuts the 60 s wait short
    assert h.status().backlog == 5


def test_after_the_token_is_fixed_the_kept_points_are_written(
    started: Callable[[ScriptedWriteServer], ScriptedWriteServer],
) -> None:
    server = started(ScriptedWriteServer([json_error(403, "forbidden", "no write permission")]))
    h = historian(server.url, auth_retry_s=0.5)
    for line in LINES[:5]:
        h.submit(line)
    h.start()
    try:
        wait_until(lambda: h.status().written == 5, 10, "the points after the retry")
    finally:
        assert h.stop(5.0)
    requests = server.requests
    assert [r.status for r in requests] == [403, 204]
    assert gaps(requests)[0] >= 0.5
    assert requests[1].lines == LINES[:5]


def test_stop_keeps_its_timeout_while_a_write_hangs(victoria: VictoriaMetrics) -> None:
    h = Historian(victoria.url, "ward", "vitals", None, flush_interval_s=0.05, timeout_ms=30_000)
    h.start()
    os.kill(victoria.pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        h.submit(LINES[0])
        started_at = time.monotonic()
        assert not h.stop(1.0)  # the last write is still hanging
        assert time.monotonic() - started_at < 1.5
        assert h.status().backlog == 1
    finally:
        os.kill(victoria.pid, signal.SIGCONT)


def test_from_the_spool_a_422_point_leaves_it_quarantined_and_a_429_wait_is_honoured(
    started: Callable[[ScriptedWriteServer], ScriptedWriteServer], tmp_path: Path
) -> None:
    """The station's own path: points drained from the spool, not the memory queue."""
    message = "partial write: field type conflict"
    replies = iter([json_error(429, "too many requests", "slow down", **{"Retry-After": "1"})])

    def script(body: str) -> Reply:
        first = next(replies, None)
        if first is not None:
            return first
        return json_error(422, "unprocessable entity", message) if MARKER in body else Reply(204)

    server = started(ScriptedWriteServer(script))
    spool = Spool(tmp_path / "spool.sqlite")
    spool.open()
    batch = [*LINES[:7], BAD, *LINES[7:]]
    spool.append([("monitor", None, line) for line in batch])
    rejected: list[tuple[str, int, str]] = []
    h = historian(server.url, spool=spool, on_rejected=lambda *args: rejected.append(args))
    h.start()
    try:
        wait_until(lambda: spool.backlog()[0] == 0, 10, "the spool to be drained")
    finally:
        assert h.stop(5.0)
        spool.close()
    requests = server.requests
    assert [r.status for r in requests[:2]] == [429, 422]
    assert gaps(requests)[0] >= 1.0  # Retry-After honoured
    accepted = [line for r in requests if r.status == 204 for line in r.lines]
    assert sorted(accepted) == sorted(LINES)  # every good point written exactly once
    assert rejected == [(BAD, 422, message)]  # the app audits it (historian.reject)
    assert h.status().rejected == 1
    assert h.status().written == 20


def test_the_station_audits_a_point_the_historian_refused_and_writes_the_rest(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    started: Callable[[ScriptedWriteServer], ScriptedWriteServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """End to end: a device whose points the server refuses (422) is quarantined and audited
    (``historian.reject``) while another device's points flow."""
    message = "field type conflict"

    def script(body: str) -> Reply:
        refused = "device=monitor-b" in body
        return json_error(422, "unprocessable entity", message) if refused else Reply(204)

    server = started(ScriptedWriteServer(script))
    settings = station_settings(
        mosquitto, tmp_path, influx={"enabled": True, "url": server.url, "flush_interval_s": 0.1}
    )
    monkeypatch.setenv("STATION_INFLUX_TOKEN", "token")
    now = time.time()
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        publish(mosquitto, "monitor-a", [vitals("monitor-a", at=now - 2 + i) for i in range(3)])
        publish(mosquitto, "monitor-b", [vitals("monitor-b", at=now - 2)])
        historian = station.historian
        assert historian is not None
        qtbot.waitUntil(lambda: historian.status().rejected == 1, timeout=10_000)
        qtbot.waitUntil(lambda: historian.status().written >= 3, timeout=10_000)
    written = [line for r in server.requests if r.status == 204 for line in r.lines]
    assert (
        sorted(line.rsplit(" ", 2)[0] for line in written if line.startswith("vitals"))
        == ["vitals,bed=Bed\\ 1,device=monitor-a,station=ward-test"] * 3
    )
    records = [json.loads(x) for x in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()]
    [reject] = [r for r in records if r["action"] == "historian.reject"]
    assert reject["outcome"] == "failure"
    assert reject["details"]["status"] == 422
    assert reject["details"]["message"] == message
    assert "device=monitor-b" in reject["details"]["point"]


def test_a_spool_error_while_marking_points_written_does_not_end_the_historian(
    started: Callable[[ScriptedWriteServer], ScriptedWriteServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full disk can fail the UPDATE that marks points written: the historian says so, waits,
    and sends them again (the server counts a point once); its thread goes on."""
    server = started(ScriptedWriteServer(lambda _: Reply(204)))
    spool = Spool(tmp_path / "spool.sqlite")
    spool.open()
    spool.append([("monitor", None, line) for line in LINES[:5]])
    real = spool.mark_written
    failures = iter([sqlite3.OperationalError("database or disk is full")])

    def flaky(ids: object) -> int:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return real(ids)  # type: ignore[arg-type]

    monkeypatch.setattr(spool, "mark_written", flaky)
    h = historian(server.url, spool=spool)
    h.start()
    try:
        wait_until(lambda: h.status().error is not None, 5, "the spool error to show")
        assert "disk is full" in (h.status().error or "")
        wait_until(lambda: spool.backlog()[0] == 0, 10, "the points to be written again")
        assert h.status().ok
        spool.append([("monitor", None, LINES[5])])
        wait_until(lambda: spool.backlog()[0] == 0, 10, "a later point to be written")
    finally:
        assert h.stop(5.0)
        spool.close()
    sent = [line for r in server.requests for line in r.lines]
    assert sent == [*LINES[:5], *LINES[:5], LINES[5]]  # resent once, then the new one
