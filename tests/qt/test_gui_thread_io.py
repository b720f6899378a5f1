"""The GUI thread never blocks on I/O: a scripted session at the station — log in, onboard a device
from its voucher, admit a patient, record consent, save settings with a secret, add a user, log
in as that user — with real widgets, real files in a temporary data folder and the tests' memory
keyring, while an audit hook (``sys.addaudithook``) records every file open, rename, lock, folder
listing, SQLite connect and socket connect, and on which thread it happened. Scrypt is no audit
event: the accounts' hash function is wrapped to record its thread. The test fails on any such
event on the GUI thread, naming it and its stack, and it proves the hook was listening by finding
the same kinds of events on the workers.

Audit hooks cannot be removed: the hook stays installed for the rest of the run but does nothing
unless :data:`_RECORD` holds a list, which only this test sets, and only during the session.
Python's own module imports (a first use of some module, ``<frozen importlib...>`` in the stack)
are left out: loading code is not the station's I/O, and which module is imported first depends
on which tests ran before.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from pytestqt.qtbot import QtBot

from station.config.credentials import SERVICE, MemoryKeyring, use_memory_keyring
from station.config.settings import Settings, from_mapping
from station.domain.patients.records import Purpose
from station.domain.roles import Role
from station.presenters.actions import ACCOUNTS_THREAD, ActionLayer
from station.presenters.ward_admin import JOBS_THREAD, WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.storage import accounts as accounts_module
from station.services.storage.accounts import Accounts
from station.ui.admin_dialogs import AdminDialogs
from station.ui.consent_dialog import ConsentDialog
from station.ui.login_dialog import LoginDialog
from station.ui.main_window import MainWindow
from station.ui.onboarding_dialog import OnboardingDialog
from station.ui.patient_dialog import PatientDialog
from station.ui.settings.dialog import SettingsDialog
from station.ui.settings.saving import SAVE_THREAD
from station.ui.users_dialog import UsersDialog
from tests.device_kit import trusted_maker, voucher_for
from tests.fakes import FakeClock
from tests.qt.wiring import Wiring

PASSWORD = "a long password"
NURSE_PASSWORD = "another long password"
MQTT_SECRET = "mqtt-Secret-in-keyring-only"
WATCHED = frozenset(
    {
        "open",  # builtins.open, io.open, os.open (and with them tempfile, Path.read_text)
        "os.rename",  # os.rename and os.replace
        "os.remove",
        "os.rmdir",
        "os.mkdir",
        "os.chmod",
        "os.chown",
        "os.truncate",
        "os.listdir",
        "os.scandir",
        "glob.glob",
        "tempfile.mkstemp",
        "fcntl.flock",
        "fcntl.lockf",
        "fcntl.fcntl",
        "sqlite3.connect",
        "socket.connect",
        "socket.getaddrinfo",
        "subprocess.Popen",
    }
)


@dataclass(frozen=True, slots=True)
class IOEvent:
    """One recorded event: what, with which arguments, on which thread, from where."""

    event: str
    args: str
    thread: str
    gui: bool
    stack: tuple[tuple[str, int, str], ...]

    def importing(self) -> bool:
        return any(name.startswith("<frozen importlib") for name, _, _ in self.stack)

    def describe(self) -> str:
        frames = "\n".join(
            f"    {name}:{line} in {func}"
            for name, line, func in self.stack
            if "/_pytest/" not in name and "/pluggy/" not in name
        )
        return f"{self.event}{self.args} on {self.thread}\n{frames}"


_RECORD: list[IOEvent] | None = None
_MAIN = threading.main_thread().ident
_busy = threading.local()  # the hook's own work raises no further records


def _hook(event: str, args: tuple[Any, ...]) -> None:
    record = _RECORD
    if record is None or event not in WATCHED or getattr(_busy, "on", False):
        return
    _busy.on = True
    try:
        frames: list[tuple[str, int, str]] = []
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and len(frames) < 30:
            code = frame.f_code
            frames.append((code.co_filename, frame.f_lineno, code.co_name))
            frame = frame.f_back
        ident = threading.get_ident()
        shown = repr(args)[:200]
        name = threading.current_thread().name
        record.append(IOEvent(event, shown, name, ident == _MAIN, tuple(frames)))
    finally:
        _busy.on = False


_installed: list[bool] = []


def _install() -> None:
    if not _installed:  # once per process: an audit hook cannot be removed
        sys.addaudithook(_hook)
        _installed.append(True)


@dataclass
class Session:
    """The station's GUI side as the app wires it (the ``wire`` fixture), minus the core (whose
    thread reads the registry on its own) and the MQTT client."""

    qtbot: QtBot
    window: MainWindow
    dialogs: AdminDialogs
    actions: ActionLayer
    admin: WardAdmin
    audit: AuditWriter
    settings: Settings
    config: Path
    voucher: str
    hashed_on: list[str]
    policies: list[str]
    ring: MemoryKeyring

    def log_in(self, name: str, secret: str, pin: bool = False) -> None:
        """Through the login dialog, as a nurse at the station would."""
        self.window.header.login_button.click()
        prompt = self.window.login_prompt
        assert prompt is not None
        dialog = prompt.dialog
        assert isinstance(dialog, LoginDialog)
        dialog.user.setCurrentText(name)
        dialog.secret.setText(secret)
        dialog.use_pin.setChecked(pin)
        with self.qtbot.waitSignal(self.actions.session_changed, timeout=10_000):
            dialog.submit()
        assert self.actions.session.user == name

    def answer(self, signal: Any, act: Callable[[], object]) -> list[Any]:
        """Do ``act`` and wait for the dialog's answer; its arguments."""
        with self.qtbot.waitSignal(signal, timeout=10_000) as got:
            act()
        return list(got.args)


