"""Telling "this point is bad" from "this server refuses every write" (hardening issue).

A 4xx other than 401/403/404/429/503 says the *content* is refused, so the historian bisects a
refused batch down to the points the server refuses and quarantines them. A server, or a proxy in
front of it, that answers 400 to everything looks exactly the same to each request: before this,
such a proxy had 1,000 of 1,000 good points quarantined in 1,999 requests, one audit record each.

What tells the two apart is a write the server takes whatever the batch holds. Within one batch's
bisection a half that is accepted proves it (:class:`Bisection`); where none has been, the
historian sends the *canary* (:func:`canary_line`), one harmless point of its own. Accepted: the
refusals were about content, bisect on and quarantine. Refused: the server refuses every write:
nothing is quarantined, every point is kept, and the historian backs off as in an outage.

Why a canary and not the last point the server accepted, re-sent: the canary needs no earlier
success (the first batch of a run can be probed too), and it never sends a vitals point twice, so
a count of the vitals the server received stays exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROBE_MEASUREMENT = "station_probe"
CANARY_PERIOD_MS = 3_600_000
"""The canary's timestamp is floored to this: every probe of the hour rewrites one point (a point
is keyed by measurement, tags and time), and it is never older than any retention allows (an
InfluxDB bucket keeps at least an hour)."""

_TAG = re.compile(r"<[^>]*>")

Refusal = tuple[int, str]
"""A content refusal: the HTTP status and the server's message."""


def canary_line(now_ms: int) -> str:
    """The probe's point: its own measurement (no dashboard or query of vitals sees it), an
    integer field, the hour's timestamp in milliseconds (the historian writes with ``ms``)."""
    return f"{PROBE_MEASUREMENT} probe=1i {now_ms - now_ms % CANARY_PERIOD_MS}"


def refusing_error(refusal: Refusal) -> str:
    """The status error while the server refuses every write: what it says, that nothing is
    lost, and where to look (a proxy or a wrong URL answers like this, never InfluxDB itself)."""
    status, message = refusal
    said = " ".join(_TAG.sub(" ", message).split())[:160]  # a proxy's HTML page, words only
    return (
        f"historian refuses every write (HTTP {status}{': ' + said if said else ''}): "
        "points kept; check a proxy or the URL"
    )


@dataclass(slots=True)
class Bisection:
    """What one batch's bisection has learnt so far.

    ``accepting``: the server took a write during it (a part of the batch, or the canary), so a
    refusal now is about the content refused: a single refused point is quarantined without
    another probe, and two halves refused alike are bisected on.
    """

    accepting: bool = False


def suspect(left: Refusal | None, right: Refusal | None, run: Bisection) -> bool:
    """Whether both halves of a refused part were refused alike (same status and message) with
    no write taken yet: a server judging content names what it refuses (InfluxDB: "unable to
    parse ... line 3", a different line in each half), one refusing everything says the same to
    both. Probe then, rather than bisect on towards every single point."""
    return left is not None and left == right and not run.accepting
