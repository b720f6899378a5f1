"""Secrets for the broker and the historian: the environment for unattended services, else the
OS keyring. Never a file, never a log line.

First cut: the security issue adds the backend allowlist, the settings dialog that stores secrets
and the memory backend for tests.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

SERVICE = "station"
ENV = {"mqtt": "STATION_MQTT_PASSWORD", "influx": "STATION_INFLUX_TOKEN"}


def secret(kind: str, account: str) -> str | None:
    """The secret of ``kind`` (``mqtt`` or ``influx``) for ``account``, or None if there is none.

    The environment wins (a service unit sets it); the keyring is asked otherwise. A keyring
    without a usable backend is reported once and treated as empty.
    """
    from_env = os.environ.get(ENV[kind])
    if from_env:
        return from_env
    try:
        import keyring  # noqa: PLC0415 - import only when needed: backends probe D-Bus on import
        from keyring.errors import KeyringError  # noqa: PLC0415
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    try:
        value: str | None = keyring.get_password(SERVICE, f"{kind}:{account}")
    except KeyringError as exc:
        log.warning("no usable keyring for the %s secret: %s", kind, exc)
        return None
    return value