@pytest.fixture
def session(
    qtbot: QtBot, wire: Wiring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Session]:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping(
        {"station": {"data_dir": str(data)}, "ward": {"beds": 4}, "mqtt": {"username": "st-1"}}
    )
    hashed_on: list[str] = []
    real_hash = accounts_module._hash

    def hash_and_note_the_thread(
        secret: str, salt: bytes, n: int = accounts_module.SCRYPT_N
    ) -> bytes:
        hashed_on.append(threading.current_thread().name)
        return real_hash(secret, salt, n)

    with use_memory_keyring() as ring:
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        accounts = Accounts(data / "users.json", clock=clock, scrypt_n=2**10)
        accounts.create("adm", Role.ADMIN, PASSWORD)
        monkeypatch.setattr(accounts_module, "_hash", hash_and_note_the_thread)
        actions = ActionLayer(accounts, audit, "ward-io", lock_after_s=300, clock=clock)
        admin = WardAdmin(settings, audit, clock=clock, role=lambda: "admin")
        policies: list[str] = []
        admin.policy_changed.connect(lambda _p: policies.append(threading.current_thread().name))
        config = tmp_path / "config" / "station.toml"
        screen = wire(
            settings, clock, audit,
            actions=actions, user="nobody", core=False, admin=admin, config_path=config,
        )  # fmt: skip
        window = screen.window
        text, _key = voucher_for(trusted_maker(data / "trust"), "mon-io")
        yield Session(
            qtbot, window, screen.dialogs, actions, admin, audit, settings, config, text,
            hashed_on, policies, ring,
        )  # fmt: skip
        window.stop_timers()
        actions.shutdown(5.0)
        assert admin.stop(5.0)
        assert audit.close(5.0)


