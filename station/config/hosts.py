"""Which hosts are this machine: the one rule every section's "plain text only to loopback"
check applies (``[mqtt]``, ``[influx]``, ``[hl7]``).

Why a module of its own: :mod:`station.config.settings` holds the sections that import it, and
the sections kept in modules of their own (``hl7_settings``) are imported by it, so the rule
lives below both.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (plain text is acceptable only there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
