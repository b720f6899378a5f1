"""Alarm profiles: a reviewed set of limits per patient group (adult, paediatric, neonatal).

Why profiles: a nurse admitting a newborn must not start from adult limits, where an SpO2 high of
100 never catches hyperoxia and an HR low of 50 misses neonatal bradycardia. Each profile is one
TOML file in ``station/profiles`` (package data, so an installed station has them too) that
the clinical lead reviews; the limits dialog starts from it
and the audit trail records what a change did with :func:`describe_change`.

Pure: no Qt; the only I/O is reading a profile file. Loading is as strict as the station config:
an unknown parameter or key, or a missing one, is refused with a message naming file and key,
because a typo such as ``hihg = 120`` would otherwise leave that alarm at a default nobody chose.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from station.domain.alarms import AlarmLimits

PROFILE_DIR = Path(__file__).resolve().parents[1] / "profiles"
"""The reviewed profiles, shipped inside the package (a wheel or the Debian package keeps them)."""

# Keys every parameter table must state. An omitted limit would switch that side's alarm off
# (AlarmLimits defaults to None), which must be a visible per-bed decision, never a file's typo.
REQUIRED_KEYS = ("low", "high", "priority")

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the key."""


def available_profiles(directory: Path | None = None) -> list[str]:
    """Names of the profiles in ``directory`` (default :data:`PROFILE_DIR`), sorted.

    A missing folder gives an empty list: a station installed without profiles still works with
    the limits of its config file.
    """
    folder = PROFILE_DIR if directory is None else directory
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.toml") if _NAME.fullmatch(p.stem))


def load_profile(name: str, directory: Path | None = None) -> dict[str, AlarmLimits]:
    """Read profile ``name`` into limits for every parameter of ``AlarmLimits.PARAMETERS``.

    Args:
        name: profile name, the file's stem (``"neonatal"``): lower-case letters, digits, ``_``
            and ``-`` only, so a name from the UI can never point outside the folder.
        directory: folder of profiles; default :data:`PROFILE_DIR`.

    Raises:
        ProfileError: no such profile, bad TOML, an unknown or missing parameter or key, or
            invalid values; the message starts with the file and names the key.
    """
    if not _NAME.fullmatch(name):
        raise ProfileError(f"invalid profile name {name!r}")
    folder = PROFILE_DIR if directory is None else directory
    path = folder / f"{name}.toml"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        known = ", ".join(available_profiles(folder)) or "none"
        raise ProfileError(f"{path}: no profile {name!r} (available: {known})") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: {exc}") from exc

    for parameter in data:
        if parameter not in AlarmLimits.PARAMETERS:
            raise ProfileError(f"{path}: unknown parameter [{parameter}]")
    allowed = AlarmLimits.model_fields
    limits: dict[str, AlarmLimits] = {}
    for parameter in AlarmLimits.PARAMETERS:
        table = data.get(parameter)
        if table is None:
            raise ProfileError(f"{path}: missing parameter [{parameter}]")
        if not isinstance(table, dict):
            raise ProfileError(f"{path}: {parameter} must be a table [{parameter}]")
        for key in table:
            if key not in allowed:
                raise ProfileError(f"{path}: unknown key {parameter}.{key}")
        for key in REQUIRED_KEYS:
            if key not in table:
                raise ProfileError(f"{path}: missing key {parameter}.{key}")
        limits[parameter] = _validated(path, parameter, table)
    return limits


def _validated(path: Path, parameter: str, table: Mapping[str, object]) -> AlarmLimits:
    try:
        return AlarmLimits.model_validate(table)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in (parameter, *error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ProfileError(f"{path}: {where}: {message}") from exc


def describe_change(
    old: Mapping[str, AlarmLimits], new: Mapping[str, AlarmLimits]
) -> dict[str, dict[str, list[object]]]:
    """What a change of limits did, for the audit record's "old → new".

    Returns:
        parameter → field → ``[old, new]`` for the fields that differ, in JSON form (a priority
        is ``"high"``, a switched-off limit ``None``). Unchanged parameters are left out, so an
        empty dict means nothing changed. A parameter on one side only compares against no
        values (every field ``None`` on the other side).
    """
    extra = sorted((set(old) | set(new)) - set(AlarmLimits.PARAMETERS))
    changes: dict[str, dict[str, list[object]]] = {}
    for parameter in (*AlarmLimits.PARAMETERS, *extra):
        before = old[parameter].model_dump(mode="json") if parameter in old else {}
        after = new[parameter].model_dump(mode="json") if parameter in new else {}
        fields = [*before, *(k for k in after if k not in before)]
        changed = {
            f: [before.get(f), after.get(f)] for f in fields if before.get(f) != after.get(f)
        }
        if changed:
            changes[parameter] = changed
    return changes
