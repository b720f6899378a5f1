"""The station's one typed configuration schema (CONTRACT §4).

Every key has a default, a range and a description, so the example TOML can be checked against
it and a bad file stops the start with a message that names the key. Secrets are never keys:
they come from the keyring or the environment (see CONTRACT §4).
"""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from station.config.adt_settings import AdtSection
from station.config.hl7_settings import Hl7Section
from station.config.hosts import is_loopback
from station.config.peer_settings import PeersSection
from station.config.renamed_keys import upgrade_mapping
from station.domain.alarms import AlarmLimits, Priority
from station.domain.messages import DEVICE_ID_PATTERN

log = logging.getLogger(__name__)

_SECTION = ConfigDict(extra="forbid", frozen=True)

DEFAULT_TOPICS = ("healthcare/sensor_data", "healthcare/devices/+/vitals")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key and says why."""


class StationSection(BaseModel):
    """[station]: who this station is and where it keeps its data."""

    model_config = _SECTION

    id: Annotated[
        str, Field(pattern=DEVICE_ID_PATTERN, description="Station id in MQTT topics")
    ] = "ward-1"
    name: Annotated[str, Field(min_length=1, max_length=80, description="Shown in the title")] = (
        "Ward 1"
    )
    data_dir: Annotated[
        str, Field(description="Folder for the audit trail and local data; ~ is expanded")
    ] = "~/.local/share/station"

    @property
    def data_path(self) -> Path:
        """The data folder with ~ expanded."""
        return Path(self.data_dir).expanduser()


class MqttSection(BaseModel):
    """[mqtt]: the broker the devices publish to."""

    model_config = _SECTION

    host: Annotated[str, Field(min_length=1, description="Broker host name or address")] = (
        "127.0.0.1"
    )
    port: Annotated[int, Field(ge=1, le=65535, description="Broker port (8883 for TLS)")] = 1883
    tls: Annotated[bool, Field(description="Use TLS; required for a non-loopback broker")] = False
    ca_file: Annotated[str, Field(description="CA bundle; empty: the system store")] = ""
    client_cert: Annotated[str, Field(description="Client certificate for mTLS (optional)")] = ""
    client_key: Annotated[str, Field(description="Client key for mTLS (optional)")] = ""
    username: Annotated[str, Field(description="Broker user; the password is a secret")] = ""
    client_id: Annotated[
        str, Field(description="Fixed client id for the persistent session; empty: station-<id>")
    ] = ""
    topics: Annotated[
        tuple[str, ...], Field(min_length=1, description="Topic filters of device vitals")
    ] = DEFAULT_TOPICS
    # 10 s: a broker that hangs with its TCP connection open is noticed after 1.5 x keepalive
    # (15 s; with 30 s it took 45-60 s, all that time the ward showing "connected").
    keepalive_s: Annotated[
        int, Field(ge=5, le=120, description="MQTT keepalive, seconds (a hung broker: 1.5x)")
    ] = 10
    protocol: Annotated[
        Literal["5", "3.1.1"], Field(description="MQTT version; 3.1.1 for brokers without 5")
    ] = "5"
    session_expiry_s: Annotated[
        int,
        # At least an hour: a restart, an upgrade or a reboot of the station must not make the
        # broker drop its queue (with 60 s, a slow reboot lost every message sent meanwhile).
        Field(ge=3600, le=7 * 86400, description="Broker keeps the session this long when away"),
    ] = 86400
    allow_plain_remote: Annotated[
        bool, Field(description="Admin override: plain MQTT to a non-loopback host")
    ] = False
    live_username: Annotated[
        str,
        Field(
            description="Broker user of the live subscription (display and alarms; client id "
            "<client id>-live); empty: the same user. A broker with use_username_as_clientid "
            "needs a user of its own here (its password: keyring, or STATION_MQTT_PASSWORD)"
        ),
    ] = ""

    @model_validator(mode="after")
    def _safe(self) -> MqttSection:
        if not self.tls and not is_loopback(self.host) and not self.allow_plain_remote:
            raise ValueError(
                f"tls: plain MQTT to non-loopback host {self.host!r} is refused; "
                "set tls = true (or allow_plain_remote = true if an admin accepts the risk)"
            )
        for key in ("ca_file", "client_cert", "client_key"):
            value = getattr(self, key)
            if value and not Path(value).expanduser().is_file():
                raise ValueError(f"{key}: file not found: {value}")
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("client_cert: client_cert and client_key go together")
        return self


def plain_remote_host(url: str) -> str | None:
    """The host of a plain ``http://`` URL that is not this machine, else None.

    The historian's token and every patient's vitals cross the network in clear text to such a
    host, so the schema refuses it unless an admin opts out (``[influx] allow_plain_remote``),
    and the status bar names it for as long as it is in force; the rule is the broker's
    (:func:`is_loopback`). A URL without a host counts as remote: nothing vouches for it.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "http":
        return None
    try:
        host = parts.hostname or ""
    except ValueError:  # an unbalanced "[" in the netloc
        host = ""
    return None if is_loopback(host) else host or parts.netloc or url


