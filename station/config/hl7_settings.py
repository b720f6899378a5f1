"""The ``[hl7]`` section: observations and alarms sent to the hospital's HL7 v2 interface engine.

Why a module of its own: the schema in :mod:`station.config.settings` is near its size limit;
:class:`~station.config.settings.Settings` holds this section as ``hl7``. Off by default.

The transport follows the broker's and the historian's rule: a plain (non-TLS) connection to a
host that is not this machine is refused unless an admin opts out with ``allow_plain_remote``,
since every message may carry a patient's values and, with export consent, identity. It is
judged only when the section is on, so an upgraded config that keeps a remote host switched off
still starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from station.config.hosts import is_loopback

HL7_NAME = re.compile(r"^[^|^~\\&\x00-\x1f\x7f]*$")
"""An HL7 name field (HD-1, an IS of at most 20 characters): none of the message's delimiters
(``| ^ ~ \\ &``) nor control characters, which would change the message's structure."""

_Name = Annotated[str, Field(max_length=20, pattern=HL7_NAME.pattern)]


class Hl7Section(BaseModel):
    """[hl7]: the outbound HL7 v2 interface (IHE PCD-01 ORU^R01, PCD-04 ORU^R40 over MLLP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[
        bool, Field(description="Send observations and alarms to the HL7 interface engine")
    ] = False
    host: Annotated[
        str, Field(min_length=1, description="Interface engine host name or address")
    ] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, description="Interface engine MLLP port")] = 2575
    tls: Annotated[bool, Field(description="MLLP over TLS; required for a non-loopback host")] = (
        False
    )
    ca_file: Annotated[
        str, Field(description="CA bundle that signed the engine's certificate; empty: system")
    ] = ""
    allow_plain_remote: Annotated[
        bool, Field(description="Admin override: plain MLLP to a non-loopback host")
    ] = False
    sending_application: Annotated[
        _Name, Field(description="MSH-3: this station as the engine knows it")
    ] = "CENTRAL-STATION"
    sending_facility: Annotated[
        _Name, Field(description="MSH-4 and PV1-3's point of care; empty: the station id")
    ] = ""
    receiving_application: Annotated[_Name, Field(description="MSH-5 (empty: not sent)")] = ""
    receiving_facility: Annotated[_Name, Field(description="MSH-6 (empty: not sent)")] = ""
    mrn_authority: Annotated[
        _Name, Field(description="PID-3's assigning authority of the MRN (empty: not sent)")
    ] = ""
    observations: Annotated[
        Literal["summary", "each", "off"],
        Field(description="ORU^R01: a summary per bed and period, each sample, or none"),
    ] = "summary"
    summary_period_s: Annotated[
        int, Field(ge=10, le=3600, description="Seconds one observation summary covers")
    ] = 60
    ack_timeout_s: Annotated[
        float, Field(ge=0.5, le=120, description="Wait this long for the engine's ACK")
    ] = 10.0
    retry_max_s: Annotated[
        float, Field(ge=1, le=600, description="Longest wait between two tries (back-off cap)")
    ] = 60.0
    down_alarm_s: Annotated[
        float, Field(ge=1, le=3600, description="Down or refusing this long: technical alarm")
    ] = 60.0
    outbox_budget: Annotated[
        int, Field(ge=100, le=1_000_000, description="Messages the disk queue holds at most")
    ] = 50_000

    @model_validator(mode="after")
    def _safe(self) -> Hl7Section:
        if not self.enabled:
            return self
        if not self.tls and not is_loopback(self.host) and not self.allow_plain_remote:
            raise ValueError(
                f"tls: plain MLLP to non-loopback host {self.host!r} is refused (patients' "
                "values would cross the network in clear text); set tls = true (or "
                "allow_plain_remote = true if an admin accepts the risk)"
            )
        if self.ca_file and not Path(self.ca_file).expanduser().is_file():
            raise ValueError(f"ca_file: file not found: {self.ca_file}")
        return self
