"""The ``[peers]`` section of the configuration: the ward's other stations this one trusts.

Why a module of its own: the schema in :mod:`station.config.settings` is near its size limit,
and this section checks files (each peer's public key) rather than values, so it stands apart;
:class:`~station.config.settings.Settings` holds it as ``peers``. What the stations do with it:
``docs/two-stations.md`` ("Trust between stations").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from station.domain.messages import DEVICE_ID_PATTERN
from station.domain.vouchers.keys import load_public_key
from station.domain.vouchers.model import VoucherError


class PeersSection(BaseModel):
    """[peers]: the ward's other stations whose acknowledgements and ward events are taken."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stations: Annotated[
        dict[Annotated[str, Field(pattern=DEVICE_ID_PATTERN)], str],
        Field(
            description="station id → absolute path of that station's public key (its "
            "station-audit.pub); only these stations' signed events are applied here"
        ),
    ] = {}

    @field_validator("stations")
    @classmethod
    def _keys_readable(cls, stations: dict[str, str]) -> dict[str, str]:
        # Checked at start, naming the station: a key file missing or mistyped must not turn
        # into a ward whose acknowledgements are silently refused.
        for station, value in stations.items():
            path = Path(value).expanduser()
            if not path.is_absolute():
                raise ValueError(f"{station}: give an absolute path, not {value!r}")
            try:
                load_public_key(path)
            except OSError as exc:
                raise ValueError(f"{station}: cannot read {value}: {exc.strerror}") from None
            except VoucherError as exc:
                raise ValueError(f"{station}: {exc}") from None
        return stations
