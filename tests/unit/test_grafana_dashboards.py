"""The Grafana dashboards and provisioning in ``resources/grafana`` parse, and every query in
them names only measurements, fields, tags and tag values the station writes.

The schema is not a list typed here: it is read off what the station's own code writes. A
``vitals`` point of a message with every value (:func:`~station.domain.lineprotocol.vitals_line`),
``alarms`` points of a physiological and a technical alarm
(:func:`~station.domain.lineprotocol.alarm_line`), the historian's canary
(:func:`~station.services.ingest.historian_probe.canary_line`), and the point ``station doctor``
writes, captured from the wire by a small HTTP server on loopback that answers as InfluxDB's
write API does. The values a dashboard filters ``state`` and ``priority`` on come from the
station's enums.

Grafana itself cannot be installed on this machine (no Debian package, no network beyond the
Python and Debian registries), so nothing here renders a dashboard: this checks the names.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML: a dependency of amqtt, the demo broker

from station.cli.doctor.historian import write_point
from station.config.settings import InfluxSection
from station.domain.alarms import Alarm, AlarmKind, AlarmLimits, AlarmState, Priority
from station.domain.lineprotocol import alarm_line, vitals_line
from station.services.ingest.historian_probe import canary_line
from tests.payloads import accepted

GRAFANA = Path(__file__).resolve().parents[2] / "resources" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
FLAVOURS = {"flux": "station-flux", "influxql": "station-influxql"}
NOW = 1_738_411_200.0


@dataclass
class Measurement:
    tags: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)


Schema = dict[str, Measurement]


# -- what the station writes -----------------------------------------------------------------


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at every ``sep`` not escaped by a backslash (line protocol)."""
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _parse(line: str, schema: Schema) -> None:
    head, fields, _time = _split(line.strip(), " ")
    name, *tags = _split(head, ",")
    found = schema.setdefault(name, Measurement())
    found.tags |= {_split(t, "=")[0] for t in tags}
    found.fields |= {_split(f, "=")[0] for f in _split(fields, ",")}


@pytest.fixture(scope="module")
def doctor_line() -> str:
    """The point ``station doctor`` writes, as it reaches an InfluxDB v2 write API."""
    bodies: list[bytes] = []

    class WriteApi(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            if self.path.startswith("/api/v2/write"):
                bodies.append(self.rfile.read(size))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), WriteApi)
    thread = threading.Thread(target=server.serve_forever, name="grafana-test-write-api")
    thread.start()
    try:
        influx = InfluxSection(enabled=True, url=f"http://127.0.0.1:{server.server_port}")
        assert write_point(influx, "a-token", "ward-1", round(NOW * 1000)) is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    (body,) = bodies
    return body.decode("utf-8")


@pytest.fixture(scope="module")
def schema(doctor_line: str) -> Schema:
    message = accepted(
        "mon-1", NOW, location={"latitude": 48.1, "longitude": 11.6}, battery=80, seq=1
    )
    lines = [vitals_line("ward-1", "Bed 1", message), canary_line(round(NOW * 1000)), doctor_line]
    for kind, value, limit in (
        (AlarmKind.PHYSIOLOGICAL, 134.0, 120.0),
        (AlarmKind.TECHNICAL, None, None),
    ):
        alarm = Alarm(
            alarm_id="a1",
            device_id="mon-1",
            bed="Bed 1",
            kind=kind,
            parameter="heartrate",
            priority=Priority.HIGH,
            state=AlarmState.ACTIVE,
            value=value,
            limit=limit,
            message="HR 134 > 120",
            raised_at=NOW,
            at=NOW,
        )
        lines.append(alarm_line("ward-1", alarm))
    out: Schema = {}
    for line in lines:
        assert line is not None
        _parse(line, out)
    return out


TAG_VALUES = {
    "state": {s.value for s in AlarmState},
    "priority": {p.value for p in Priority},
}
"""Tags whose values a query may name, and the values the station writes."""
VITAL_PARAMETERS = set(AlarmLimits.PARAMETERS)
"""A ``parameter`` a query names in a list (``/^(heartrate|oxygen|...)$/``): the vital signs
the station alarms on; what is not one of them is a technical alarm's."""


