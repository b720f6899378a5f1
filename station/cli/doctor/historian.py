"""The ``historian`` check: one harmless point written as the station writes, then read back.

The point is ``station_doctor,station=<id> ok=1`` at the current millisecond, written through
influxdb-client's synchronous write API exactly as the historian writes (same client, same
precision), so a token without write permission, a wrong org or bucket, or an unreachable server
shows here as it would in the station. The station itself never reads, so the read-back uses
what the server offers: victoria-metrics' ``/api/v1/export`` (with a flush, or the point shows
only seconds later), else InfluxDB 2's Flux query API.
A token that may not read (a write-only token is good practice) is not a fault.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from station.cli.doctor.context import Context
from station.cli.doctor.report import Finding, fail, ok, warn
from station.config.settings import InfluxSection
from station.services.ingest.connection_check import https_handler

TIMEOUT_S = 5.0
MEASUREMENT = "station_doctor"
POLL_S = 0.2
READ_BACK_S = 8.0
"""How long a written point may take to become readable (victoria-metrics flushes, a busy
machine): longer than one request's timeout, or a loaded server reads as a broken one."""
NOT_READABLE = "not read back"


def check_historian(ctx: Context) -> Finding:
    """Off in the config is fine; on, a write must be accepted (and is read back if it can)."""
    s = ctx.s
    i = s.influx
    if not i.enabled:
        return ok("off in the config ([influx] enabled = false)")
    need = next(n for n in ctx.needs() if n.kind == "influx")
    token = ctx.vault.find(need).value
    at_ms = int(time.time() * 1000)
    problem = write_point(i, token, s.station.id, at_ms)
    if problem is not None:
        return fail(problem)
    wrote = f"wrote a test point ({MEASUREMENT},station={s.station.id} ok=1) to {i.url}"
    read = read_back(i, token, s.station.id, at_ms, deadline=time.monotonic() + READ_BACK_S)
    if read is None:
        return ok(f"{wrote} and read it back")
    if read.startswith(NOT_READABLE):
        return ok(f"{wrote}; {read}")
    return warn(f"{wrote}, but {read}")


