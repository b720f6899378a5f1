"""What the checks of one ``station doctor`` run share: the settings and the secrets read.

Secrets are looked up once, through :mod:`station.config.credentials` as the station reads them
(the environment first, then a *secure* keyring), and every value read is handed to the run's
:class:`~station.cli.doctor.report.Scrubber`, so none can reach the report. Looking never
creates or stores anything: the doctor changes nothing.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from station.cli.doctor.report import Scrubber
from station.config import credentials
from station.config.settings import Settings

LIVE_PASSWORD_ENV = "STATION_MQTT_LIVE_PASSWORD"
"""The live session user's own password (``station.app`` reads it; not imported from there, as
that module brings Qt in)."""


@dataclass(frozen=True, slots=True)
class Need:
    """A secret this configuration needs.

    Attributes:
        kind: the :data:`~station.config.credentials.ENV` kind (``mqtt``, ``influx``, ...).
        account: the keyring account (the user, the organisation, the station id).
        label: its name in the report, e.g. ``MQTT password of 'station'``.
        envs: the environment variables it is read from, in order.
        made_at_start: the station makes it on first use (the patient and audit keys) when a
            secure keyring can keep it.
    """

    kind: str
    account: str
    label: str
    envs: tuple[str, ...]
    made_at_start: bool = False


@dataclass(frozen=True, slots=True)
class Found:
    """Where a secret was found: ``source`` (an environment variable's name or the keyring's),
    or None with ``problem`` saying why not; ``not_stored`` when a secure keyring answered that
    it has none (as opposed to no keyring, or one that failed). The value is kept out of
    ``repr``."""

    need: Need
    source: str | None
    problem: str | None = None
    not_stored: bool = False
    value: str | None = field(default=None, repr=False)


def needs(settings: Settings) -> list[Need]:
    """The secrets ``settings`` needs, in the order the report names them."""
    m, station = settings.mqtt, settings.station.id
    mqtt_env = credentials.ENV["mqtt"]
    out: list[Need] = []
    if m.username:
        out.append(Need("mqtt", m.username, f"MQTT password of {m.username!r}", (mqtt_env,)))
    if m.live_username and m.live_username != m.username:
        label = f"MQTT password of the live user {m.live_username!r}"
        out.append(Need("mqtt", m.live_username, label, (LIVE_PASSWORD_ENV, mqtt_env)))
    if settings.influx.enabled:
        org = settings.influx.org
        out.append(Need("influx", org, f"InfluxDB token of {org!r}", (credentials.ENV["influx"],)))
    for kind in ("patients", "audit"):
        env = credentials.ENV[kind]
        out.append(Need(kind, station, credentials.LABELS[kind], (env,), made_at_start=True))
    return out


class Vault:
    """Secret lookups of one run, cached (each check may ask), values remembered for scrubbing."""

    def __init__(self, scrub: Scrubber) -> None:
        self._scrub = scrub
        self._lock = threading.Lock()
        self._found: dict[tuple[str, str, tuple[str, ...]], Found] = {}

    def find(self, need: Need) -> Found:
        """Where ``need`` comes from, as the station would read it; never creates it."""
        key = (need.kind, need.account, need.envs)
        with self._lock:
            if key in self._found:
                return self._found[key]
        found = _look(need)
        self._scrub.remember(found.value)
        with self._lock:
            self._found[key] = found
        return found


def _look(need: Need) -> Found:
    for env in need.envs:
        value = os.environ.get(env)
        if value:
            return Found(need, env, value=value)
    status = credentials.backend_status()
    if not status.ok:  # asked only when there is one: credentials would log the absence
        return Found(need, None, problem=f"no secure keyring, only the {status.name}")
    try:
        value = credentials.secret(need.kind, need.account, strict=True)
    except credentials.SecretStoreError as exc:
        return Found(need, None, problem=str(exc))
    if not value:
        return Found(need, None, problem=f"not in the {status.name}", not_stored=True)
    return Found(need, f"the {status.name}", value=value)


@dataclass
class Context:
    """One run's shared state. ``settings`` is None when the config did not load; the checks
    that need it are then not run (the runner says so)."""

    config_path: Path | None
    scrub: Scrubber
    settings: Settings | None = None
    vault: Vault = field(init=False)

    def __post_init__(self) -> None:
        self.vault = Vault(self.scrub)

    @property
    def s(self) -> Settings:
        """The settings, for a check that runs only when they loaded."""
        if self.settings is None:
            raise RuntimeError("this check needs the settings, which did not load")
        return self.settings

    def needs(self) -> list[Need]:
        """The secrets the settings need."""
        return needs(self.s)