# -- reading the queries ---------------------------------------------------------------------

FLUX_COLUMNS = {"_time", "_value", "_field", "_measurement", "_start", "_stop"}
GRAFANA_VARIABLES = {"timeFilter", "__interval", "__interval_ms", "__from", "__to", "__range"}
_INFLUXQL_KNOWN = (
    "select from where and or group by time fill none null previous linear order desc asc"
    " limit slimit offset as show tag values with key in tz now"
    " mean median min max last first count sum spread stddev distinct percentile"
)
INFLUXQL_WORDS = frozenset(_INFLUXQL_KNOWN.split())
"""The InfluxQL keywords and functions the dashboards use; any other bare word is refused."""
_QL_TOKEN = re.compile(
    r"""(?P<ident>"(?:[^"\\]|\\.)*")
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<regex>/(?:[^/\\]|\\.)*/)
    |(?P<var>\$\{[^}]*\}|\$\w+)
    |(?P<number>\d+(?:\.\d+)?[a-z]*)
    |(?P<word>[A-Za-z_]\w*)
    |(?P<op>=~|!~|!=|<>|<=|>=|[=<>(),*+\-])
    |(?P<space>\s+)""",
    re.VERBOSE,
)


def _known(names: set[str], schema: Schema) -> tuple[list[str], set[str], set[str]]:
    """Problems with the measurements named, and the tags and fields they have."""
    problems = [f"measurement {m!r} is not written by the station" for m in names - schema.keys()]
    if not names:
        problems.append("names no measurement")
    tags: set[str] = set()
    fields: set[str] = set()
    for name in names & schema.keys():
        tags |= schema[name].tags
        fields |= schema[name].fields
    return problems, tags, fields


def _parameter_lists(query: str) -> list[str]:
    """A ``parameter`` matched against a list of names must list the station's vital signs."""
    problems = []
    for listed in re.findall(r'parameter"?\s*[=!]~\s*/\^\(([^)]*)\)\$/', query):
        names = set(listed.split("|"))
        if names != VITAL_PARAMETERS:
            problems.append(f"parameter list {sorted(names)} is not the vital signs alarmed on")
    return problems


def _tag_value(tag: str, value: str) -> list[str]:
    allowed = TAG_VALUES.get(tag)
    if allowed is None or "$" in value or value in allowed:
        return []
    return [f"{tag} {value!r} is never written (the station writes {sorted(allowed)})"]


def check_flux(query: str, schema: Schema) -> list[str]:
    """What in a Flux query names something the station does not write."""
    measured = set(re.findall(r'\br\._measurement\s*==\s*"([^"]*)"', query))
    measured |= set(re.findall(r'\bmeasurement:\s*"([^"]*)"', query))
    problems, tags, fields = _known(measured, schema)
    rest = re.sub(r'\br\._measurement\s*==\s*"[^"]*"', "", query)
    if "_measurement" in rest:
        problems.append("names a measurement in a way this check cannot read")
    for name in re.findall(r'\br\._field\s*==\s*"([^"]*)"', query):
        if name not in fields:
            problems.append(f"field {name!r} is not written to {sorted(measured)}")
    if re.search(r"\br\._field\s*(?!==)[=!<>]", query):
        problems.append("matches fields other than by ==: this check cannot read it")
    columns = list(re.findall(r"\br\.([A-Za-z_]\w*)", query))
    columns += re.findall(r'\br\["([^"]*)"\]', query)
    for listed in re.findall(r"\b(?:columns|rowKey|columnKey)\s*:\s*\[([^\]]*)\]", query):
        columns += re.findall(r'"([^"]*)"', listed)
    columns += re.findall(r'\b(?:valueColumn|column|timeColumn)\s*:\s*"([^"]*)"', query)
    for name in columns:
        if name not in FLUX_COLUMNS | tags | fields:
            problems.append(f"column {name!r} is neither a tag nor a field of {sorted(measured)}")
    for name in re.findall(r'\btag:\s*"([^"]*)"', query):
        if name not in tags:
            problems.append(f"tag {name!r} is not written to {sorted(measured)}")
    for tag, value in re.findall(r'\br\.(\w+)\s*(?:==|!=)\s*"([^"]*)"', query):
        problems += _tag_value(tag, value)
    return problems + _parameter_lists(query)


