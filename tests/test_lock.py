"""The environment the tests run in is exactly the committed lock, and the lock fits pyproject.

`make test` installs requirements-dev.txt with hashes; these tests catch a lock that drifted from
pyproject.toml (a dependency added without `make lock`), a package installed beside the lock, and
a demo lock that would run other versions than the tests.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
#: Installed by `python -m venv` itself, not by the lock.
VENV_OWN = {"pip"}


def _pins(lock: Path) -> dict[str, str]:
    """``name -> version`` of every pin of ``lock`` whose marker holds on this interpreter."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if not line or line[0] in " #-":
            continue
        requirement = Requirement(line.rstrip(" \\"))
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{lock.name}: {line!r} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


DEV = _pins(ROOT / "requirements-dev.txt")
RUNTIME = _pins(ROOT / "requirements.txt")


def test_every_pin_carries_hashes() -> None:
    for lock in ("requirements-dev.txt", "requirements.txt"):
        text = (ROOT / lock).read_text()
        pins = len(re.findall(r"^[A-Za-z0-9].*==", text, flags=re.MULTILINE))
        assert pins == len(re.findall(r"==[^\n]*\\\n\s+--hash=sha256:", text)), lock


def test_installed_packages_are_exactly_the_dev_lock() -> None:
    installed: dict[str, str] = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
    }
    installed.pop("hazwatch")
    for name in VENV_OWN:
        installed.pop(name, None)
    assert installed == DEV


def test_the_demo_runs_the_versions_the_tests_run() -> None:
    assert RUNTIME.items() <= DEV.items()


def test_the_locks_satisfy_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        "requirements.txt": project["dependencies"],
        "requirements-dev.txt": project["dependencies"] + project["optional-dependencies"]["dev"],
    }
    for lock, requirements in declared.items():
        pins = RUNTIME if lock == "requirements.txt" else DEV
        for text in requirements:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{name} is in pyproject.toml but not in {lock}: run make lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {name}=={pins[name]}, outside pyproject's {requirement.specifier}"
            )
