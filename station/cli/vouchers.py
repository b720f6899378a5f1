"""``station devices keygen | voucher | endorse``: make keys, issue and transfer device vouchers.

These are the manufacturer's and the distributor's side of onboarding (the ward's side is
:func:`station.domain.vouchers.check_voucher`); a test bench or a small maker can run them with the
station installed. Private keys are written 0600 and never overwritten. Every error is one line on
stderr and exit code 2, so a script can tell a refusal from a crash.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from station.config.key_files import save_private_key, save_public_key
from station.domain.vouchers.keys import generate_key, key_id, load_private_key, load_public_key
from station.domain.vouchers.model import VoucherError
from station.domain.vouchers.signing import endorse, holder_key_id, issue_voucher
from station.domain.vouchers.wire import parse_voucher

EXIT_OK = 0
EXIT_USAGE = 2


class _RefusedError(Exception):
    """A request this tool will not carry out; the message is the line for stderr."""


def add_voucher_commands(devices_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keygen``, ``voucher`` and ``endorse`` to the ``devices`` sub-command parser (whose
    ``dest`` is ``devices_command``)."""
    keygen = devices_sub.add_parser(
        "keygen", help="make an Ed25519 key pair: PREFIX.key (private, 0600) and PREFIX.pub"
    )
    keygen.add_argument("--out", required=True, metavar="PREFIX", type=Path)

    voucher = devices_sub.add_parser("voucher", help="issue a voucher as the manufacturer")
    voucher.add_argument("--key", required=True, type=Path, help="the manufacturer's .key")
    voucher.add_argument("--device-id", required=True)
    voucher.add_argument("--model", required=True)
    voucher.add_argument("--serial", required=True)
    voucher.add_argument(
        "--device-key", required=True, type=Path, help="the device's public key (.pub or base64)"
    )
    voucher.add_argument("--manufacturer", required=True, help="the manufacturer's name")
    voucher.add_argument("--days", type=int, default=365, help="valid for (default 365)")
    voucher.add_argument("--out", type=Path, help="write here instead of stdout")

    transfer = devices_sub.add_parser(
        "endorse", help="transfer a voucher you hold to its next owner"
    )
    transfer.add_argument("voucher", type=Path, help="the voucher file")
    transfer.add_argument("--key", required=True, type=Path, help="your (the holder's) .key")
    transfer.add_argument("--owner", required=True, help="the next owner's name")
    transfer.add_argument("--owner-key", required=True, type=Path, help="the next owner's .pub")
    transfer.add_argument("--out", type=Path, help="write here instead of stdout")


def run_voucher_command(args: argparse.Namespace) -> int:
    """Run ``args.devices_command``; return the exit code (0, or 2 after one line on stderr)."""
    command = args.devices_command
    handlers = {"keygen": _keygen, "voucher": _voucher, "endorse": _endorse}
    try:
        handler = handlers[command]
    except KeyError:
        print(f"station devices: unknown command {command!r}", file=sys.stderr)
        return EXIT_USAGE
    try:
        handler(args)
    except (_RefusedError, VoucherError, OSError, ValueError) as exc:
        print(f"station devices {command}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split())


def _keygen(args: argparse.Namespace) -> None:
    prefix: Path = args.out
    private, public = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for path in (private, public):
        if path.exists():
            raise _RefusedError(f"{path} exists; not overwriting a key")
    key = generate_key()
    save_private_key(private, key)
    save_public_key(public, key.public_key(), overwrite=False)
    print(key_id(key.public_key()))
    print(f"wrote {private} (private, keep it secret) and {public}", file=sys.stderr)


def _voucher(args: argparse.Namespace) -> None:
    if args.days < 1:
        raise _RefusedError(f"--days must be at least 1, not {args.days}")
    voucher = issue_voucher(
        load_private_key(args.key),
        device_id=args.device_id,
        model=args.model,
        serial=args.serial,
        device_public_key=load_public_key(args.device_key),
        manufacturer=args.manufacturer,
        issued_at=datetime.now(UTC),
        valid_for=timedelta(days=args.days),
    )
    _emit(voucher, args.out)


def _endorse(args: argparse.Namespace) -> None:
    source: Path = args.voucher
    try:
        voucher = parse_voucher(source.read_bytes())
    except VoucherError as exc:
        raise _RefusedError(f"{source}: {exc}") from exc
    holder = load_private_key(args.key)
    expected, ours = holder_key_id(voucher), key_id(holder.public_key())
    if ours != expected:
        # endorse() would sign anyway; the ward would then call the chain broken.
        raise _RefusedError(
            f"{args.key} (key {ours}) does not hold {source}: its holder's key is {expected}"
        )
    _emit(endorse(voucher, holder, args.owner, load_public_key(args.owner_key)), args.out)


def _emit(voucher: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(voucher, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
