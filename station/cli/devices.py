"""``station devices list | trust | onboard | reassign | revoke | accept``: the ward's side of
onboarding, for an admin who scripts a whole ward.

They work on the same registry file as the onboarding dialog (under a file lock), so they may run
while the station is up: it picks the change up within a second and audits it (the registry
records who made each change). With no station running, the command records the change itself
as a shell command (:mod:`station.services.audit.shell_record`), so a change made while the
station is down is in the trail too; a trusted key (``trust``), which the station does not watch,
is always recorded that way. ``onboard`` prints the
device's broker credential once — the password is not kept anywhere — for the admin to deploy;
``revoke`` prints what to undo on the broker (the ``mosquitto_passwd -D`` command and the ACL
lines), since the station only refuses the device's messages: its login stays valid at the
broker until the admin removes it. Each write is sealed with the station's audit key, like the
station's own; ``accept`` seals a registry changed some other way (after the admin reviewed what
it lists), which ends the station's "changed outside the station" alarm.
Every refusal is one line on stderr and exit code 2. The manufacturer's side (``keygen``,
``voucher``, ``endorse``) is in :mod:`station.cli.vouchers`.
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.vouchers import add_voucher_commands, run_voucher_command
from station.config.settings import Settings, load
from station.domain.broker_credentials import (
    ACL_FILE,
    PASSWORD_FILE,
    credential_removal,
    make_credential,
)
from station.domain.devices import DeviceBook, RegistryError, differences
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import key_id, load_public_key, load_trust
from station.domain.vouchers.model import TrustError
from station.domain.ward import bed_labels
from station.services.audit.keys import AuditKeyError, existing_key
from station.services.audit.shell_record import ShellAuditError, record_from_shell
from station.services.storage.device_registry import REGISTRY_FILE, DeviceRegistry
from station.services.storage.instance_lock import holder

WARD_COMMANDS = ("list", "trust", "onboard", "reassign", "revoke", "accept")
ACCEPT_LISTED = 10
"""Changes listed in the ``devices.accept`` record (the shell record's details are bounded)."""


def add_devices_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``devices`` and all its sub-commands to the top-level parser."""
    devices = sub.add_parser("devices", help="device registry, vouchers and onboarding")
    dsub = devices.add_subparsers(dest="devices_command", required=True)
    dsub.add_parser("list", help="onboarded devices with bed, signing and state")
    trust = dsub.add_parser("trust", help="trust a manufacturer's (or owner's) public key")
    trust.add_argument("key", type=Path, help="the public key (.pub)")
    trust.add_argument(
        "--owner", action="store_true", help="an owner key: vouchers must end their chain here"
    )
    onboard = dsub.add_parser("onboard", help="onboard the device a voucher names")
    onboard.add_argument("voucher", type=Path)
    onboard.add_argument("--bed", default="", help="bed number or label (default: no bed yet)")
    onboard.add_argument(
        "--unsigned", action="store_true", help="the device does not sign (default: it must)"
    )
    move = dsub.add_parser("reassign", help="move a device to another bed ('none' releases it)")
    move.add_argument("device")
    move.add_argument("bed")
    revoke = dsub.add_parser("revoke", help="decommission a device: its messages are refused")
    revoke.add_argument("device")
    revoke.add_argument(
        "--password-file", default=PASSWORD_FILE, help=f"the broker's (default {PASSWORD_FILE})"
    )
    revoke.add_argument("--acl-file", default=ACL_FILE, help=f"the broker's (default {ACL_FILE})")
    dsub.add_parser(
        "accept", help="seal the registry as it is, after reviewing a change made outside"
    )
    add_voucher_commands(dsub)


def run_devices(args: argparse.Namespace) -> int:
    """Run ``station devices ...``; 0, or 2 after one line on stderr."""
    if args.devices_command not in WARD_COMMANDS:
        return run_voucher_command(args)
    settings = load(args.config)
    registry = DeviceRegistry(settings.station.data_path / REGISTRY_FILE, _key(settings))
    data = settings.station.data_path
    running = holder(data) is not None  # it audits registry changes itself, within a second
    done: tuple[str, str, dict[str, object], bool]
    try:
        if args.devices_command == "list":
            _list(registry)
            return 0
        if args.devices_command == "accept":
            changes = _accept(registry)
            listed = {"changes": changes[:ACCEPT_LISTED], "more": len(changes[ACCEPT_LISTED:])}
            done = ("devices.accept", REGISTRY_FILE, listed, True)
        elif args.devices_command == "trust":
            trusted = _trust(settings, args.key, owner=args.owner)
            done = ("device.trust", trusted, {"owner": args.owner}, True)
        elif args.devices_command == "onboard":
            device, bed = _onboard(settings, registry, args)
            done = ("device.onboard", device, {"bed": bed, "signing": not args.unsigned}, False)
        elif args.devices_command == "reassign":
            bed = "" if args.bed.lower() == "none" else _bed(settings, args.bed)
            registry.reassign(args.device, bed, by=_who(), at=time.time())
            print(f"{args.device} → {bed or 'no bed'}")
            done = ("device.reassign", args.device, {"bed": bed}, False)
        else:
            registry.revoke(args.device, by=_who(), at=time.time())
            print(f"{args.device} decommissioned")
            _removal(args.device, args.password_file, args.acl_file)
            done = ("device.revoke", args.device, {}, False)
    except (RegistryError, TrustError, OSError, ValueError) as exc:
        print(f"station devices {args.devices_command}: {exc}", file=sys.stderr)
        return 2
    action, target, details, always = done
    if running and not always:
        return 0  # the running station records it from the registry, naming this shell user
    try:
        recorded = record_from_shell(
            data, settings.station.id, action, target=target, details=details
        )
    except ShellAuditError as exc:
        print(f"station devices: done, but not audited: {exc}", file=sys.stderr)
        return 1
    print(f"audit: {recorded.note}")
    return 0


def _key(settings: Settings) -> Ed25519PrivateKey | None:
    """The station's audit key, to seal what is written (never a new one: that would fork the
    trail); without it the write goes unsealed, and the station will say so."""
    try:
        key = existing_key(settings.station.id)
    except AuditKeyError as exc:
        print(f"station devices: {exc}", file=sys.stderr)
        key = None
    if key is None:
        print("station devices: no audit key here: the registry is written unsealed, and the "
              "station will raise an alarm until it is accepted", file=sys.stderr)  # fmt: skip
    return key


def _accept(registry: DeviceRegistry) -> list[dict[str, object]]:
    """Seal the registry as it is; print and return what changed since the sealed copy."""
    check = registry.check()
    if check.ok:
        print("the registry is sealed already: nothing to accept")
        return []
    changes = differences(check.sealed or DeviceBook(), registry.load())
    print(f"accepting a registry that {check.problem}; changes since the sealed copy:")
    for change in changes:
        print(f"  {change['device']}: {change['change']} {change.get('fields', '')}".rstrip())
    registry.accept()
    print("sealed")
    return changes


def _who() -> str:
    return f"{getpass.getuser()} (shell)"


def _trust_dir(settings: Settings) -> Path:
    return Path(settings.devices.trust_dir or settings.station.data_path / "trust").expanduser()


def _bed(settings: Settings, text: str) -> str:
    labels = bed_labels(settings.ward.beds, settings.ward.bed_prefix)
    if text.isdigit() and 1 <= int(text) <= len(labels):
        text = labels[int(text) - 1]
    if text not in labels:
        raise ValueError(f"no bed {text!r} on this ward (1…{len(labels)} or a label)")
    pinned = {labels[n - 1]: d for d, n in settings.ward.devices.items()}
    if text in pinned:
        raise ValueError(f"{text} is fed by {pinned[text]} ([ward] devices in the config)")
    return text


def _list(registry: DeviceRegistry) -> None:
    for rec in registry.load():
        state = "active" if rec.active else f"revoked by {rec.revoked_by}"
        signing = "signing" if rec.signing else "unsigned"
        print("\t".join([rec.device_id, rec.bed or "-", signing, state, rec.model, rec.serial]))


def _trust(settings: Settings, key: Path, *, owner: bool) -> str:
    public = load_public_key(key)
    folder = _trust_dir(settings) / ("owners" if owner else "manufacturers")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"{key_id(public)}.pem"
    shutil.copyfile(key, target)
    load_trust(_trust_dir(settings))  # the folder must still load: fail here, not at the ward
    print(f"trusted {'owner' if owner else 'manufacturer'} key {key_id(public)}: {target}")
    return key_id(public)


def _onboard(
    settings: Settings, registry: DeviceRegistry, args: argparse.Namespace
) -> tuple[str, str]:
    """Onboard the voucher's device; its id and bed."""
    bed = _bed(settings, args.bed) if args.bed else ""
    book = registry.load()
    check = check_voucher(
        args.voucher.read_bytes(),
        load_trust(_trust_dir(settings)),
        now=time.time(),
        used=book.used_vouchers,
        revoked=book.revoked,
    )
    if check.claims is not None:
        make_credential(check.claims.device_id)  # an id the broker cannot take: refused first
    rec = registry.onboard(check, bed=bed, signing=not args.unsigned, by=_who(), at=time.time())
    cred = make_credential(rec.device_id)
    signing = "unsigned" if args.unsigned else "signing"
    print(f"{rec.device_id} onboarded to {bed or 'no bed'} ({signing})")
    print(f"broker user: {cred.username}")
    print(f"broker password (shown once, not kept): {cred.password}")
    print("# password_file line")
    print(cred.password_line)
    print("# acl_file lines")
    for line in cred.acl:
        print(line)
    return rec.device_id, bed


def _removal(device: str, password_file: str, acl_file: str) -> None:
    """Print what the admin must undo on the broker: the station refuses the device's messages
    from now on, but its broker login stays valid until it is removed there."""
    try:
        removal = credential_removal(device)
    except ValueError:
        print("no broker credential to remove: this name was never given one")
        return
    print("its broker login is still valid: remove it on the broker")
    for line in removal.lines(password_file, acl_file):
        print(line)
