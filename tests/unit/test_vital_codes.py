"""Every parameter that can alarm goes out under a code; no code serves two parameters."""

from __future__ import annotations

import re

from station.domain.alarms import AlarmLimits
from station.domain.vital_codes import VITAL_CODES


def test_every_alarm_parameter_has_codes() -> None:
    assert set(VITAL_CODES) == set(AlarmLimits.PARAMETERS)


def test_codes_are_distinct_and_well_formed() -> None:
    loinc = [c.loinc for c in VITAL_CODES.values()]
    mdc = [c.mdc for c in VITAL_CODES.values()]
    assert len(set(loinc)) == len(loinc)
    assert len(set(mdc)) == len(mdc)
    for code in VITAL_CODES.values():
        assert re.fullmatch(r"\d{1,5}-\d", code.loinc), code
        assert code.mdc >> 16 == 2, code  # the SCADA partition
        assert code.unit_mdc >> 16 == 4, code  # the DIM (units) partition
        assert code.mdc_refid.startswith("MDC_")
        assert code.unit_refid.startswith("MDC_DIM_")
