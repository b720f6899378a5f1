"""The ``secrets``, ``audit key`` and ``keyring`` checks: is every secret the configuration
needs at hand, and from where; is the audit trail's signing key the one the trail was made with.

No value, and no part of one, is ever put in a finding: only the environment variable's name or
the keyring's. Nothing is created: the patient and audit keys are made by the station on first
use, so the doctor says whether it will be able to.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from station.cli.doctor.context import Context, Found, Need
from station.cli.doctor.report import Finding, fail, ok, warn
from station.config import credentials
from station.domain.vouchers.keys import key_id, load_public_key
from station.services.audit.keys import AuditKeyError, existing_key
from station.services.audit.trail_files import PUBLIC_KEY_FILE
from station.services.storage.patient_store import KEY_BYTES, PatientStore, PatientStoreError

CREDENTIALS_FILE = Path("/etc/station/credentials.env")
"""The units' ``EnvironmentFile=`` (``packaging/systemd``): the service's secrets, root's alone.
systemd reads it before the station starts, so only its mode can be judged here."""

PATIENT_FILE = "patients.enc"
AUDIT_FOLDER = "audit"
GENERATE = "station keys generate"


def _fix(need: Need) -> str:
    """What to do about a missing ``need``, in the installer's words."""
    env = need.envs[0]
    if need.made_at_start:
        return (
            f"run `{GENERATE}` and set {env} in the service's environment (or give the station "
            "a secure keyring to make it in)"
        )
    return (
        f"set {env} in the service's environment, or save it in Manage ▾ Settings… (a secure "
        "keyring keeps it)"
    )