def check_influxql(query: str, schema: Schema) -> list[str]:
    """What in an InfluxQL query names something the station does not write (every name must
    be double-quoted, so that nothing is taken for a keyword)."""
    problems: list[str] = []
    measured: set[str] = set()
    names: list[str] = []
    significant: list[tuple[str, str]] = []
    position = 0
    for match in _QL_TOKEN.finditer(query):
        if match.start() != position:
            problems.append(f"cannot read {query[position : match.start()]!r}")
        position = match.end()
        kind, text = match.lastgroup or "", match.group()
        if kind == "space":
            continue
        before = [t.lower() for _k, t in significant[-2:]]
        if kind == "word" and text.lower() not in INFLUXQL_WORDS:
            problems.append(f"bare word {text!r}: quote names, or it is no InfluxQL this knows")
        if kind == "ident":
            name = text[1:-1]
            if before[-1:] == ["from"]:
                measured.add(name)
            elif before[-1:] != ["as"]:
                names.append(name)
        compared = len(significant) >= 2 and significant[-1][1] in ("=", "!=")
        if kind == "string" and compared and significant[-2][0] == "ident":
            problems += _tag_value(significant[-2][1][1:-1], text[1:-1])
        significant.append((kind, text))
    if position != len(query):
        problems.append(f"cannot read {query[position:]!r}")
    found, tags, fields = _known(measured, schema)
    problems += found + _parameter_lists(query)
    problems += [
        f"{name!r} is neither a tag nor a field of {sorted(measured)}"
        for name in names
        if name not in tags | fields
    ]
    return problems


# -- the dashboards --------------------------------------------------------------------------

CHECKS = {"station-flux": check_flux, "station-influxql": check_influxql}


def dashboards() -> list[tuple[str, Path]]:
    return [
        (flavour, path)
        for flavour in FLAVOURS
        for path in sorted((DASHBOARDS / flavour).glob("*.json"))
    ]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row's


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(where, data source uid, target or variable)`` of every query of a dashboard."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["datasource"]["uid"], variable
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel["datasource"]
            yield f"panel {panel['title']!r}", source["uid"], target


def test_there_are_the_four_dashboards_in_both_query_languages() -> None:
    names = {
        flavour: {p.name for p in (DASHBOARDS / flavour).glob("*.json")} for flavour in FLAVOURS
    }
    assert (
        names["flux"]
        == names["influxql"]
        == {
            "ward-overview.json",
            "bed-trends.json",
            "alarms.json",
            "station-health.json",
        }
    )
    for name in names["flux"]:
        flux, influxql = (json.loads((DASHBOARDS / f / name).read_text("utf-8")) for f in FLAVOURS)
        assert [p["title"] for p in panels(flux)] == [p["title"] for p in panels(influxql)]
    uids = [json.loads(path.read_text("utf-8"))["uid"] for _f, path in dashboards()]
    assert len(set(uids)) == len(uids) == 8


