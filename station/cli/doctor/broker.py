"""The ``broker`` check: does the broker take the station's login, over the station's TLS?

The reasons are the status bar's (:mod:`station.services.ingest.mqtt_reasons`, through
:func:`~station.services.ingest.connection_check.probe_broker`): a wrong CA, a host name the
certificate does not name, a wrong password, a closed port each say what to fix.

While a station runs on this data folder the login is not tried, only the connection and the TLS
handshake: a broker with ``use_username_as_clientid`` (the hardened configuration this repository
ships) gives a login the user's client id whatever the client asks, so the doctor's login would
take the running station's session over and drop what the broker queued for it.
"""

from __future__ import annotations

from station.cli.doctor.context import Context, Found, Need
from station.cli.doctor.report import Finding, fail, ok, warn
from station.config.hosts import is_loopback
from station.services.ingest.connection_check import BrokerAnswer, probe_broker, probe_transport
from station.services.storage.instance_lock import holder

TIMEOUT_S = 5.0


def _users(ctx: Context) -> list[Found | None]:
    """The logins to try: the station's user (None: anonymous) and the live session's own."""
    m = ctx.s.mqtt
    mqtt_needs = {n.account: n for n in ctx.needs() if n.kind == "mqtt"}
    station: Found | None = ctx.vault.find(mqtt_needs[m.username]) if m.username else None
    logins: list[Found | None] = [station]
    live: Need | None = mqtt_needs.get(m.live_username) if m.live_username else None
    if live is not None and live.account != m.username:
        logins.append(ctx.vault.find(live))
    return logins


def _login(ctx: Context, found: Found | None) -> BrokerAnswer:
    s = ctx.s
    if found is None:
        return probe_broker(s, None, username="", timeout=TIMEOUT_S)
    answer = probe_broker(s, found.value, username=found.need.account, timeout=TIMEOUT_S)
    if answer.accepted or not answer.answered or found.source is None:
        return answer  # where the password came from matters only when the broker judged it
    who = found.need.account
    return BrokerAnswer(
        False, f"{answer.detail} (the password of {who!r} came from {found.source})"
    )


def check_broker(ctx: Context) -> Finding:
    """OK only when the broker took every login the station makes; else the status bar's
    reason. With a station running, the connection and TLS only (see the module docstring)."""
    s = ctx.s
    running = holder(s.station.data_path)
    if running is not None:
        return _transport_only(ctx, running)
    answers = [_login(ctx, found) for found in _users(ctx)]
    refused = [a.detail for a in answers if not a.accepted]
    if refused:
        return fail("; ".join(refused))
    said = "; ".join(a.detail for a in answers)
    m = s.mqtt
    if not m.tls and not is_loopback(m.host):
        return warn(
            f"{said}; but plain MQTT to {m.host} (allow_plain_remote): passwords and vital signs "
            "cross the network readable; set [mqtt] tls = true with the broker's TLS port"
        )
    return ok(said)


def _transport_only(ctx: Context, pid: int) -> Finding:
    answer = probe_transport(ctx.s, timeout=TIMEOUT_S)
    if not answer.accepted:
        return fail(answer.detail)
    who = f"a station (pid {pid})" if pid else "a station"
    return ok(
        f"{answer.detail}; login not tried: {who} is running on this data folder, and a broker "
        "with use_username_as_clientid would give the doctor its session (the station's status "
        "bar shows how the broker answers it; stop the station to test the login here)"
    )