class InfluxSection(BaseModel):
    """[influx]: the historian (InfluxDB v2 write API)."""

    model_config = _SECTION

    enabled: Annotated[bool, Field(description="Write vitals and alarms to the historian")] = False
    url: Annotated[str, Field(pattern=r"^https?://", description="Historian base URL")] = (
        "http://127.0.0.1:8086"
    )
    org: Annotated[str, Field(description="InfluxDB organisation")] = "ward"
    bucket: Annotated[str, Field(min_length=1, description="InfluxDB bucket")] = "vitals"
    batch_size: Annotated[int, Field(ge=1, le=50_000, description="Points per write")] = 1000
    flush_interval_s: Annotated[
        float, Field(gt=0, le=60, description="Longest a point waits before a write")
    ] = 1.0
    ca_file: Annotated[
        str,
        Field(
            description="CA bundle that signed an https historian's certificate; empty: "
            "the system store"
        ),
    ] = ""
    allow_plain_remote: Annotated[
        bool, Field(description="Admin override: plain http:// to a non-loopback historian")
    ] = False

    @model_validator(mode="after")
    def _safe(self) -> InfluxSection:
        # Only when enabled: a disabled historian sends nothing, and an older config that keeps
        # a remote http:// URL switched off must still start after an upgrade. Switching it on
        # (the settings dialog validates the whole file) is when the URL is judged.
        host = plain_remote_host(self.url) if self.enabled else None
        if host is not None and not self.allow_plain_remote:
            raise ValueError(
                f"url: plain HTTP to non-loopback historian {host!r} is refused (the token and "
                "the vitals would cross the network in clear text); use https:// (or "
                "allow_plain_remote = true if an admin accepts the risk)"
            )
        if self.ca_file and not Path(self.ca_file).expanduser().is_file():
            raise ValueError(f"ca_file: file not found: {self.ca_file}")
        return self


class SpoolSection(BaseModel):
    """[spool]: the local store every accepted message is in before it is acknowledged."""

    model_config = _SECTION

    budget_mb: Annotated[
        float, Field(gt=0, le=1_000_000, description="Disk budget of the spool in MiB")
    ] = 2048.0
    keep_written_s: Annotated[
        float,
        Field(ge=0, le=30 * 86400, description="How long points the historian took are kept"),
    ] = 3600.0
    commit_interval_ms: Annotated[
        int, Field(ge=1, le=1000, description="Group commit: longest a message waits for disk")
    ] = 20

    @property
    def budget_bytes(self) -> int:
        """The budget in bytes."""
        return int(self.budget_mb * 1024 * 1024)


class SecuritySection(BaseModel):
    """[security]: the station's lock and the login back-off."""

    model_config = _SECTION

    lock_after_s: Annotated[
        float,
        Field(ge=10, le=86400, description="Lock after this long without keyboard or mouse"),
    ] = 300.0
    max_failed_logins: Annotated[
        int, Field(ge=3, le=20, description="Failed logins in a row that lock an account")
    ] = 5
    lockout_s: Annotated[
        float, Field(ge=60, le=86400, description="First lockout; then 1 h, then an admin unlocks")
    ] = 900.0


