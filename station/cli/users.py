"""``station users add | list | unlock | passwd``: local accounts from a shell.

How an admin is created on a machine without a screen, and how a locked-out admin gets back in.
Each change is audited like the users dialog's (``user.create``, ``user.password_reset``,
``user.unlock``), as a shell command (:mod:`station.services.audit.shell_record`): actor
``shell:<unix user>``, role ``shell``, into the trail when no station runs, else through the
running station's inbox; the very first admin, made before any trail exists, waits in the inbox
for the station's first start. A change that could not be audited exits 1 and says so.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from station.config.settings import load
from station.domain.roles import Role
from station.services.audit.shell_record import ShellAuditError, record_from_shell
from station.services.storage.accounts import AccountError, Accounts


def add_users_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``users`` and its sub-commands to the top-level parser."""
    users = sub.add_parser("users", help="local accounts (the first one must be an admin)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser(
        "add", help="add an account; password from STATION_NEW_PASSWORD or typed twice"
    )
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    users_sub.add_parser("list", help="list accounts with role and lock state")
    unlock = users_sub.add_parser("unlock", help="clear an account's lockout")
    unlock.add_argument("name")
    passwd = users_sub.add_parser(
        "passwd", help="set a password (STATION_NEW_PASSWORD or typed twice); clears a lockout"
    )
    passwd.add_argument("name")


def run_users(args: argparse.Namespace) -> int:
    """Run ``station users ...``: 0, 1 when done but not audited, 2 when refused."""
    settings = load(args.config)
    data_dir = settings.station.data_path
    accounts = Accounts(data_dir / "users.json")
    if args.users_command == "list":
        for name, role, locked in accounts.users():
            print("\t".join([name, role.value, *(["LOCKED"] if locked else [])]))
        return 0
    action: str
    details: dict[str, Any]
    try:
        if args.users_command == "unlock":
            accounts.unlock(args.name)
            print(f"{args.name} unlocked")
            action, details = "user.unlock", {}
        else:
            password = os.environ.get("STATION_NEW_PASSWORD")
            if not password:
                password = getpass.getpass(f"password for {args.name}: ")
                if getpass.getpass("again: ") != password:
                    print("station: the two passwords differ", file=sys.stderr)
                    return 2
            if args.users_command == "passwd":
                accounts.set_password(args.name, password)
                print(f"password of {args.name} set")
                action, details = "user.password_reset", {"changed": ["password"]}
            else:
                accounts.create(args.name, Role(args.role), password)
                print(f"{args.name} ({args.role}) created in {accounts.path}")
                action, details = "user.create", {"role": args.role, "pin": False}
    except AccountError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 2
    try:
        recorded = record_from_shell(
            data_dir, settings.station.id, action, target=args.name, details=details
        )
    except ShellAuditError as exc:
        print(f"station users: done, but not audited: {exc}", file=sys.stderr)
        return 1
    print(f"audit: {recorded.note}")
    if recorded.fault:
        print(f"station users: the audit trail: {recorded.fault}", file=sys.stderr)
    return 0
