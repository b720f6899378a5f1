"""A historian that refuses everything, told from one that refuses a point (hardening issue).

A proxy answering 400 to every write in front of a healthy server once had 1,000 of 1,000 good
points quarantined in 1,999 requests, an audit record each. Here a real victoria-metrics sits
behind :class:`~tests.integration.write_proxy.WriteProxy` on loopback: it refuses everything for
a while, then passes every request through; or it refuses only the lines holding a marker, as
InfluxDB's partial write does. Every wait is a polled monotonic deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.services.ingest.historian import Historian, HistorianStatus
from station.services.ingest.historian_probe import PROBE_MEASUREMENT
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.pki import Pki
from tests.integration.servers.victoria import VictoriaMetrics
from tests.integration.station_harness import publish, running_station, station_settings
from tests.integration.write_proxy import REFUSED_BODY, WriteProxy
from tests.payloads import vitals

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, well inside the fixture's retention
POINTS = 1000
LINES = [
    f"vitals,station=ward-test,device=monitor-{i % 10} heartrate={60 + i % 40} "
    f"{T0_MS + (i // 10) * 1000}"
    for i in range(POINTS)
]
REFUSE_S = 30.0
REFUSING = (
    f"historian refuses every write (HTTP 400: {REFUSED_BODY.decode().strip()}): points kept; "
    "check a proxy or the URL"
)
MARKER = "device=BAD"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


def heartrates(victoria: VictoriaMetrics, count: int) -> dict[str, list[tuple[int, float]]]:
    """(time, value) of each device's ``vitals_heartrate`` once ``count`` points are there."""
    series = victoria.wait_for(
        '{__name__="vitals_heartrate"}',
        lambda s: sum(len(x["timestamps"]) for x in s) >= count,
        timeout=15,
    )
    return {
        s["metric"]["device"]: list(zip(s["timestamps"], s["values"], strict=True)) for s in series
    }


def expected(lines: list[str]) -> dict[str, list[tuple[int, float]]]:
    points: dict[str, list[tuple[int, float]]] = {}
    for line in lines:
        key, field, at = line.split(" ")
        device = key.split("device=")[1].split(",")[0]
        points.setdefault(device, []).append((int(at), float(field.split("=")[1])))
    return {device: sorted(values) for device, values in points.items()}