class AlarmsSection(BaseModel):
    """[alarms]: default limits and technical alarm timing."""

    model_config = _SECTION

    no_data_s: Annotated[
        float, Field(ge=2, le=600, description="Silence after which a device shows 'no data'")
    ] = 10.0
    live_window_s: Annotated[
        float, Field(ge=5, le=3600, description="Older data is stored, never alarmed live")
    ] = 60.0
    escalate_after_s: Annotated[
        float, Field(ge=10, le=600, description="High alarm unacknowledged this long escalates")
    ] = 60.0
    audio_pause_s: Annotated[
        float, Field(ge=30, le=600, description="Length of the ward's audio pause")
    ] = 120.0
    reminder_s: Annotated[
        float, Field(ge=30, le=1800, description="Re-sound an acknowledged alarm still present")
    ] = 180.0
    capture_s: Annotated[
        float,
        Field(ge=30, le=1800, description="Event capture: full-resolution vitals kept ± this"),
    ] = 300.0
    battery_low_pct: Annotated[
        float, Field(ge=0, le=100, description="Device battery below this raises a low alarm")
    ] = 20.0
    # Delays (device time) and hysteresis keep a value sitting on a limit from chattering;
    # SpO2 waits 10 s because motion artefacts drop it briefly all the time.
    heartrate: AlarmLimits = AlarmLimits(low=50, high=120, priority=Priority.HIGH, hysteresis=2)
    oxygen: AlarmLimits = AlarmLimits(
        low=90, high=100, priority=Priority.HIGH, delay_s=10, hysteresis=1
    )
    systolic: AlarmLimits = AlarmLimits(low=90, high=160, priority=Priority.MEDIUM, hysteresis=3)
    diastolic: AlarmLimits = AlarmLimits(low=50, high=100, priority=Priority.MEDIUM, hysteresis=3)
    temperature: AlarmLimits = AlarmLimits(
        low=35.5, high=38.5, priority=Priority.LOW, hysteresis=0.2
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_limit_defaults(cls, data: object) -> object:
        # A section that sets only `high` must keep the default `low` and priority: silently
        # dropping the low heart-rate alarm because a nurse raised the high limit is dangerous.
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for parameter in AlarmLimits.PARAMETERS:
            given = data.get(parameter)
            if isinstance(given, dict):
                default = cls.model_fields[parameter].default
                merged[parameter] = default.model_dump(mode="json") | given
        return merged

    def limits(self) -> dict[str, AlarmLimits]:
        """Limits keyed by parameter name, as the alarm engine wants them."""
        return {p: getattr(self, p) for p in AlarmLimits.PARAMETERS}


class WardSection(BaseModel):
    """[ward]: beds shown and which device feeds which bed."""

    model_config = _SECTION

    beds: Annotated[int, Field(ge=1, le=256, description="Number of bed tiles")] = 8
    bed_prefix: Annotated[str, Field(max_length=20, description="Label before bed number")] = "Bed "
    devices: Annotated[
        dict[str, int],
        Field(description="device_id → bed number, trusted without onboarding (no signature)"),
    ] = {}

    @field_validator("devices")
    @classmethod
    def _beds_exist_once(cls, devices: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        beds = info.data.get("beds", 0)
        owner: dict[int, str] = {}
        for device, number in devices.items():
            if not 1 <= number <= beds:
                raise ValueError(f"{device}: bed {number} is not in 1…{beds}")
            if number in owner:
                raise ValueError(f"{device}: bed {number} is already fed by {owner[number]}")
            owner[number] = device
        return devices


class DevicesSection(BaseModel):
    """[devices]: which devices may feed a bed, and whom the station trusts to vouch for them."""

    model_config = _SECTION

    admission: Annotated[
        Literal["onboarded", "open"],
        Field(
            description="onboarded: only onboarded (or [ward] pinned) devices reach a bed; "
            "open: any valid device takes the next free bed (demo and trial wards)"
        ),
    ] = "onboarded"
    live_budget_hz: Annotated[
        int,
        Field(
            ge=1,
            le=1000,
            description="Messages a second each device may put on the live view and alarms; "
            "past it the device is 'flooding': the rest of that second is kept for the record "
            "only (a newer message replaces one still waiting to be shown)",
        ),
    ] = 20
    trust_dir: Annotated[
        str,
        Field(
            description="Folder of trusted voucher keys (manufacturers/*.pem, owners/*.pem); "
            "empty: <data_dir>/trust"
        ),
    ] = ""


class PatientsSection(BaseModel):
    """[patients]: consent wording and how long a discharged patient's record is kept."""

    model_config = _SECTION

    consent_policy: Annotated[
        str,
        Field(min_length=1, max_length=40, description="Version of the consent policy in force"),
    ] = "1"
    keep_discharged_days: Annotated[
        int,
        Field(ge=1, le=3650, description="Days a discharged patient's identity is kept"),
    ] = 30


class UiSection(BaseModel):
    """[ui]: the screen."""

    model_config = _SECTION

    columns: Annotated[int, Field(ge=1, le=16, description="Tiles per row")] = 4
    render_hz: Annotated[float, Field(ge=1, le=60, description="Repaint rate of curves")] = 10.0
    plot_window_s: Annotated[
        int, Field(ge=10, le=3600, description="Seconds of curve in a tile")
    ] = 120
    font_scale: Annotated[
        float, Field(ge=0.8, le=2.0, description="Type size on the ward screen (1.0 = designed)")
    ] = 1.0
    wall: Annotated[
        bool, Field(description="Wall mode at start: larger type, read from across the room")
    ] = False
    palette: Annotated[
        Literal["standard", "colour-blind"],
        Field(description="Parameter colours; colour-blind: Okabe-Ito, safe for all common CVD"),
    ] = "standard"


class Settings(BaseModel):
    """The whole configuration file."""

    model_config = _SECTION

    station: StationSection = StationSection()
    mqtt: MqttSection = MqttSection()
    influx: InfluxSection = InfluxSection()
    spool: SpoolSection = SpoolSection()
    security: SecuritySection = SecuritySection()
    alarms: AlarmsSection = AlarmsSection()
    ward: WardSection = WardSection()
    devices: DevicesSection = DevicesSection()
    patients: PatientsSection = PatientsSection()
    ui: UiSection = UiSection()
    peers: PeersSection = PeersSection()
    hl7: Hl7Section = Hl7Section()
    adt: AdtSection = AdtSection()

    @property
    def client_id(self) -> str:
        """The fixed MQTT client id: a restart resumes the same broker session."""
        return self.mqtt.client_id or f"station-{self.station.id}"

    @property
    def live_client_id(self) -> str:
        """The live subscription's client id: never the persistent session's."""
        return f"{self.client_id}-live"


def user_config_path() -> Path:
    """Where the station looks when no --config is given."""
    return Path("~/.config/station/station.toml").expanduser()


def load(path: Path | None) -> Settings:
    """Read and validate a config file; ``None`` means the user file if present, else defaults.

    Raises:
        ConfigError: with one line naming the key and the problem.
    """
    if path is None:
        candidate = user_config_path()
        if not candidate.is_file():
            return Settings()
        path = candidate
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from exc
    return from_mapping(data, source=str(path))


def from_mapping(data: dict[str, object], source: str = "config") -> Settings:
    """Validate a parsed mapping; the error names the first bad key.

    Validated strictly in JSON mode: ``port = "1883"`` or ``tls = "yes"`` is a wrong type, not
    a guess (an accidental ``allow_plain_remote = 1`` must not switch a security override on),
    while TOML's strings still become enums and its arrays tuples.
    """
    data, notes = upgrade_mapping(data)
    for note in notes:
        log.warning("%s: %s", source, note)
    try:
        # default=str: a TOML date or time becomes text, which a wrong-type check then names.
        return Settings.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(f"{source}: {key}: {msg}" if key else f"{source}: {msg}") from exc
