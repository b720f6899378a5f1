"""``station keys generate | export | import``: the station's keys for an unattended service, and
moved between machines.

``generate --out FILE`` makes a new audit signing key and patient table key as a systemd
``EnvironmentFile`` (``STATION_AUDIT_KEY=…``, ``STATION_PATIENT_KEY=…``; 0600, never over an
existing file) and prints only the audit key's id, which the hospital records for its auditors.
It refuses a data folder that already has a trail or a patient table: there, new keys would
fork the trail and lock the patients away for ever; the keys it needs are moved with
``export`` / ``import``.

``export --out FILE`` writes the station's keys (audit key, patient key, last audit checkpoint)
encrypted with a passphrase (:mod:`station.services.backup.key_envelope`); ``import FILE`` puts
them into the secure keyring, or with ``--env-file OUT`` into a new environment file. The
passphrase comes from ``STATION_KEYS_PASSPHRASE`` or is typed (twice for an export). Both are
audited (``keys.export``, ``keys.import``), never with a key. Exit 2 for every refusal.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from pathlib import Path

from station.config.settings import load
from station.services.audit.keys import AuditKeyError
from station.services.audit.shell_record import (
    ShellAuditError,
    ShellRecorded,
    foreign_owner,
    record_from_shell,
    trail_key_problem,
)
from station.services.backup.key_envelope import (
    EnvelopeError,
    open_keys,
    read_header,
    seal_keys,
)
from station.services.backup.private_output import write_new_private
from station.services.backup.station_keys import (
    KeysError,
    current_keys,
    environment_file,
    generate_refusal,
    import_keys,
    keys_from,
    new_keys,
    without_bad_anchor,
)

PASSPHRASE_ENV = "STATION_KEYS_PASSPHRASE"


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` to the top-level parser."""
    keys = sub.add_parser("keys", help="generate, export and import the station's keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    generate = keys_sub.add_parser(
        "generate", help="new audit and patient keys as an EnvironmentFile (prints the key id)"
    )
    generate.add_argument("--out", type=Path, required=True, help="a new file (0600)")
    generate.add_argument(
        "--force", action="store_true", help="even if keys exist in the keyring or environment"
    )
    export = keys_sub.add_parser(
        "export", help=f"the station's keys, encrypted (passphrase: {PASSPHRASE_ENV} or typed)"
    )
    export.add_argument("--out", type=Path, required=True, help="a new file (0600)")
    imp = keys_sub.add_parser("import", help="keys from an export into the keyring")
    imp.add_argument("file", type=Path, help="a file written by `station keys export`")
    imp.add_argument(
        "--env-file", type=Path, help="write a new EnvironmentFile (0600) instead of the keyring"
    )


def _fail(text: str) -> int:
    print(f"station keys: {text}", file=sys.stderr)
    return 2


