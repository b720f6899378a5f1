"""The ``[hl7]`` section: observations and alarms sent to the hospital's HL7 v2 interface engine.

Why a module of its own: the schema in :mod:`station.config.settings` is near its size limit;
:class:`~station.config.settings.Settings` holds this section as ``hl7``. Off by default.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Hl7Section(BaseModel):
    """[hl7]: the outbound HL7 v2 interface (IHE PCD-01 ORU^R01, PCD-04 ORU^R40 over MLLP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[
        bool, Field(description="Send observations and alarms to the HL7 interface engine")
    ] = False
