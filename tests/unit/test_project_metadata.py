"""The package metadata admits the Pythons of Debian 12 and 13 (3.11 to 3.13), and the PySide6 pin
that avoids the crash on 3.11 (PLATFORM-NOTES) reaches 3.11 only: read from ``pyproject.toml`` as
pip reads it (specifier sets and environment markers evaluated by ``packaging``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PROJECT = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
PINNED = "6.11.3"


def _qt_requirements(python: str) -> dict[str, Requirement]:
    """The PySide6 requirements pip applies on ``python`` (``3.11`` …), by name."""
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    out: dict[str, Requirement] = {}
    for line in PROJECT["dependencies"]:
        req = Requirement(line)
        if req.name.startswith("PySide6") and (req.marker is None or req.marker.evaluate(env)):
            assert req.name not in out, f"two requirements of {req.name} apply on {python}"
            out[req.name] = req
    return out


@pytest.mark.parametrize("version", ["3.11.2", "3.11.7", "3.12.3", "3.13.0", "3.13.5"])
def test_debian_12_and_13_pythons_are_admitted(version: str) -> None:
    assert SpecifierSet(PROJECT["requires-python"]).contains(version)


@pytest.mark.parametrize("version", ["3.10.12", "3.14.0"])
def test_untested_pythons_are_not(version: str) -> None:
    assert not SpecifierSet(PROJECT["requires-python"]).contains(version)


def test_the_pyside6_pin_applies_on_3_11_only() -> None:
    on_311 = _qt_requirements("3.11")
    assert set(on_311) == {"PySide6-Essentials", "PySide6-Addons"}
    for req in on_311.values():
        assert str(req.specifier) == f"=={PINNED}", req
    for python in ("3.12", "3.13"):
        reqs = _qt_requirements(python)
        assert set(reqs) == {"PySide6-Essentials", "PySide6-Addons"}
        for req in reqs.values():
            assert req.specifier.contains(PINNED), req  # the tested release stays allowed
            assert req.specifier.contains("6.12.0"), req  # and a newer one is not pinned out
            assert not req.specifier.contains("7.0.0"), req
