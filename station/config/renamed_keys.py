"""Config keys renamed or retired between releases, mapped so an older file still starts.

Why: the config is strict (an unknown key is refused, so a typo never silently leaves a setting
at a default nobody chose), and the settings dialog writes every key. Without this table a key
renamed in a later release would stop an upgraded station from starting, on a ward, with the
file written by the previous release's own dialog. Each entry says in which release it changed;
the station logs one warning per mapped key, naming the new spelling, and the settings dialog
writes the new spelling at its next save.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

RENAMED: Final[Mapping[str, str]] = {
    # 0.2.0: every duration key names its unit, like session_expiry_s and no_data_s.
    "mqtt.keepalive": "mqtt.keepalive_s",
}
"""Old ``section.key`` → new ``section.key``."""

RETIRED: Final[Mapping[str, str]] = {}
"""``section.key`` → why it is no longer read (the key is ignored, with a warning)."""


def upgrade_mapping(data: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    """Return ``data`` with renamed keys moved to their new names and retired keys dropped,
    and one sentence per change for the log.

    A file that holds both the old and the new spelling keeps the new one: the old is dropped
    with a warning rather than refused, because a hand-edited file may well hold both.
    """
    out: dict[str, object] = {
        section: dict(table) if isinstance(table, Mapping) else table
        for section, table in data.items()
    }
    notes: list[str] = []
    for old, new in RENAMED.items():
        old_section, old_key = old.split(".", 1)
        new_section, new_key = new.split(".", 1)
        table = out.get(old_section)
        if not isinstance(table, dict) or old_key not in table:
            continue
        value = table.pop(old_key)
        target = out.setdefault(new_section, {})
        if not isinstance(target, dict):
            continue  # a malformed section: validation names it
        if new_key in target:
            notes.append(f"[{old_section}] {old_key} ignored: {new} is set too (renamed in 0.2)")
            continue
        target[new_key] = value
        notes.append(f"[{old_section}] {old_key} is now {new}: please save the settings once")
    for old, why in RETIRED.items():
        section, key = old.split(".", 1)
        table = out.get(section)
        if isinstance(table, dict) and key in table:
            del table[key]
            notes.append(f"[{section}] {key} is no longer read: {why}")
    return out, notes
