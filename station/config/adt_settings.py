"""The ``[adt]`` section: admissions, transfers and discharges taken from the hospital's ADT feed.

Why a module of its own: the schema in :mod:`station.config.settings` is near its size limit;
:class:`~station.config.settings.Settings` holds this section as ``adt``. Off by default.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class AdtSection(BaseModel):
    """[adt]: the inbound HL7 v2 ADT listener (A01, A02, A03, A08, A11, A12, A13 over MLLP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, Field(description="Take admissions from the hospital's ADT feed")] = (
        False
    )
