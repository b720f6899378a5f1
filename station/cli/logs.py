"""Where the log goes: the journal under systemd, else stderr and, for the station, a rotating
file in its data folder.

Under systemd (``$JOURNAL_STREAM`` names stderr's device and inode, systemd.exec(5)) each line
goes to stderr with its syslog priority as a ``<N>`` prefix and no time: journald stamps the
time and keeps the priority (``journalctl -u station -p warning``). Elsewhere the station also
writes ``<data folder>/logs/station.log`` (:data:`LOG_BYTES` a file, :data:`LOG_FILES` files,
0600 in a 0700 folder), opened before the window starts. Short commands (``doctor``, ``users``,
``devices``, ``audit``, ``simulate``, ``bench`` …) log to stderr only.

The station's GUI thread logs too, and a write may block (a pipe journald reads slowly, a disk
busy with an fsync), so the station's handlers run on a thread of their own, ``log-writer``
(``QueueHandler`` → ``QueueListener``): a logger call only queues the record. The queue is
bounded; a writer that falls :data:`QUEUED_RECORDS` behind loses records (counted, said at the
end) rather than holding up the ward.

What the station logs names no patient: beds, devices, users and files only.
"""

from __future__ import annotations

import io
import logging
import os
import platform
import queue
import sys
from collections.abc import Mapping
from logging.handlers import QueueHandler, QueueListener, RotatingFileHandler
from pathlib import Path
from typing import TextIO

from station import __version__
from station.config.credentials import ENV, from_environment
from station.config.settings import Settings

log = logging.getLogger("station")

LOG_THREAD = "log-writer"
LOG_DIR = "logs"
LOG_FILE = "station.log"
LOG_BYTES = 10 * 1024 * 1024
LOG_FILES = 5
"""The current file and four rotated ones (``station.log.1`` … ``.4``): at most 50 MB."""
QUEUED_RECORDS = 10_000
Records = queue.Queue[logging.LogRecord | None]
CLASSIC = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"
JOURNAL = "%(threadName)s %(name)s: %(message)s"


def journal_stream(stream: TextIO | None = None, env: Mapping[str, str] = os.environ) -> bool:
    """Whether ``stream`` (stderr) is the journal's stream that systemd connected
    (``$JOURNAL_STREAM``, ``device:inode``), not a terminal, a file or another pipe."""
    wanted = env.get("JOURNAL_STREAM", "")
    if not wanted:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return wanted == f"{st.st_dev}:{st.st_ino}"


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (3 error … 7 debug), for journald's ``<N>``."""
    for level, priority in (
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
    ):
        if levelno >= level:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>`` before every line of a record (a traceback's too), and no time stamp."""

    def __init__(self) -> None:
        super().__init__(JOURNAL)

    def format(self, record: logging.LogRecord) -> str:
        """The record's lines, each with its priority."""
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def console_handler(stream: TextIO | None = None) -> logging.Handler:
    """A handler for ``stream`` (stderr) in the journal's form under systemd, else with the
    time."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JournalFormatter() if journal_stream(stream) else logging.Formatter(CLASSIC)
    )
    return handler


def configure_console(level: str) -> logging.Handler | None:
    """Log to stderr at ``level``, as ``logging.basicConfig`` would: not at all if the root
    logger has handlers already (a test's). Returns the handler added, if any."""
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = console_handler()
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class PrivateRotatingFile(RotatingFileHandler):
    """A rotating file made owner-only (0600), also when it starts anew after a rotation."""

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.baseFilename, flags, 0o600)
        os.fchmod(fd, 0o600)  # made earlier with a wider mode
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def log_file(data_dir: Path) -> PrivateRotatingFile:
    """``<data_dir>/logs/station.log``, opened now (folder 0700, file 0600).

    Raises:
        OSError: the folder or the file cannot be made.
    """
    folder = data_dir / LOG_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    handler = PrivateRotatingFile(
        folder / LOG_FILE, maxBytes=LOG_BYTES, backupCount=LOG_FILES - 1, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(CLASSIC))
    return handler


class _Queueing(QueueHandler):
    """Queues without waiting; a full queue drops the record and counts it."""

    dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class _Writer(QueueListener):
    """The listener, on a thread named :data:`LOG_THREAD`."""

    def __init__(self, records: Records, *handlers: logging.Handler) -> None:
        super().__init__(records, *handlers, respect_handler_level=True)
        self._records = records

    def start(self) -> None:
        super().start()
        if self._thread is not None:
            self._thread.name = LOG_THREAD

    def enqueue_sentinel(self) -> None:
        self._records.put(None)  # QueueListener's end; waits for room: the writer is draining


class StationLog:
    """The station's logging from :meth:`start` to :meth:`stop` (see the module docstring).

    Args:
        level: the root logger's level (``--log-level``).
        data_dir: the data folder; its ``logs`` folder gets the file, unless under journald.
        console: a stderr handler already on the root logger (:func:`configure_console`): it
            is taken off while this runs, since the writer thread then writes stderr.
    """

    def __init__(self, level: str, data_dir: Path, console: logging.Handler | None) -> None:
        self._level, self._console = level, console
        self.journal = journal_stream()
        self.handlers: list[logging.Handler] = [console_handler()]
        self.path: Path | None = None
        if not self.journal:
            file = log_file(data_dir)
            self.path = Path(file.baseFilename)
            self.handlers.append(file)
        records: Records = queue.Queue(QUEUED_RECORDS)
        self._handler = _Queueing(records)
        self._writer = _Writer(records, *self.handlers)
        self._running = False
        self._level_before = logging.NOTSET

    def start(self) -> StationLog:
        """Route the root logger's records through the writer thread."""
        root = logging.getLogger()
        if self._console is not None:
            root.removeHandler(self._console)
        self._writer.start()
        root.addHandler(self._handler)
        self._level_before = root.level
        root.setLevel(self._level)
        self._running = True
        return self

    def stop(self) -> None:
        """Write what is queued, end the writer thread, close the file; idempotent."""
        if not self._running:
            return
        self._running = False
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._level_before)
        self._writer.stop()
        if self._handler.dropped:
            note = logging.LogRecord(
                "station", logging.WARNING, __file__, 0,
                "%d log records dropped: the log writer fell behind", (self._handler.dropped,),
                None,
            )  # fmt: skip
            for handler in self.handlers:
                handler.handle(note)
        for handler in self.handlers:
            handler.close()
        if self._console is not None:
            root.addHandler(self._console)


def log_start(settings: Settings, config: Path | None, log_path: Path | None) -> None:
    """The first lines of a station's log: what runs, from which config, on which data, with
    which keys (where each key comes from; never a key)."""
    station_id = settings.station.id

    def source(kind: str) -> str:
        if from_environment(kind):
            return f"from {ENV[kind]}"
        return f"from the keyring ({kind}:{station_id})"

    log.info(
        "station %s on Python %s (pid %d)", __version__, platform.python_version(), os.getpid()
    )
    log.info("config file: %s", config if config is not None else "none, defaults")
    log.info("data folder: %s", settings.station.data_path)
    log.info("station id: %s", station_id)
    log.info("log: %s", log_path if log_path is not None else "the journal (stderr)")
    log.info("audit signing key: %s", source("audit"))
    log.info("patient table key: %s", source("patients"))
