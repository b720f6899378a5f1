"""Upgrades: an older config and older stores load; a newer store is refused, clearly."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from station.config.renamed_keys import RENAMED, upgrade_mapping
from station.config.settings import ConfigError, from_mapping
from station.domain.file_format import format_problem
from station.services.storage.accounts import AccountError, Accounts
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.sqlite_wal import StoreVersionError, open_wal

SCHEMA = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"


def test_a_renamed_key_of_the_previous_release_loads_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="station.config.settings"):
        settings = from_mapping({"mqtt": {"keepalive": 45}}, source="old.toml")
    assert settings.mqtt.keepalive_s == 45
    assert "old.toml: [mqtt] keepalive is now mqtt.keepalive_s" in caplog.text


def test_old_and_new_spelling_together_keep_the_new_one(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="station.config.settings"):
        settings = from_mapping({"mqtt": {"keepalive": 45, "keepalive_s": 20}})
    assert settings.mqtt.keepalive_s == 20
    assert "keepalive ignored: mqtt.keepalive_s is set too" in caplog.text


def test_upgrade_does_not_touch_the_callers_mapping() -> None:
    data: dict[str, object] = {"mqtt": {"keepalive": 45}}
    upgraded, notes = upgrade_mapping(data)
    assert data == {"mqtt": {"keepalive": 45}}
    assert upgraded == {"mqtt": {"keepalive_s": 45}}
    assert len(notes) == 1


def test_every_renamed_key_names_a_key_of_this_release() -> None:
    defaults = from_mapping({}).model_dump()
    for old, new in RENAMED.items():
        section, key = new.split(".", 1)
        assert key in defaults[section], new
        assert old.split(".", 1)[1] not in defaults[old.split(".", 1)[0]], old


def test_a_typo_is_still_refused() -> None:
    with pytest.raises(ConfigError, match=r"mqtt.keepalvie_s: unknown key"):
        from_mapping({"mqtt": {"keepalvie_s": 45}})


def test_a_store_from_a_newer_release_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    open_wal(path, synchronous="NORMAL", schema=SCHEMA, meta={"schema_version": "7"}).close()
    with pytest.raises(StoreVersionError, match=r"newer release of the station \(schema 7; "):
        open_wal(path, synchronous="NORMAL", schema=SCHEMA, meta={"schema_version": "2"})
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("7",)
    conn.close()


def test_an_older_store_is_brought_forward_and_records_the_new_version(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    open_wal(path, synchronous="NORMAL", schema=SCHEMA, meta={"schema_version": "1"}).close()
    seen: list[str] = []

    def migrate(conn: sqlite3.Connection) -> None:
        seen.append(conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    conn = open_wal(
        path, synchronous="NORMAL", schema=SCHEMA, meta={"schema_version": "2"}, migrate=migrate
    )
    assert seen == ["1"]
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    conn.close()


def test_a_real_store_refuses_a_newer_file(tmp_path: Path) -> None:
    path = tmp_path / "alarms.sqlite"
    store = AlarmStore(path)
    store.open()
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="schema 99"):
        AlarmStore(path).open()


def test_accounts_of_a_newer_release_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"version": 2, "users": {}}), encoding="utf-8")
    with pytest.raises(AccountError, match="newer release"):
        Accounts(path)


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (1, None),
        (3, "newer release"),
        (0, "older than this release can read"),
        ("1", "names no format"),
        (True, "names no format"),
        (None, "names no format"),
    ],
)
def test_format_problem_names_the_direction(found: object, words: str | None) -> None:
    problem = format_problem("the file", found, 1)
    assert problem is None if words is None else words in (problem or "")
