"""What the ward screen's status bar says: the broker, the historian and the ingest counters, each
in words with a coloured dot (colour is never the only cue).

Kept apart from :mod:`station.ui.main_window` because it is wording, not widgets: pure functions
of the values the core and the historian report, which the window sets as rich text.
"""

from __future__ import annotations

import html
from dataclasses import replace

from station.config.settings import MqttSection
from station.domain.status import ConnectionState, IngestStats
from station.services.ingest.historian import HistorianStatus
from station.ui import theme


def pill(text: str, colour: str) -> str:
    """``text`` after a dot of ``colour`` (rich text)."""
    return f"<span style='color:{colour}; font-size:15px'>●</span> {text}"


def duration(seconds: float) -> str:
    """A backlog age as staff read it: 42 s, 7 min, 3.5 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


BROKER_CONNECTING = pill("Broker: connecting…", theme.WARN)
"""The broker's pill before the first report."""


def broker_text(state: ConnectionState, mqtt: MqttSection) -> str:
    """The broker's state with its reason, never just a colour."""
    where = f"{mqtt.host}:{mqtt.port}{' TLS' if mqtt.tls else ''}"
    if state.connected:
        return pill(f"Broker {where}: {state.detail}", theme.OK)
    return pill(f"Broker {where}: {state.detail.upper()}", theme.BAD)


def plain_mqtt_warning(mqtt: MqttSection) -> str:
    """Said for as long as an admin allows plain MQTT to another machine."""
    return pill(f"UNENCRYPTED MQTT to {mqtt.host} (allowed by admin)", theme.BAD)


def historian_text(status: HistorianStatus | None) -> str:
    """The historian off, writing (with its queue), or failing (with what it keeps)."""
    if status is None:
        return pill("Historian: off", theme.MUTED)
    if status.notice:  # plain HTTP to another host, allowed by an admin: said while it lasts
        notice = pill(html.escape(status.notice), theme.BAD)
        return f"{notice} · {historian_text(replace(status, notice=None))}"
    if status.ok:
        rejected = f", {status.rejected} REJECTED" if status.rejected else ""
        return pill(
            f"Historian: writing ({status.written} points, {status.backlog} queued{rejected})",
            theme.WARN if status.rejected else theme.OK,
        )
    oldest = "" if status.oldest_s is None else f", oldest {duration(status.oldest_s)}"
    return pill(
        f"Historian: FAILING, {status.backlog} kept{oldest} — {html.escape(status.error or '')}",
        theme.BAD,
    )


def ingest_text(stats: IngestStats) -> str:
    """The core's counters: accepted and rejected, and every loss or oddity only when it
    happened."""
    text = f"{stats.accepted} accepted · {stats.rejected} rejected"
    if stats.late:
        text += f" · {stats.late} late"
    if stats.duplicates:
        text += f" · {stats.duplicates} duplicates ignored"
    if stats.missing:
        text += f" · {stats.missing} LOST before arrival (seq gaps)"
    if stats.unspooled:
        text += f" · {stats.unspooled} NOT SAVED TO DISK"
    if stats.unassigned:
        text += f" · {len(stats.unassigned)} devices without a bed (Manage ▾ Devices)"
    return text
