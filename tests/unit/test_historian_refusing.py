"""The historian's answer to refusals: a bad point is quarantined, a server that refuses every
write keeps every point (hardening issue); and the notice of a plain remote historian.

The historian's thread runs against a fake write API (no network, no Qt): each write is recorded
and answered by the test's rule. The backoff is shortened to keep the tests fast; the waits are
polled monotonic deadlines.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import pytest
from influxdb_client.rest import ApiException

from station.services.ingest import historian as historian_module
from station.services.ingest.historian import Historian
from station.services.ingest.historian_probe import (
    PROBE_MEASUREMENT,
    Bisection,
    canary_line,
    refusing_error,
    suspect,
)

T0_MS = 1_767_225_600_000
LINES = [f"vitals,device=monitor-{i} heartrate={60 + i % 40} {T0_MS + i}" for i in range(1000)]
BAD = f"vitals,device=BAD heartrate=1i {T0_MS}"
PROXY_SAYS = "<html><body><h1>400 Bad Request</h1>\n</body></html>"


class FakeWrite:
    """Stands in for influxdb-client's write API: ``rule(lines)`` is None (accepted) or
    ``(status, message)``; every write's lines and answer are kept."""

    def __init__(self, rule: Callable[[list[str]], tuple[int, str] | None]) -> None:
        self.rule = rule
        self.calls: list[tuple[list[str], int]] = []

    def write(self, *, bucket: str, org: str, record: bytes, write_precision: object) -> None:
        lines = record.decode().split("\n")
        answer = self.rule(lines)
        self.calls.append((lines, 204 if answer is None else answer[0]))
        if answer is not None:
            exc = ApiException(status=answer[0], reason="refused")  # type: ignore[no-untyped-call]
            exc.message = answer[1]  # what influxdb-client reads from the answer's body
            raise exc

    def sizes(self) -> list[int]:
        return [len(lines) for lines, _ in self.calls]

    def probes(self) -> int:
        return sum(lines[0].startswith(PROBE_MEASUREMENT) for lines, _ in self.calls)


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(historian_module, "BACKOFF_MIN_S", 0.2)


@pytest.fixture
def started() -> Iterator[Callable[..., tuple[Historian, FakeWrite, list[tuple[str, int, str]]]]]:
    made: list[Historian] = []

    def start(
        rule: Callable[[list[str]], tuple[int, str] | None], lines: list[str], **kwargs: object
    ) -> tuple[Historian, FakeWrite, list[tuple[str, int, str]]]:
        rejected: list[tuple[str, int, str]] = []
        h = Historian(
            "http://127.0.0.1:8086",
            "ward",
            "vitals",
            "token",
            flush_interval_s=0.02,
            on_rejected=lambda *args: rejected.append(args),
            **kwargs,  # type: ignore[arg-type]
        )
        fake = FakeWrite(rule)
        h._write = fake  # type: ignore[assignment]
        for line in lines:
            h.submit(line)
        h.start()  # after submitting: one batch
        made.append(h)
        return h, fake, rejected

    yield start
    for h in made:
        assert h.stop(5.0)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.01)


def test_a_server_refusing_everything_gets_four_requests_and_keeps_every_point(
    started: Callable[..., tuple[Historian, FakeWrite, list[tuple[str, int, str]]]],
) -> None:
    """Before: 1,999 requests and 1,000 points quarantined. Now: the batch, its two halves
    refused alike, the canary refused too: nothing quarantined, the status says why."""
    refusing = [True]
    h, fake, rejected = started(lambda _: (400, PROXY_SAYS) if refusing[0] else None, LINES)
    wait_until(lambda: h.status().error is not None, 5, "the refusing status")
    time.sleep(0.1)  # well inside the first backoff (0.2 s)
    status = h.status()
    assert status.error == (
        "historian refuses every write (HTTP 400: 400 Bad Request): points kept; "
        "check a proxy or the URL"
    )
    assert (status.ok, status.backlog, status.written, status.rejected) == (False, 1000, 0, 0)
    assert fake.sizes() == [1000, 500, 500, 1]
    assert fake.probes() == 1
    assert rejected == []
    assert h.quarantined() == []
    # Still refusing: each later try is the batch and the canary, never a bisection.
    wait_until(lambda: len(fake.calls) >= 8, 5, "two more tries")
    assert fake.sizes()[:8] == [1000, 500, 500, 1, 1000, 1, 1000, 1]
    refusing[0] = False
    wait_until(lambda: h.status().written == 1000, 10, "the points once it takes writes")
    assert h.status().ok
    assert h.status().rejected == 0
    accepted = [line for lines, code in fake.calls if code == 204 for line in lines]
    assert accepted == LINES  # each once, in order, and no canary among them