def _script(s: Session, ring: MemoryKeyring) -> None:
    """Everything a ward's admin and nurse do in the dialogs, each step to its answer."""
    s.log_in("adm", PASSWORD)
    ward = s.dialogs.ward
    assert ward is not None

    # A device onboarded from its voucher, to Bed 1, through the devices dialog.
    devices = s.dialogs.open_devices()
    assert devices is not None
    onboarding = ward.open_onboarding("adm")
    assert isinstance(onboarding, OnboardingDialog)
    onboarding.voucher.setPlainText(s.voucher)
    [check] = s.answer(onboarding.verified, onboarding.verify)
    assert check is not None
    assert check.ok, onboarding.message.text()
    onboarding.bed.setCurrentIndex(onboarding.bed.findData("Bed 1"))
    assert s.answer(onboarding.answered, onboarding.onboard) == [True], onboarding.message.text()

    # A patient admitted to Bed 1, and consent to storage recorded.
    patient_dialog = ward.open_patient("Bed 1")
    assert isinstance(patient_dialog, PatientDialog)
    patient_dialog.name.setText("Io Thread-Test")
    patient_dialog.mrn.setText("MRN-IO-1")
    answer = s.answer(patient_dialog.answered, patient_dialog.admit)
    assert answer == [True], patient_dialog.message.text()
    consent = ward.open_consent("Bed 1")
    assert isinstance(consent, ConsentDialog)
    answer = s.answer(consent.answered, lambda: consent.record(Purpose.STORAGE, True))
    assert answer == [True], consent.message.text()
    patient = s.admin.occupant("Bed 1")
    assert patient is not None
    assert patient.devices == ("mon-io",)
    assert s.admin.allows(patient, Purpose.STORAGE)

    # Settings saved, a secret with them (file, fsync, rename and keyring on the worker).
    s.dialogs.open_settings()
    [settings_dialog] = [w for w in s.window.findChildren(SettingsDialog) if w.isVisible()]
    settings_dialog.set_value("alarms.oxygen.latching", True)
    settings_dialog.secrets["mqtt"].setText(MQTT_SECRET)
    assert s.answer(settings_dialog.save_finished, settings_dialog.save_button.click) == [True]
    assert ring.get_password(SERVICE, "mqtt:st-1") == MQTT_SECRET

    # A nurse added (scrypt, users.json) through the users dialog, who then logs in by PIN.
    s.dialogs.open_users()
    [users] = [w for w in s.window.findChildren(UsersDialog) if w.isVisible()]
    users.name.setText("nia")
    users.role.setCurrentIndex(list(Role).index(Role.NURSE))
    users.password.setText(NURSE_PASSWORD)
    users.confirm.setText(NURSE_PASSWORD)
    users.pin.setText("4711")
    assert s.answer(users.answered, users.add) == [True], users.message.text()
    s.log_in("nia", "4711", pin=True)


def test_a_scripted_session_does_no_io_on_the_gui_thread(session: Session) -> None:
    global _RECORD  # noqa: PLW0603  # the hook reads it; only this test sets it
    assert threading.get_ident() == _MAIN, "pytest-qt runs the GUI on the main thread"
    _install()
    # Earlier tests' garbage is finalised now, not in the middle of this session (a sound
    # player's temporary folder, say, removed on whichever thread the collector runs): the
    # deletions Qt has queued, the events waiting, then Python's collector.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    gc.collect()
    record: list[IOEvent] = []
    _RECORD = record
    try:
        _script(session, session.ring)
    finally:
        _RECORD = None
    on_gui = [e for e in record if e.gui and not e.importing()]
    assert not on_gui, "I/O on the GUI thread:\n" + "\n\n".join(e.describe() for e in on_gui)
    # The hook was listening: the same kinds of I/O happened, on the workers.
    seen = {(e.thread, e.event) for e in record if not e.gui}
    for expected in (
        (JOBS_THREAD, "open"),  # the registry and the encrypted patient table
        (JOBS_THREAD, "fcntl.flock"),  # the registry's lock
        (JOBS_THREAD, "os.rename"),  # every private file is renamed into place
        (JOBS_THREAD, "os.scandir"),  # the voucher trust folder
        (SAVE_THREAD, "open"),  # station.toml
        (SAVE_THREAD, "os.rename"),
        (ACCOUNTS_THREAD, "open"),  # users.json
        (ACCOUNTS_THREAD, "os.rename"),
    ):
        assert expected in seen, f"{expected} not recorded; seen: {sorted(seen)}"
    # Scrypt: the new nurse's password and PIN, and both logins, all on the accounts' worker.
    assert len(session.hashed_on) >= 4
    assert set(session.hashed_on) == {ACCOUNTS_THREAD}
    # The ward's signals still reach the core from the GUI thread, after the save.
    assert session.policies
    assert set(session.policies) == {threading.main_thread().name}
