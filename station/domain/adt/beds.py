"""Where a PV1-3 location is on the station's ward: one of its beds, another unit, or nowhere
it knows.

Why a rule of its own, configured rather than guessed: an ADT location names a bed in the
hospital's words (point of care ^ room ^ bed), the station names beds ``Bed 1`` … ``Bed N``, and
a wrong match puts a patient's name on another patient's tile. So the match is exact (blanks
around and letter case aside): by default the bed component is the bed's number (``3``) or its
label (``Bed 3``); with an ``[adt] beds`` table only the table counts, each key's non-empty
components compared with the location's, the most specific key winning. ``[adt] point_of_care``
names this ward's units: a location of another unit is *elsewhere* (an admission there is not
this ward's; a transfer there takes the patient off the ward), whereas a location of this ward
that no rule maps is *unknown*, and refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from station.domain.adt.requests import NOWHERE, Location, Placement


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


class BedMap:
    """The configured mapping; immutable once made.

    Args:
        beds: the station's bed labels, in bed-number order.
        point_of_care: this ward's PV1-3.1 codes; empty: every location is this ward's.
        table: ``point of care^room^bed`` (fewer or empty components match anything) → bed
            number; empty: the bed component is the bed's number or label.

    Raises:
        ValueError: a table entry names a bed the ward does not have, or matches every
            location (no component given).
    """

    def __init__(
        self,
        beds: Sequence[str],
        point_of_care: Sequence[str] = (),
        table: Mapping[str, int] | None = None,
    ) -> None:
        self._beds = tuple(beds)
        self._units = frozenset(_norm(p) for p in point_of_care if p.strip())
        self._keys: list[tuple[tuple[str, str, str], str]] = []
        for key, number in (table or {}).items():
            if not 1 <= number <= len(self._beds):
                raise ValueError(
                    f"[adt] beds: {key!r} names bed {number}; the ward has 1…{len(self._beds)}"
                )
            parts = [*(_norm(p) for p in key.split("^")), "", ""][:3]
            if not any(parts):
                raise ValueError(f"[adt] beds: {key!r} gives no component and would match all")
            self._keys.append(((parts[0], parts[1], parts[2]), self._beds[number - 1]))
        # The most specific first; among equals, the order written.
        self._keys.sort(key=lambda item: -sum(1 for p in item[0] if p))
        self._by_name = {_norm(label): label for label in self._beds}
        self._by_name.update({str(n): label for n, label in enumerate(self._beds, 1)})

    def place(self, location: Location) -> Placement:
        """Where ``location`` is on this ward (:data:`~station.domain.adt.requests.NOWHERE`
        when the message gave none)."""
        if location.empty:
            return NOWHERE
        text = location.text()
        if self._units and _norm(location.point_of_care) not in self._units:
            return Placement(given=True, elsewhere=True, text=text)
        bed = self._lookup(location)
        return Placement(given=True, bed=bed, text=text)

    def _lookup(self, location: Location) -> str | None:
        if not self._keys:
            return self._by_name.get(_norm(location.bed))
        got = (_norm(location.point_of_care), _norm(location.room), _norm(location.bed))
        for parts, bed in self._keys:
            if all(not want or want == have for want, have in zip(parts, got, strict=True)):
                return bed
        return None
