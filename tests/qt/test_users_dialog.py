"""The users dialog hashes and saves on the accounts' worker: the buttons wait, a refusal is said
in the dialog (never a modal box), and the first admin's dialog closes once the account is kept."""

from __future__ import annotations

import json
from pathlib import Path

from pytestqt.qtbot import QtBot

from station.domain.roles import Role
from station.services.audit.writer import AuditWriter
from station.services.storage.accounts import Accounts
from station.ui.users_dialog import UsersDialog


def _add(qtbot: QtBot, dialog: UsersDialog, name: str, password: str) -> bool:
    dialog.name.setText(name)
    dialog.password.setText(password)
    dialog.confirm.setText(password)
    with qtbot.waitSignal(dialog.answered, timeout=10_000) as answer:
        dialog.add()
        assert not dialog.add_button.isEnabled()  # waiting for the worker
        assert dialog.message.text() == "Saving…"
    assert dialog.add_button.isEnabled()
    return bool(answer.args[0])


def test_the_first_admin_is_created_on_the_worker_and_a_refusal_is_said_inline(
    qtbot: QtBot, tmp_path: Path
) -> None:
    accounts = Accounts(tmp_path / "users.json", scrypt_n=2**10)
    audit = AuditWriter(tmp_path / "audit")
    audit.start()
    dialog = UsersDialog(accounts, audit, None)
    qtbot.addWidget(dialog)
    dialog.show()
    assert _add(qtbot, dialog, "boss", "short") is False
    assert "at least 8" in dialog.message.text()
    assert dialog.isVisible()
    assert dialog.password.text() == ""  # a typed secret does not linger in the widget
    assert _add(qtbot, dialog, "boss", "a long password") is True
    assert accounts.role_of("boss") is Role.ADMIN
    assert dialog.result() == UsersDialog.DialogCode.Accepted
    assert audit.close(5.0)
    records = [json.loads(line) for line in audit.path.read_text().splitlines()]
    [created] = [r for r in records if r["action"] == "user.create"]
    assert (created["actor"], created["target"]) == ("boss", "boss")