def _patient_key(found: Found, ctx: Context) -> str | None:
    """What is wrong with the patient table key at hand, or None: 32 bytes in base64, and the
    key the table on disk was written with (it is opened, never written)."""
    try:
        raw = base64.b64decode((found.value or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        return (
            f"the patient table key from {found.source} is not base64 of {KEY_BYTES} bytes: "
            f"restore the key the table was written with (or `{GENERATE}` before the first start)"
        )
    path = ctx.s.station.data_path / PATIENT_FILE
    if not path.exists():
        return None
    try:
        PatientStore(path, ctx.s.station.id).load()
    except PatientStoreError as exc:
        return str(exc)
    return None


def _line(found: Found, ctx: Context) -> tuple[str | None, str]:
    """(problem or None, what to say when fine) for one secret."""
    need = found.need
    if found.source is None:
        return _missing(found, ctx)
    where = f"{need.label} from {found.source}"
    if need.kind != "patients":
        return None, where
    problem = _patient_key(found, ctx)
    if problem is not None:
        return problem, ""
    opened = (ctx.s.station.data_path / PATIENT_FILE).exists()
    return None, where + (f" (opens {PATIENT_FILE})" if opened else "")


def _missing(found: Found, ctx: Context) -> tuple[str | None, str]:
    """A secret not found: fine only for a key the station will make in a secure keyring."""
    need = found.need
    table = ctx.s.station.data_path / PATIENT_FILE
    if need.kind == "patients" and table.exists():
        return (
            f"{need.label} MISSING ({found.problem}), but {table} exists: restore the key it was "
            f"written with (in the keyring, or {need.envs[0]}); a new key could not open it"
        ), ""
    if need.made_at_start and found.not_stored:
        name = credentials.backend_status().name
        return None, f"{need.label} not made yet (the station makes it in the {name})"
    return f"{need.label} MISSING ({found.problem}): {_fix(need)}", ""


def _credentials_file() -> str | None:
    """What is wrong with the service's secrets file, or None (also when there is none)."""
    try:
        mode = CREDENTIALS_FILE.stat().st_mode & 0o777
    except OSError:  # none (a desktop install, the keyring), or a folder it may not look in
        return None
    if mode & 0o077:
        return (
            f"{CREDENTIALS_FILE} can be read by others (mode {mode:o}): "
            f"chmod 600 {CREDENTIALS_FILE}, then change the secrets in it"
        )
    return None


def check_secrets(ctx: Context) -> Finding:
    """Each secret the config needs: present, and where from; a missing one names its variable;
    and the service's secrets file readable by root alone."""
    problems: list[str] = []
    fine: list[str] = []
    exposed = _credentials_file()
    if exposed is not None:
        problems.append(exposed)
    for need in ctx.needs():
        problem, said = _line(ctx.vault.find(need), ctx)
        if problem is not None:
            problems.append(problem)
        elif said:
            fine.append(said)
    if problems:
        return fail("; ".join(problems + fine))
    return ok("; ".join(fine))


def _trail_key_id(pub: Path) -> str | None:
    """The key id in ``station-audit.pub``, None when there is no trail yet.

    Raises:
        ValueError: the file is there but holds no Ed25519 public key.
    """
    if not pub.is_file():
        return None
    try:
        return key_id(load_public_key(pub))
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{pub} cannot be read as a public key: {exc}") from None


def check_audit_key(ctx: Context) -> Finding:
    """Whether the audit signing key is there, its key id, and whether it is the one the trail
    beside it (``station-audit.pub``) was signed with. Never makes a key."""
    s = ctx.s
    env = credentials.ENV["audit"]
    found = ctx.vault.find(next(n for n in ctx.needs() if n.kind == "audit"))
    pub = s.station.data_path / AUDIT_FOLDER / PUBLIC_KEY_FILE
    try:
        trail_kid = _trail_key_id(pub)
    except ValueError as exc:
        return fail(f"{exc}: restore it from a backup or an audit export (station-audit.pub)")
    try:  # read again through the station's own reader (and only if there is one: no log noise)
        key = existing_key(s.station.id) if found.value else None
    except AuditKeyError as exc:
        return fail(f"{exc}: set {env} to base64 of a 32-byte Ed25519 key (`{GENERATE}`)")
    if key is None:
        return _no_audit_key(found, trail_kid, pub)
    kid = key_id(key.public_key())
    if trail_kid is None:
        return ok(f"key id {kid} (no audit trail yet in {pub.parent})")
    if trail_kid != kid:
        return fail(
            f"key id {kid}, but the trail in {pub.parent} was signed with key {trail_kid}: the "
            f"keyring was reset or {env} holds another key; restore the key the trail was "
            "written with"
        )
    return ok(f"key id {kid}, the one that signed the trail in {pub.parent}")


def _no_audit_key(found: Found, trail_kid: str | None, pub: Path) -> Finding:
    env = credentials.ENV["audit"]
    if trail_kid is not None:
        return fail(
            f"no audit signing key ({found.problem}), but the trail in {pub.parent} was signed "
            f"with key {trail_kid}: restore that key (in the keyring, or {env}); a new key would "
            "leave the older records verifiable only with station-audit.pub"
        )
    status = credentials.backend_status()
    if found.not_stored:
        return ok(f"none yet: the station makes it in the {status.name} at first start")
    if status.ok:  # the keyring failed to answer: the station would refuse to replace the key
        return fail(f"the audit signing key cannot be read ({found.problem}): check the keyring")
    return fail(
        f"no audit signing key, and no secure keyring to make one in (only the {status.name}): "
        f"run `{GENERATE}` and set {env} in the service's environment"
    )


def check_keyring(ctx: Context) -> Finding:
    """A secure keyring, or an unattended service whose every secret is in its environment."""
    status = credentials.backend_status()
    if status.ok:
        return ok(status.message)
    found = [ctx.vault.find(need) for need in ctx.needs()]
    from_keyring = [f.need.label for f in found if f.source is None or f.source not in f.need.envs]
    if not from_keyring:
        return ok(
            f"no secure keyring (found: {status.name}), and none needed: every secret this "
            "config needs comes from the environment (an unattended service); the last audit "
            "checkpoint is then kept on the broker only"
        )
    return warn(f"{status.message} Not from the environment: {', '.join(from_keyring)}.")