def _reason(exc: BaseException) -> str:
    """The root of a connection failure in a few words (urllib3 wraps it deeply)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused (not running, or wrong port?)"
        if isinstance(seen, socket.gaierror):
            return f"host name not found ({seen.strerror})"
        if isinstance(seen, TimeoutError | socket.timeout):
            return "no answer in time (firewall, or wrong address?)"
        seen = seen.__cause__ or seen.__context__
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def write_point(i: InfluxSection, token: str | None, station: str, at_ms: int) -> str | None:
    """Write the test point; None when the server took it, else what is wrong and what to do."""
    line = f"{MEASUREMENT},station={station} ok=1 {at_ms}"
    client = InfluxDBClient(
        url=i.url,
        token=token or "",
        org=i.org,
        timeout=int(TIMEOUT_S * 1000),
        retries=False,
        ssl_ca_cert=str(Path(i.ca_file).expanduser()) if i.ca_file else None,
    )
    try:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=i.bucket,
            org=i.org,
            record=line.encode("utf-8"),
            write_precision=WritePrecision.MS,  # type: ignore[arg-type]
        )
    except ApiException as exc:
        return _refused(i, int(getattr(exc, "status", 0) or 0), str(getattr(exc, "body", "")))
    except Exception as exc:  # urllib3's connection errors, timeouts
        return f"cannot reach {i.url}: {_reason(exc)}; is InfluxDB running? check [influx] url"
    finally:
        client.close()  # type: ignore[no-untyped-call]
    return None


def _refused(i: InfluxSection, status: int, body: str) -> str:
    said = " ".join(body.split())[:160]
    if status in (401, 403):
        return (
            f"{i.url} refused the token ({status}): check the InfluxDB token (STATION_INFLUX_TOKEN"
            f" or the keyring's influx:{i.org}) and that it may write to bucket {i.bucket!r}"
        )
    if status == 404:
        return (
            f"{i.url} has no bucket {i.bucket!r} in org {i.org!r} ({status}: {said}): check "
            "[influx] org and bucket"
        )
    return f"{i.url} refused the test point ({status}: {said}): check [influx] url, org and bucket"


def _get(url: str, token: str | None, ca_file: str) -> tuple[int, str]:
    """GET without proxies, as the historian's client; the status and the body's start."""
    request = urllib.request.Request(url, method="GET")  # http(s) only: the schema's pattern
    if token:
        request.add_header("Authorization", f"Token {token}")
    return _open(request, ca_file)


def _open(request: urllib.request.Request, ca_file: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), https_handler(ca_file))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            return int(response.status), response.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode("utf-8", "replace")


def _export(i: InfluxSection, token: str | None, station: str, at_ms: int) -> tuple[int, bool]:
    """victoria-metrics: the status of ``/api/v1/export`` and whether it holds the point."""
    query = urllib.parse.urlencode(
        {
            "match[]": f'{MEASUREMENT}_ok{{station="{station}"}}',
            "start": f"{at_ms / 1000 - 1:.3f}",
            "end": f"{at_ms / 1000 + 1:.3f}",
        }
    )
    base = i.url.rstrip("/")
    # Written points become readable only after victoria-metrics' next flush (a few seconds);
    # its documented /internal/force_flush makes them readable now, and changes nothing else.
    # Flushed before the first look too: a search for a series not yet flushed can be answered
    # from a cache of "no such series" for longer than the doctor waits.
    _get(f"{base}/internal/force_flush", token, i.ca_file)
    status, body = _get(f"{base}/api/v1/export?{query}", token, i.ca_file)
    if status != 200:
        return status, False
    for line in body.splitlines():
        if line.strip() and at_ms in json.loads(line).get("timestamps", []):
            return status, True
    return status, False


def _flux(i: InfluxSection, token: str | None, station: str, at_ms: int) -> tuple[int, bool]:
    """InfluxDB 2: the status of a Flux query for the point and whether it came back."""
    start = datetime.fromtimestamp(at_ms / 1000, UTC)
    stop = start + timedelta(milliseconds=1)
    flux = (
        f"from(bucket: {json.dumps(i.bucket)})"
        f" |> range(start: {start.isoformat()}, stop: {stop.isoformat()})"
        f' |> filter(fn: (r) => r._measurement == "{MEASUREMENT}" and r.station == "{station}")'
    )
    url = f"{i.url.rstrip('/')}/api/v2/query?{urllib.parse.urlencode({'org': i.org})}"
    request = urllib.request.Request(
        url, data=json.dumps({"query": flux, "type": "flux"}).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/csv")
    if token:
        request.add_header("Authorization", f"Token {token}")
    status, body = _open(request, i.ca_file)
    return status, status == 200 and MEASUREMENT in body


def read_back(
    i: InfluxSection, token: str | None, station: str, at_ms: int, deadline: float
) -> str | None:
    """None when the point was read back before ``deadline`` (monotonic); else why not: a
    sentence starting with :data:`NOT_READABLE` when the server cannot be read (not a fault)."""
    reader = _export
    while True:
        try:
            status, seen = reader(i, token, station, at_ms)
        except (OSError, ValueError) as exc:
            return f"it could not be read back: {_reason(exc)}"
        if seen:
            return None
        if status in (401, 403):
            return f"{NOT_READABLE}: the token may not read ({status}), as a write-only token"
        if status != 200 and reader is _export:
            reader = _flux  # not victoria-metrics: try InfluxDB 2's query API
            continue
        if status != 200:
            return f"{NOT_READABLE}: the server offers no read API the doctor knows ({status})"
        if time.monotonic() >= deadline:
            return (
                f"it was not readable within {READ_BACK_S:g} s: the server took it but does not "
                "show it; check the historian's storage (disk, retention) and its logs"
            )
        time.sleep(POLL_S)
