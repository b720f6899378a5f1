"""The topics the station publishes and listens to besides the vitals (CONTRACT §2).

Why a module of its own: a topic is part of the contract with the devices, the other stations of
the ward and the broker's ACL, so each is spelt once, here, and read by name elsewhere.
"""

from __future__ import annotations


def status_topic(station_id: str) -> str:
    """Retained station status (CONTRACT §2)."""
    return f"healthcare/station/{station_id}/status"


def alarms_topic(station_id: str) -> str:
    """Alarm events (CONTRACT §2)."""
    return f"healthcare/station/{station_id}/alarms"


def audit_topic(station_id: str) -> str:
    """The audit trail's latest signed checkpoint, retained (CONTRACT §2, extended)."""
    return f"healthcare/station/{station_id}/audit"


def ward_topic(station_id: str) -> str:
    """Ward events: a bed's limits changed here, for the ward's other stations (QoS 1, not
    retained; docs/two-stations.md). Apart from the alarms topic, whose readers (pagers,
    nurse-call bridges) expect alarm state changes only."""
    return f"healthcare/station/{station_id}/ward"


PEER_ALARMS = "healthcare/station/+/alarms"
"""Every station's alarm events: how a station hears the others of its ward."""

PEER_WARD = "healthcare/station/+/ward"
"""Every station's ward events (limit changes)."""


def peer_station(topic: str) -> str | None:
    """The station id an alarm event of ``PEER_ALARMS`` came from; None for another topic."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["healthcare", "station"] and parts[3] == "alarms":
        return parts[2]
    return None


def peer_ward_station(topic: str) -> str | None:
    """The station id a ward event of ``PEER_WARD`` came from; None for another topic."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["healthcare", "station"] and parts[3] == "ward":
        return parts[2]
    return None
