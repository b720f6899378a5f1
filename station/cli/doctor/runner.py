"""The checks of ``station doctor`` in their order, each on its own thread with a timeout.

Why a thread per check: one broken thing must never hide the others. A check that raises becomes
a FAIL line; one that hangs (a dead NFS mount, a keyring waiting on D-Bus, a broker that accepts
TCP and says nothing) becomes a FAIL line when its time is up, and the next check runs. The
threads are daemons, so a hung one cannot keep the command from exiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from station.cli.doctor.broker import check_broker
from station.cli.doctor.context import Context
from station.cli.doctor.historian import check_historian
from station.cli.doctor.report import Finding, Result, Scrubber, fail, ok, warn
from station.cli.doctor.secrets_checks import check_audit_key, check_keyring, check_secrets
from station.cli.doctor.storage import check_data_folder, check_disk, check_instance
from station.cli.doctor.system import check_audio, check_clock, check_version
from station.config.settings import ConfigError, load, user_config_path

SLACK_S = 3.0
"""Beyond a network check's own timeout, before the runner gives up on it."""
EXAMPLE = (
    "station.example.toml documents every key: /usr/share/station/examples/ when installed,"
    " config/ in a source tree"
)


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: its name, what runs it, and how long it may take.

    ``with_settings`` checks get the run's :class:`Context` and are skipped when the config did
    not load; the others take nothing.
    """

    name: str
    timeout_s: float
    with_settings: Callable[[Context], Finding] | None = None
    alone: Callable[[], Finding] | None = None


def check_config(ctx: Context) -> Finding:
    """Which file was read (or that there is none) and that it validated; loads ``ctx.settings``."""
    path = ctx.config_path
    if path is None and not user_config_path().is_file():
        where = f"defaults, no file at {user_config_path()}"
    else:
        where = str(path or user_config_path())
    if path is not None and not path.exists():
        return fail(
            f"{path} does not exist: give the station's config file to --config (without it: "
            f"{user_config_path()}, else the defaults)"
        )
    try:
        ctx.settings = load(path)
    except ConfigError as exc:  # the message names the file and the key
        return fail(f"{exc}: correct the file and run again ({EXAMPLE})")
    s = ctx.settings
    return ok(f"{where}: valid (station {s.station.id!r}, data folder {s.station.data_path})")


CHECKS: tuple[Check, ...] = (
    Check("config", 10.0, with_settings=check_config),
    Check("version", 5.0, alone=check_version),
    Check("secrets", 10.0, with_settings=check_secrets),
    Check("audit key", 10.0, with_settings=check_audit_key),
    Check("keyring", 10.0, with_settings=check_keyring),
    Check("broker", 10.0 + SLACK_S, with_settings=check_broker),  # a login per session user
    Check("historian", 13.0 + SLACK_S, with_settings=check_historian),  # a write, a read
    Check("disk", 5.0, with_settings=check_disk),
    Check("data folder", 5.0, with_settings=check_data_folder),
    Check("audio", 20.0, alone=check_audio),
    Check("clock", 10.0, alone=check_clock),
    Check("instance", 5.0, with_settings=check_instance),
)
NAMES = tuple(c.name for c in CHECKS)


def guarded(name: str, run: Callable[[], Finding], timeout_s: float) -> Finding:
    """``run()`` on a daemon thread; its exception or its silence past ``timeout_s`` is a FAIL."""
    box: list[Finding] = []

    def work() -> None:
        try:
            box.append(run())
        except Exception as exc:
            box.append(
                fail(
                    f"the check itself failed ({type(exc).__name__}: {exc}); the other checks "
                    "are unaffected: fix what they say, run again, and report this if it stays"
                )
            )

    thread = threading.Thread(target=work, name=f"doctor-{name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not box:
        return fail(
            f"no answer within {timeout_s:g} s: look for a hung file system, keyring or network "
            "here (the check was left behind; the next ones still run)"
        )
    return box[0]


def _skipped() -> Finding:
    return warn("not checked: the config did not load; fix it (see config) and run again")


def diagnose(config_path: Path | None, checks: Sequence[Check] = CHECKS) -> list[Result]:
    """Run ``checks`` in order against the config at ``config_path`` (None: the user's file, or
    the defaults); every result scrubbed of the secrets read."""
    ctx = Context(config_path, Scrubber())
    findings: list[tuple[str, Finding]] = []
    for check in checks:
        if check.alone is not None:
            finding = guarded(check.name, check.alone, check.timeout_s)
        elif check.with_settings is None:
            finding = ok("nothing to check")
        elif ctx.settings is None and check.name != "config":
            finding = _skipped()
        else:
            finding = guarded(check.name, partial(check.with_settings, ctx), check.timeout_s)
        findings.append((check.name, finding))
    return [Result(name, f.status, ctx.scrub(f.detail)) for name, f in findings]
