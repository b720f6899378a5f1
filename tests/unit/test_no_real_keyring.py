"""No test reaches a real keyring (``tests/conftest.py``): a test runs with the station's memory
keyring over a ``keyring`` library pinned to its fail backend, and a process a test starts has the
fail backend too, so its secrets come from its environment only.

This module installs no keyring of its own, so it runs as almost every test does (it names the
keyring switches through their modules, so as not to look like one that does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import keyring
import pytest
from keyring.backends import fail

from station.config import credentials
from station.config.credentials import (
    SECURE_BACKENDS,
    SERVICE,
    MemoryKeyring,
    backend_status,
    secret,
    store_secret,
)
from tests import keyring_memory
from tests.keyring_memory import sets_its_own_keyring

REPO = Path(__file__).resolve().parents[2]
FAIL = f"{fail.Keyring.__module__}.{fail.Keyring.__qualname__}"

# What a child process sees: the keyring library's backend and the station's verdict on it.
CHILD = """
import json, keyring
from station.config import credentials
ring = type(keyring.get_keyring())
status = credentials.backend_status()
print(json.dumps({"backend": f"{ring.__module__}.{ring.__qualname__}", "ok": status.ok}))
"""


def qualified(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def test_a_test_keeps_its_secrets_in_the_memory_keyring(
    memory_keyring: MemoryKeyring | None,
) -> None:
    assert isinstance(memory_keyring, MemoryKeyring)
    backend, name = credentials._resolve()
    assert backend is memory_keyring
    assert name == MemoryKeyring.name
    assert backend_status().ok
    store_secret("patients", "ward-test", "a key for this test only")
    assert memory_keyring.accounts() == [(SERVICE, "patients:ward-test")]
    assert secret("patients", "ward-test") == "a key for this test only"


def test_each_test_has_a_memory_keyring_of_its_own(memory_keyring: MemoryKeyring | None) -> None:
    assert memory_keyring is not None
    assert memory_keyring.accounts() == []  # nothing the test above stored
    with pytest.raises(RuntimeError, match="already installed"), credentials.use_memory_keyring():
        pass  # and a test cannot stack another one on it unnoticed


def test_under_it_the_keyring_library_has_only_the_fail_backend() -> None:
    assert os.environ["PYTHON_KEYRING_BACKEND"] == FAIL
    ring = keyring.get_keyring()
    assert qualified(ring) == FAIL
    assert qualified(ring) not in SECURE_BACKENDS


def test_a_module_that_installs_its_own_keyrings_is_left_to_them() -> None:
    own, other = ModuleType("own"), ModuleType("other")
    assert not sets_its_own_keyring(other)
    own.use_memory_keyring = credentials.use_memory_keyring  # type: ignore[attr-defined]
    assert sets_its_own_keyring(own)
    refused = ModuleType("refused")
    refused.installed_keyring = keyring_memory.installed_keyring  # type: ignore[attr-defined]
    assert sets_its_own_keyring(refused)
    assert not sets_its_own_keyring(sys.modules[__name__])  # this one: the suite's keyring


def test_a_child_process_finds_no_real_keyring() -> None:
    """As the CLI and station-process tests start them: this process's environment, plus theirs.
    The station there finds no secure keyring; what it needs comes from the environment."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"backend": FAIL, "ok": False}
    assert os.environ.get("STATION_AUDIT_KEY")  # the audit key it needs, from the environment
