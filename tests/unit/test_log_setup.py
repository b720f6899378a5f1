"""Where the station logs (station/cli/logs.py): the journal's ``<N>`` priority on every line and
no time under systemd; elsewhere a rotating, owner-only file in the data folder; every record
written by the ``log-writer`` thread; and first lines that say what runs, never a key."""

from __future__ import annotations

import base64
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from station import __version__
from station.cli.logs import (
    LOG_THREAD,
    JournalFormatter,
    PrivateRotatingFile,
    StationLog,
    console_handler,
    journal_stream,
    log_file,
    log_start,
    syslog_priority,
)
from station.config.settings import from_mapping


def _me() -> str:
    """This thread's name as the log shows it (a test that ran a core on this thread may have
    named it ``core``)."""
    return threading.current_thread().name


def _record(level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("station.test", level, __file__, 1, msg, args, None)


def _stream_id(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}"


@pytest.fixture
def root_level() -> Iterator[None]:
    """StationLog sets the root logger's level while it runs; leave it as found."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
    ],
)
def test_syslog_priorities(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_the_journal_form_prefixes_every_line_and_has_no_time() -> None:
    formatter = JournalFormatter()
    assert formatter.format(_record(logging.WARNING, "broker lost: %s", "timeout")) == (
        f"<4>{_me()} station.test: broker lost: timeout"
    )
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(logging.ERROR, "failed")
        record.exc_info = sys.exc_info()
    lines = formatter.format(record).splitlines()
    assert len(lines) > 2  # the traceback's lines too
    assert all(line.startswith("<3>") for line in lines)
    assert lines[0] == f"<3>{_me()} station.test: failed"  # no time: journald stamps it


def test_journal_stream_must_name_this_very_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stderr"
    with path.open("w") as stream:
        assert journal_stream(stream, {"JOURNAL_STREAM": _stream_id(path)})
        assert not journal_stream(stream, {"JOURNAL_STREAM": "1:2"})  # inherited, not ours
        assert not journal_stream(stream, {})
        monkeypatch.setenv("JOURNAL_STREAM", _stream_id(path))
        handler = console_handler(stream)
    assert isinstance(handler.formatter, JournalFormatter)


def test_outside_the_journal_the_console_keeps_the_time(tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w") as stream:
        handler = console_handler(stream)
    assert not isinstance(handler.formatter, JournalFormatter)
    assert "asctime" in str(handler.formatter._fmt)


def test_the_log_file_is_owner_only_in_an_owner_only_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "logs").mkdir(mode=0o755)  # made earlier, too open
    handler = log_file(data)
    try:
        handler.handle(_record(logging.INFO, "hello"))
    finally:
        handler.close()
    path = data / "logs" / "station.log"
    assert (data / "logs").stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    assert "INFO station.test: hello" in path.read_text().replace(f"{_me()} ", "")


def test_rotation_keeps_five_owner_only_files(tmp_path: Path) -> None:
    path = tmp_path / "station.log"
    path.write_text("")
    path.chmod(0o644)  # a file made wider before: narrowed at open
    handler = PrivateRotatingFile(path, maxBytes=200, backupCount=4, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        for n in range(60):
            handler.handle(_record(logging.INFO, "line %d %s", n, "x" * 40))
    finally:
        handler.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["station.log", *(f"station.log.{n}" for n in range(1, 5))]
    assert all((tmp_path / f).stat().st_mode & 0o777 == 0o600 for f in files)


@pytest.mark.usefixtures("root_level")
def test_station_log_writes_on_its_own_thread_and_stops(tmp_path: Path) -> None:
    station_log = StationLog("INFO", tmp_path, None).start()
    try:
        assert station_log.path == tmp_path / "logs" / "station.log"
        assert LOG_THREAD in {t.name for t in threading.enumerate()}
        logging.getLogger("station.test").info("written by %s", "the writer")
        logging.getLogger("station.test").debug("below the level")
    finally:
        station_log.stop()
    station_log.stop()  # idempotent
    assert LOG_THREAD not in {t.name for t in threading.enumerate()}
    text = (tmp_path / "logs" / "station.log").read_text()
    assert f"{_me()} station.test: written by the writer" in text  # the caller's thread
    assert "below the level" not in text


@pytest.mark.usefixtures("root_level")
def test_under_the_journal_there_is_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    monkeypatch.setattr("sys.stderr", os.fdopen(os.dup(2), "w"))
    station_log = StationLog("INFO", tmp_path, None).start()
    try:
        assert station_log.journal
        logging.getLogger("station.test").warning("to the journal")
    finally:
        station_log.stop()
    assert not (tmp_path / "logs").exists()
    assert f"<4>{_me()} station.test: to the journal" in capfd.readouterr().err


def test_first_lines_name_what_runs_and_where_keys_come_from_never_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("STATION_AUDIT_KEY", key)
    monkeypatch.delenv("STATION_PATIENT_KEY", raising=False)
    settings = from_mapping({"station": {"id": "ward-7", "data_dir": str(tmp_path / "data")}})
    config = tmp_path / "station.toml"
    with caplog.at_level(logging.INFO, logger="station"):
        log_start(settings, config, tmp_path / "data" / "logs" / "station.log")
    text = caplog.text
    for wanted in (
        f"station {__version__} on Python 3.",
        f"config file: {config}",
        f"data folder: {tmp_path / 'data'}",
        "station id: ward-7",
        "audit signing key: from STATION_AUDIT_KEY",
        "patient table key: from the keyring (patients:ward-7)",
    ):
        assert wanted in text
    assert key not in text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="station"):
        log_start(settings, None, None)
    assert "config file: none, defaults" in caplog.text
    assert "log: the journal" in caplog.text