def _passphrase(*, twice: bool) -> str:
    """From the environment, else typed at the terminal (twice to set one).

    Raises:
        EnvelopeError: none can be had, or the two typed differ.
    """
    given = os.environ.get(PASSPHRASE_ENV)
    if given:
        return given
    if not sys.stdin.isatty():
        raise EnvelopeError(f"no terminal to type the passphrase: set {PASSPHRASE_ENV}")
    first = getpass.getpass("passphrase for the key file: ")
    if twice and getpass.getpass("again: ") != first:
        raise EnvelopeError("the two passphrases differ")
    return first


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` would lie in ``folder``: a key file there goes into every backup."""
    return path.expanduser().resolve().is_relative_to(folder.expanduser().resolve())


def _say(recorded: ShellRecorded) -> None:
    print(f"audit: {recorded.note}")
    if recorded.fault:
        print(f"station keys: the audit trail: {recorded.fault}", file=sys.stderr)


def run_keys(args: argparse.Namespace) -> int:
    """Run ``station keys ...``; returns the exit code."""
    settings = load(args.config)
    station, data_dir = settings.station.id, settings.station.data_path
    foreign = foreign_owner(data_dir)
    if foreign is not None and args.keys_command != "generate":
        return _fail(foreign)  # its audit record would be another user's file there
    written = args.env_file if args.keys_command == "import" else args.out
    if written is not None and _inside(written, data_dir):
        return _fail(f"{written} is in the data folder, and so would be in every backup")
    try:
        if args.keys_command == "generate":
            return _generate(args.out, station, data_dir, force=args.force)
        if args.keys_command == "export":
            return _export(args.out, station, data_dir)
        return _import(args.file, args.env_file, station, data_dir)
    except (KeysError, EnvelopeError, AuditKeyError) as exc:
        return _fail(str(exc))
    except FileExistsError as exc:
        return _fail(f"{exc.filename} exists: it is never overwritten (a key file may be the last)")
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")


def _generate(out: Path, station: str, data_dir: Path, *, force: bool) -> int:
    refusal = generate_refusal(data_dir, station, force=force)
    if refusal is not None:
        return _fail(refusal)
    keys = new_keys(station)
    write_new_private(
        out, environment_file(keys, "made by `station keys generate`", at=time.time())
    )
    print(
        f"wrote {out}: STATION_AUDIT_KEY and STATION_PATIENT_KEY of station {station}."
        f" Audit key id: {keys.audit_key_id()} (record it for the auditors)."
    )
    print("Give it to the service as its EnvironmentFile; keep a `station keys export` safe.")
    return 0


def _export(out: Path, station: str, data_dir: Path) -> int:
    keys = current_keys(station)
    if not keys.found:
        return _fail(f"station {station} has no keys in the environment or the keyring")
    keys.check_keys()
    keys, left_out = without_bad_anchor(keys)
    if left_out:
        print(f"station keys: not exported: {left_out}", file=sys.stderr)
    if out.exists():
        raise FileExistsError(17, "exists", str(out))
    passphrase = _passphrase(twice=True)
    kid = keys.audit_key_id()
    data = seal_keys(keys.found, passphrase, station=station, audit_key_id=kid, created=time.time())
    write_new_private(out, data)
    kinds = sorted(keys.found)
    print(f"wrote {out}: {', '.join(kinds)} of station {station}; audit key id {kid or 'none'}")
    details = {"file": out.name, "kinds": kinds, "audit_key_id": kid}
    try:
        _say(
            record_from_shell(
                data_dir, station, "keys.export", target=str(out.resolve()), details=details
            )
        )
    except ShellAuditError as exc:
        print(f"station keys: exported, but not audited: {exc}", file=sys.stderr)
        return 1
    return 0


def _import(source: Path, env_file: Path | None, station: str, data_dir: Path) -> int:
    data = source.read_bytes()
    header = read_header(data)  # before the passphrase: is this file this station's at all?
    if header["station"] != station:
        return _fail(f"{source} holds the keys of station {header['station']!r}, not {station!r}")
    if env_file is not None and env_file.exists():
        raise FileExistsError(17, "exists", str(env_file))
    opened = open_keys(data, _passphrase(twice=False))
    keys = keys_from(opened.secrets, station)
    kid = keys.audit_key_id()
    audit_key = keys.audit_key()
    if audit_key is not None and (problem := trail_key_problem(data_dir, audit_key)):
        return _fail(f"{problem} in {data_dir}: these keys are not this data folder's")
    details: dict[str, object] = {
        "file": source.name,
        "exported_at": opened.created,
        "kinds": sorted(keys.found),
        "audit_key_id": kid,
    }
    if env_file is not None:
        note = f"imported from an export made {opened.created}"
        write_new_private(env_file, environment_file(keys, note, at=time.time()))
        print(f"wrote {env_file}: the keys of station {station}; audit key id {kid or 'none'}")
        if keys.anchor:
            print(
                "the last audit checkpoint is not put in an environment file (pinned there, the"
                " station would never move it on); the broker's retained copy keeps the watch"
            )
        details.update(into="env-file", env_file=str(env_file.resolve()))
    else:
        done = import_keys(keys)
        print(f"keyring: stored {done.stored or 'nothing'}; already there {done.already or '-'}")
        if done.left:
            print(f"kept what the station has already: {', '.join(done.left)}")
        details.update(into="keyring", stored=done.stored)
    try:
        recorded = record_from_shell(
            data_dir,
            station,
            "keys.import",
            target=str(source.resolve()),
            details=details,
            key=audit_key,
        )
    except ShellAuditError as exc:
        print(f"station keys: imported, but not audited: {exc}", file=sys.stderr)
        return 1
    _say(recorded)
    return 0