def test_the_backoff_doubles_while_the_server_refuses_everything(
    started: Callable[..., tuple[Historian, FakeWrite, list[tuple[str, int, str]]]],
) -> None:
    tries: list[float] = []

    def rule(lines: list[str]) -> tuple[int, str]:
        if len(lines) == 10:
            tries.append(time.monotonic())
        return 400, "bad request"

    h, _, _ = started(rule, LINES[:10])
    wait_until(lambda: len(tries) >= 4, 10, "four tries")
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    # 0.2, 0.4, 0.8 s (loose upper bounds: a shared machine may be slow to wake a thread)
    assert 0.2 <= gaps[0] < 0.4
    assert 0.4 <= gaps[1] < 0.7
    assert 0.8 <= gaps[2] < 1.2
    assert h.status().rejected == 0


def test_a_bad_point_alone_is_quarantined_once_the_canary_is_taken(
    started: Callable[..., tuple[Historian, FakeWrite, list[tuple[str, int, str]]]],
) -> None:
    message = "partial write: unable to parse 'vitals,device=BAD heartrate=1i': line 1"
    h, fake, rejected = started(lambda lines: (400, message) if BAD in lines else None, [BAD])
    wait_until(lambda: len(rejected) == 1, 5, "the quarantine")
    assert rejected == [(BAD, 400, message)]
    assert [q.line for q in h.quarantined()] == [BAD]
    assert [(lines[0].split(" ")[0], code) for lines, code in fake.calls] == [
        ("vitals,device=BAD", 400),
        (PROBE_MEASUREMENT, 204),
    ]
    assert h.status().ok


def test_a_bad_point_among_good_ones_needs_no_probe(
    started: Callable[..., tuple[Historian, FakeWrite, list[tuple[str, int, str]]]],
) -> None:
    """InfluxDB names the bad line: a message per request, and a half is taken at once."""

    def rule(lines: list[str]) -> tuple[int, str] | None:
        if BAD not in lines:
            return None
        return 400, f"partial write: unable to parse '{BAD}': line {lines.index(BAD) + 1}"

    batch = [*LINES[:7], BAD, *LINES[7:20]]
    h, fake, rejected = started(rule, batch)
    wait_until(lambda: h.status().backlog == 0 and len(rejected) == 1, 5, "the batch")
    assert [line for line, _, _ in rejected] == [BAD]
    assert fake.probes() == 0
    accepted = [line for lines, code in fake.calls if code == 204 for line in lines]
    assert sorted(accepted) == sorted(LINES[:20])
    assert h.status().written == 20


def test_every_point_refused_alike_by_a_server_that_takes_the_canary_is_quarantined(
    started: Callable[..., tuple[Historian, FakeWrite, list[tuple[str, int, str]]]],
) -> None:
    """Both halves refused alike is only a suspicion: the canary taken, the refusals are about
    content (all eight points), and one probe was enough for the whole bisection."""
    lines = LINES[:8]
    conflict = "field type conflict: input field heartrate is type float, already exists as int"
    h, fake, rejected = started(
        lambda sent: None if sent[0].startswith(PROBE_MEASUREMENT) else (422, conflict), lines
    )
    wait_until(lambda: len(rejected) == 8, 5, "the quarantine")
    assert [line for line, _, _ in rejected] == lines
    assert fake.probes() == 1
    assert h.status().ok


def test_the_probe_helpers() -> None:
    assert canary_line(T0_MS + 3_599_999) == f"{PROBE_MEASUREMENT} probe=1i {T0_MS}"
    assert refusing_error((400, "")) == (
        "historian refuses every write (HTTP 400): points kept; check a proxy or the URL"
    )
    run = Bisection()
    assert suspect((400, "x"), (400, "x"), run)
    assert not suspect((400, "line 1"), (400, "line 2"), run)
    assert not suspect((400, "x"), None, run)
    run.accepting = True
    assert not suspect((400, "x"), (400, "x"), run)


@pytest.mark.parametrize(
    ("url", "notice"),
    [
        ("http://10.0.0.5:8086", "UNENCRYPTED historian 10.0.0.5 (allowed by admin)"),
        ("http://historian.hospital.example", "UNENCRYPTED historian historian.hospital.example"),
        ("https://historian.hospital.example:8086", None),
        ("http://127.0.0.1:8086", None),
        ("http://localhost:8086", None),
        ("http://[::1]:8086", None),
    ],
)
def test_the_status_names_a_plain_remote_historian(url: str, notice: str | None) -> None:
    h = Historian(url, "ward", "vitals", None)
    said = h.status().notice
    assert (said is None) == (notice is None)
    assert notice is None or (said or "").startswith(notice)
