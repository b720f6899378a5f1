"""The hospital's interfaces, built and wired: HL7 out, ADT in (``docs/hospital-interfaces.md``).

Why a layer of its own, between the composition root and the UI: each interface needs parts the
app builds (the audit writer, the core's technical alarms, the ward admin's admission path, the
alarm and trend stores) and none of the screen, and :mod:`station.app` is at its size limit. The
app builds one :class:`HospitalLinks`, starts it after the core and stops it before the core.

Each interface is a :class:`Link`: built by its own module's ``build`` from :class:`LinkParts`
(None when its section is off), started once, stopped with a timeout, and asked for a short
status line for the status bar (None: nothing to show). One may also have ``request_stop()``
(tell its threads to stop, without waiting), so that every interface is told before any is
waited for; it is looked up, not part of :class:`Link`, so an interface without it still is one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from station.links.parts import Link, LinkParts, StationConditions

__all__ = ["Build", "HospitalLinks", "Link", "LinkParts", "StationConditions"]


Build = Callable[[LinkParts], Link | None]


class HospitalLinks:
    """The interfaces the configuration switches on, started and stopped together."""

    def __init__(self, parts: LinkParts, builders: tuple[Build, ...] | None = None) -> None:
        if builders is None:
            builders = _builders()
        self.links: list[Link] = [
            link for link in (build(parts) for build in builders) if link is not None
        ]

    def start(self) -> None:
        """Start each interface (after the core thread runs)."""
        for link in self.links:
            link.start()

    def stop(self, timeout: float) -> bool:
        """Stop every interface within ``timeout`` in all; False when one did not stop in time.

        Each is told first (its ``request_stop()``, for those that have one), then waited for
        within what is left of ``timeout``: they stop side by side, and one slow to end does not
        leave the next running, untold, until its own turn. Those without ``request_stop`` are
        stopped first, while the others wind down, since only their ``stop`` tells them."""
        deadline = time.monotonic() + timeout
        told: list[Link] = []
        untold: list[Link] = []
        for link in self.links:
            request_stop = getattr(link, "request_stop", None)
            if callable(request_stop):
                request_stop()
                told.append(link)
            else:
                untold.append(link)
        ok = True
        for link in untold + told:  # every one, even after one did not stop in time
            ok &= link.stop(max(0.0, deadline - time.monotonic()))
        return ok

    def status(self) -> str:
        """The status bar's words for every interface that has something to say."""
        return " · ".join(s for s in (link.status() for link in self.links) if s)


def _builders() -> tuple[Build, ...]:
    """Every interface's ``build``, in start order (imported here: each pulls in its library
    only when the station runs)."""
    from station.links.adt_in import build as adt_in  # noqa: PLC0415
    from station.links.hl7_out import build as hl7_out  # noqa: PLC0415

    return (adt_in, hl7_out)