def test_a_proxy_refusing_every_write_quarantines_nothing_and_every_point_arrives_once(
    victoria: VictoriaMetrics,
) -> None:
    """1,000 good points behind a proxy that answers 400 to everything for ``REFUSE_S`` s.

    30 s, as the issue's proxy refused. Only the number of backoff rounds depends on it (tries
    at 0, 1, 3, 7, 15, 31 s: a 30 s refusal is over at the sixth), each round two requests (the
    batch and the canary) after the first round's four (the batch, its two halves refused
    alike, the canary): never a bisection down to single points.
    """
    rejected: list[tuple[str, int, str]] = []
    proxy = WriteProxy(victoria.url, refuse_all_for_s=REFUSE_S)
    h = Historian(
        proxy.url,
        "ward",
        "vitals",
        "token",
        flush_interval_s=0.05,
        on_rejected=lambda *args: rejected.append(args),
    )
    for line in LINES:
        h.submit(line)
    during: list[HistorianStatus] = []
    with proxy:
        h.start()  # after submitting: the 1,000 points go as one batch
        try:
            wait_until(lambda: h.status().error is not None, 5, "the refusing status")
            while proxy.refusing():  # the status says so for as long as it lasts
                during.append(h.status())
                time.sleep(0.05)
            wait_until(lambda: h.status().written == POINTS, 40, "every point after the proxy")
        finally:
            assert h.stop(5.0)
    assert len(during) >= 10
    assert {s.error for s in during} == {REFUSING}
    assert {(s.ok, s.backlog, s.written, s.rejected) for s in during} == {(False, POINTS, 0, 0)}
    final = h.status()
    assert (final.ok, final.error, final.backlog, final.written) == (True, None, 0, POINTS)
    assert (final.rejected, final.dropped) == (0, 0)
    assert rejected == []  # nothing for the audit trail's historian.reject
    assert h.quarantined() == []

    requests = proxy.requests
    refused = [r for r in requests if r.status == 400]
    sizes = sorted({len(r.lines) for r in refused})
    assert sizes == [1, POINTS // 2, POINTS], sizes  # batch, halves once, canary: no bisection
    assert all(r.lines[0].startswith(PROBE_MEASUREMENT) for r in refused if len(r.lines) == 1)
    assert len(requests) <= 14, [(len(r.lines), r.status) for r in requests]  # 13 measured
    taken = [line for r in requests if r.forwarded and r.status == 204 for line in r.lines]
    assert sorted(line for line in taken if line.startswith("vitals")) == sorted(LINES)
    assert heartrates(victoria, POINTS) == expected(LINES)  # each point once in the server


def test_a_bad_point_among_good_ones_is_still_quarantined_alone(
    victoria: VictoriaMetrics,
) -> None:
    """The proxy refuses only lines holding ``MARKER``, as InfluxDB's partial write does (the
    rest reaches the server, the answer names the line). A bad point in a batch of good ones is
    found by bisection without a probe (a half was taken); a bad point alone in its batch asks
    the canary first, which the server takes: it is quarantined, and nothing else."""
    bad = [
        f"vitals,station=ward-test,{MARKER} heartrate=1 {T0_MS}",
        f"vitals,station=ward-test,{MARKER} heartrate=2 {T0_MS + 1000}",
    ]
    good = LINES[:40]
    rejected: list[tuple[str, int, str]] = []
    proxy = WriteProxy(victoria.url, marker=MARKER)
    h = Historian(
        proxy.url,
        "ward",
        "vitals",
        "token",
        flush_interval_s=0.05,
        on_rejected=lambda *args: rejected.append(args),
    )
    h.submit(bad[0])  # alone: its batch has no good point to vouch for the server
    with proxy:
        h.start()
        try:
            wait_until(lambda: h.status().rejected == 1, 10, "the lone bad point")
            for line in [*good[:20], bad[1], *good[20:]]:
                h.submit(line)
            wait_until(lambda: h.status().backlog == 0, 10, "the batch to be resolved")
        finally:
            assert h.stop(5.0)
    assert [(line, status) for line, status, _ in rejected] == [(bad[0], 400), (bad[1], 400)]
    assert [m for _, _, m in rejected] == [
        f"partial write: unable to parse '{line}': line 1" for line in bad
    ]
    assert [q.line for q in h.quarantined()] == bad
    status = h.status()
    assert (status.ok, status.written, status.rejected, status.dropped) == (True, 40, 2, 0)

    requests = proxy.requests
    # The lone point, then the canary (taken), and no other probe afterwards.
    assert (requests[0].lines, requests[0].status) == ([bad[0]], 400)
    [probe] = [r for r in requests if r.lines[0].startswith(PROBE_MEASUREMENT)]
    assert (probe, probe.status, len(probe.lines)) == (requests[1], 204, 1)
    assert heartrates(victoria, 40) == expected(good)
    assert not victoria.export('{__name__="vitals_heartrate", device="BAD"}')


def test_the_station_keeps_every_point_and_says_so_while_a_proxy_refuses_everything(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """End to end: the status bar and the alarm list say "refuses every write" while the proxy
    refuses (the historian's technical alarm); no ``historian.reject`` in the audit trail; once
    it passes requests through, the vitals are in victoria-metrics."""
    proxy = WriteProxy(victoria.url, refuse_all_for_s=3.0)
    settings = station_settings(
        mosquitto, tmp_path, influx={"enabled": True, "url": proxy.url, "flush_interval_s": 0.1}
    )
    monkeypatch.setenv("STATION_INFLUX_TOKEN", "token")
    trail = tmp_path / "audit" / "audit.jsonl"
    now = time.time()
    sent = [round(now - 3 + i, 3) for i in range(3)]
    with proxy, running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        publish(mosquitto, "monitor-a", [vitals("monitor-a", at=at) for at in sent])
        window = station.window
        qtbot.waitUntil(lambda: "refuses every write" in window.historian.text(), timeout=10_000)
        assert proxy.refusing()
        qtbot.waitUntil(
            lambda: any(
                "Historian failing" in a.message and "refuses every write" in a.message
                for a in window.alarm_list.alarms()
            ),
            timeout=10_000,
        )
        series = victoria.wait_for(
            '{__name__="vitals_heartrate", device="monitor-a"}',
            lambda s: len(s) == 1 and len(s[0]["timestamps"]) == 3,
            timeout=40,
        )
        historian = station.historian
        assert historian is not None
        qtbot.waitUntil(lambda: "Historian: writing" in window.historian.text(), timeout=10_000)
        qtbot.waitUntil(lambda: "historian.recovered" in trail.read_text(), timeout=10_000)
        assert historian.status().rejected == 0
        assert historian.quarantined() == []
    assert series[0]["timestamps"] == [round(at * 1000) for at in sent]
    records = [json.loads(x) for x in trail.read_text().splitlines()]
    actions = [r["action"] for r in records]
    assert "historian.reject" not in actions
    fault = next(r for r in records if r["action"] == "historian.fault")
    assert "refuses every write" in fault["details"]["error"]
    assert actions.index("historian.fault") < actions.index("historian.recovered")


def test_the_status_bar_names_a_plain_remote_historian_whatever_its_state() -> None:
    """An admin's ``[influx] allow_plain_remote``: said in red beside the historian's state for
    as long as the historian runs (the broker's notice does the same for plain MQTT)."""
    from station.ui import status_text

    h = Historian("http://192.0.2.7:8086", "ward", "vitals", None)  # never started
    ok = h.status()
    text = status_text.historian_text(ok)
    assert "UNENCRYPTED historian 192.0.2.7 (allowed by admin)" in text
    assert "Historian: writing" in text
    failing = replace(ok, ok=False, error="HTTP 500: down")
    assert "UNENCRYPTED historian 192.0.2.7" in status_text.historian_text(failing)
    assert "FAILING" in status_text.historian_text(failing)
    local = Historian("http://127.0.0.1:8086", "ward", "vitals", None)
    assert "UNENCRYPTED" not in status_text.historian_text(local.status())


def test_an_https_historian_is_trusted_through_its_ca_file(
    victoria: VictoriaMetrics, pki: Pki
) -> None:
    """``[influx] ca_file`` reaches influxdb-client as ``ssl_ca_cert``: with the CA that signed
    the server's certificate the points are written; without it the certificate is refused (the
    system store does not know a private CA) and every point is kept."""
    with WriteProxy(victoria.url, tls=(pki.server_cert, pki.server_key)) as proxy:
        https = proxy.url.replace("127.0.0.1", "localhost")
        assert https.startswith("https://localhost:")
        untrusted = Historian(https, "ward", "vitals", "token", flush_interval_s=0.05)
        trusted = Historian(
            https, "ward", "vitals", "token", flush_interval_s=0.05, ssl_ca_cert=str(pki.ca_cert)
        )
        untrusted.submit(LINES[0])
        for line in LINES[:10]:
            trusted.submit(line)
        untrusted.start()
        trusted.start()
        try:
            wait_until(lambda: trusted.status().written == 10, 10, "the points over https")
            wait_until(lambda: untrusted.status().error is not None, 10, "the refused certificate")
            assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.status().error or "")
            assert (untrusted.status().backlog, untrusted.status().rejected) == (1, 0)
        finally:
            assert trusted.stop(5.0)
            assert untrusted.stop(5.0)
    assert heartrates(victoria, 10) == expected(LINES[:10])