@pytest.mark.parametrize(("flavour", "path"), dashboards(), ids=lambda v: getattr(v, "name", v))
def test_every_query_names_only_what_the_station_writes(
    flavour: str, path: Path, schema: Schema
) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    problems: list[str] = []
    found = 0
    for where, uid, target in queries(dashboard):
        if uid != FLAVOURS[flavour]:
            problems.append(f"{where}: data source {uid!r} in a {flavour} dashboard")
            continue
        query = target["query"]
        found += 1
        problems += [f"{where}: {p}" for p in CHECKS[uid](query, schema)]
        used = set(re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", query))
        for name in {a or b for a, b in used} - defined - GRAFANA_VARIABLES:
            problems.append(f"{where}: variable ${name} is not defined")
        for tag in re.findall(r"\$tag_(\w+)", target.get("alias", "")):
            if not any(tag in m.tags for m in schema.values()):
                problems.append(f"{where}: alias names tag {tag!r}, never written")
    assert found >= 4
    assert problems == []


def test_the_station_s_schema_was_read_from_its_code(schema: Schema) -> None:
    """What the checks compare with: had the reading failed, every check would fail too, but a
    too-small schema must not pass silently either."""
    assert set(schema) == {"vitals", "alarms", "station_probe", "station_doctor"}
    assert {"heartrate", "oxygen", "systolic", "diastolic", "temperature"} <= schema[
        "vitals"
    ].fields
    assert {"latitude", "longitude", "battery"} <= schema["vitals"].fields
    assert schema["vitals"].tags == {"station", "device", "bed"}
    assert schema["alarms"].fields == {"value", "limit"}
    assert schema["station_doctor"].tags == {"station"}
    assert schema["station_probe"].tags == set()


@pytest.mark.parametrize(
    ("check", "query", "said"),
    [
        (
            check_flux,
            'from(bucket: "b") |> filter(fn: (r) => r._measurement == "vital")',
            "measurement 'vital'",
        ),
        (
            check_flux,
            'from(bucket: "b") |> filter(fn: (r) => r._field == "pulse")',
            "names no measurement",
        ),
        (
            check_flux,
            'filter(fn: (r) => r._measurement == "vitals" and r._field == "pulse")',
            "field 'pulse'",
        ),
        (
            check_flux,
            'filter(fn: (r) => r._measurement == "vitals" and r.room == "3")',
            "column 'room'",
        ),
        (
            check_flux,
            'filter(fn: (r) => r._measurement == "alarms" and r.state == "open")',
            "state 'open'",
        ),
        (
            check_flux,
            'filter(fn: (r) => r._measurement == "alarms") |> group(columns: ["kind"])',
            "column 'kind'",
        ),
        (
            check_flux,
            'filter(fn: (r) => r._measurement == "vitals" and r._field =~ /h/)',
            "other than by ==",
        ),
        (
            check_flux,
            'schema.tagValues(tag: "ward", predicate: (r) => r._measurement == "vitals")',
            "tag 'ward'",
        ),
        (check_influxql, 'SELECT mean("hr") FROM "vitals"', "'hr' is neither"),
        (check_influxql, 'SELECT mean("heartrate") FROM "vital"', "measurement 'vital'"),
        (check_influxql, 'SELECT mean(heartrate) FROM "vitals"', "bare word 'heartrate'"),
        (
            check_influxql,
            'SELECT count("value") FROM "alarms" WHERE "priority" = \'urgent\'',
            "priority 'urgent'",
        ),
        (check_influxql, 'SELECT "value" FROM "alarms" GROUP BY "kind"', "'kind' is neither"),
        (check_influxql, 'SHOW TAG VALUES WITH KEY = "bed"', "names no measurement"),
        (
            check_influxql,
            'SELECT count("value") FROM "alarms" WHERE "parameter" =~ /^(heartrate|pulse)$/',
            "parameter list",
        ),
    ],
)
def test_the_checks_refuse_a_name_the_station_does_not_write(
    check: Any, query: str, said: str, schema: Schema
) -> None:
    assert any(said in p for p in check(query, schema)), check(query, schema)


def test_the_provisioning_parses_and_holds_no_secret() -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/station-historian.yaml").read_text("utf-8")
    )
    by_uid = {s["uid"]: s for s in sources["datasources"]}
    assert set(by_uid) == set(CHECKS)
    assert all(s["type"] == "influxdb" for s in by_uid.values())
    assert by_uid["station-flux"]["jsonData"]["version"] == "Flux"
    assert by_uid["station-influxql"]["jsonData"]["version"] == "InfluxQL"
    for source in by_uid.values():
        for value in source.get("secureJsonData", {}).values():
            assert re.fullmatch(r"(Token )?\$\{STATION_INFLUX_READ_TOKEN\}", value), value
    providers = yaml.safe_load(
        (GRAFANA / "provisioning/dashboards/station.yaml").read_text("utf-8")
    )
    paths = {p["name"]: p["options"]["path"] for p in providers["providers"]}
    assert {Path(path).name for path in paths.values()} == set(FLAVOURS)
