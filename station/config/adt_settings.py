"""The ``[adt]`` section: admissions, transfers and discharges taken from the hospital's ADT feed.

Why a module of its own: the schema in :mod:`station.config.settings` is near its size limit;
:class:`~station.config.settings.Settings` holds this section as ``adt``. Off by default. What the
station does with it: ``docs/adt-inbound.md``.

The feed carries names, MRNs and birth dates, so the listener is guarded like the broker link:
plain TCP only on a loopback address unless an admin opts out (``allow_plain_remote``), TLS with
the station's certificate otherwise, and only the peers listed in ``peers`` may connect. Checked
only when the section is on: a switched-off feed opens no port.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LOCATION_KEY = r"^[^^|~\\&]*(\^[^^|~\\&]*){0,2}$"
"""A ``[adt] beds`` key: ``point of care^room^bed`` (fewer components allowed, empty ones match
anything), never an HL7 delimiter inside a component."""


class AdtSection(BaseModel):
    """[adt]: the inbound HL7 v2 ADT listener (A01, A02, A03, A08, A11, A12, A13 over MLLP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, Field(description="Take admissions from the hospital's ADT feed")] = (
        False
    )
    bind: Annotated[
        str, Field(description="IP address the MLLP listener binds (127.0.0.1: this PC only)")
    ] = "127.0.0.1"
    port: Annotated[
        int, Field(ge=0, le=65535, description="TCP port of the MLLP listener (0: any free one)")
    ] = 2576
    tls: Annotated[bool, Field(description="MLLP over TLS (the engine connects with TLS)")] = False
    cert_file: Annotated[
        str, Field(description="The listener's certificate chain (PEM), with tls = true")
    ] = ""
    key_file: Annotated[str, Field(description="The listener's private key (PEM), with tls")] = ""
    client_ca_file: Annotated[
        str,
        Field(description="CA (PEM) that must have signed the engine's client certificate; "
              "empty: no client certificate asked for"),
    ] = ""  # fmt: skip
    allow_plain_remote: Annotated[
        bool, Field(description="Admin override: plain MLLP on a non-loopback address")
    ] = False
    peers: Annotated[
        tuple[str, ...],
        Field(description="Addresses or networks (CIDR) allowed to connect; others are refused"),
    ] = ("127.0.0.1", "::1")
    receiving_application: Annotated[
        str,
        Field(
            max_length=60,
            description="MSH-5 the feed must address (empty: any); also "
            "the ACK's MSH-3 when the message named none",
        ),
    ] = "CENTRAL-STATION"
    receiving_facility: Annotated[
        str, Field(max_length=60, description="MSH-6 the feed must address (empty: any)")
    ] = ""
    processing_id: Annotated[
        Literal["P", "T", "D"],
        Field(description="MSH-11 taken: P production, T training, D debugging"),
    ] = "P"
    name: Annotated[
        str,
        Field(max_length=60, pattern=r"^[A-Za-z0-9._-]*$",
              description="The feed's name in the audit trail (actor adt:<name>); empty: the "
              "sending facility (MSH-4)"),
    ] = ""  # fmt: skip
    point_of_care: Annotated[
        tuple[str, ...],
        Field(description="PV1-3 point-of-care codes of this ward; empty: every location is "
              "this ward's"),
    ] = ()  # fmt: skip
    beds: Annotated[
        dict[Annotated[str, Field(pattern=LOCATION_KEY)], Annotated[int, Field(ge=1, le=256)]],
        Field(description="PV1-3 'point of care^room^bed' → the station's bed number; empty: "
              "the bed component is the bed's number or label"),
    ] = {}  # fmt: skip
    max_connections: Annotated[
        int, Field(ge=1, le=16, description="Connections served at once; more are refused")
    ] = 4
    max_message_kb: Annotated[
        int, Field(ge=1, le=1024, description="Largest message taken, KiB; larger ones get AR")
    ] = 64
    idle_timeout_s: Annotated[
        float, Field(ge=5, le=86400, description="A connection silent this long is closed")
    ] = 600.0
    reply_timeout_s: Annotated[
        float,
        Field(ge=1, le=60, description="Longest wait for the admission path before the "
              "connection closes without an ACK (the engine resends)"),
    ] = 10.0  # fmt: skip

    @field_validator("peers")
    @classmethod
    def _networks(cls, peers: tuple[str, ...]) -> tuple[str, ...]:
        for peer in peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise ValueError(f"{peer!r} is not an IP address or network") from None
        return peers

    @field_validator("bind")
    @classmethod
    def _address(cls, bind: str) -> str:
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            raise ValueError(f"{bind!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0)") from None
        return bind

    @model_validator(mode="after")
    def _safe(self) -> AdtSection:
        # Only when enabled: a feed that is off listens on nothing.
        if not self.enabled:
            return self
        if not self.tls and not self.allow_plain_remote and not _loopback(self.bind):
            raise ValueError(
                f"bind: plain MLLP on non-loopback address {self.bind!r} is refused (names, MRNs "
                "and birth dates would cross the network in clear text); set tls = true with "
                "cert_file and key_file (or allow_plain_remote = true if an admin accepts the risk)"
            )
        if self.tls and not (self.cert_file and self.key_file):
            raise ValueError("tls: cert_file and key_file are needed for MLLP over TLS")
        for key in ("cert_file", "key_file", "client_ca_file"):
            value = getattr(self, key)
            if value and not Path(value).expanduser().is_file():
                raise ValueError(f"{key}: file not found: {value}")
        return self


def _loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback
