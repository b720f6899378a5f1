"""Safer MQTT defaults: a hung broker is noticed soon, and a reboot never outlasts the session."""

from __future__ import annotations

import pytest

from station.config.settings import ConfigError, from_mapping


def test_a_hung_broker_is_noticed_within_15_seconds_by_default() -> None:
    """paho declares the broker lost after 1.5 x keepalive without an answer."""
    assert from_mapping({}).mqtt.keepalive_s * 1.5 <= 15


@pytest.mark.parametrize("seconds", [60, 3599])
def test_a_session_expiry_under_an_hour_is_refused(seconds: int) -> None:
    """A reboot of the station that outlasts the session loses every message queued for it."""
    with pytest.raises(ConfigError, match=r"mqtt\.session_expiry_s"):
        from_mapping({"mqtt": {"session_expiry_s": seconds}})
    assert from_mapping({"mqtt": {"session_expiry_s": 3600}}).mqtt.session_expiry_s == 3600
