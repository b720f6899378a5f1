"""The bed policy table the core enforces, with the stays whose storage consent is withheld.

Why a type of its own: the core learns of admissions and consents through one value, the bed
policy table (bed → :class:`~station.domain.ward.BedPolicy`), sent whole at every change. A bed's
policy only says what happens from the next message; the points of a patient already in the
spool, recorded under a consent since withdrawn, need the patient's stays (beds and times) to be
found. Carrying those stays in the same value means the core applies the new policy and holds
back the earlier points in one step, with no message of that bed recorded in between, and after
a restart it gets them again with the first table (a withdrawal saved just before a crash is
still honoured).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from station.domain.patients.records import WithheldStay
from station.domain.ward import BedPolicy


class BedPolicies(dict[str, BedPolicy]):
    """Bed → :class:`BedPolicy`, a plain dict to every reader, and :attr:`withheld`: the stays
    of every patient on record whose storage consent is not given, whose unsent points must not
    reach the historian."""

    def __init__(
        self,
        policies: Mapping[str, BedPolicy] | None = None,
        withheld: Iterable[WithheldStay] = (),
    ) -> None:
        super().__init__(policies or {})
        self.withheld: tuple[WithheldStay, ...] = tuple(withheld)
