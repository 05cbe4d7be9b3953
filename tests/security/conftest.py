"""A test-owned Mosquitto built from deploy/mosquitto (mosquitto.conf, acl, add-user.sh,
make-certs.sh) with only paths and ports rewritten: users ``hazwatch-cloud``, ``<unique>a`` and
``<unique>b`` (two gateways), a plain and a TLS listener, certificates from our own CA."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import Mosquitto, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
CLOUD_USER = "hazwatch-cloud"


@dataclass
class Broker:
    plain_port: int
    tls_port: int
    certs: Path
    passwords: dict[str, str]


def _config(workdir: Path, plain_port: int, tls_port: int) -> str:
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = text.replace("/etc/mosquitto/hazwatch/", f"{workdir}/")
    text = re.sub(
        r"^listener 1883 127\.0\.0\.1$", f"listener {plain_port} 127.0.0.1", text, flags=re.M
    )
    text = re.sub(r"^listener 8883$", f"listener {tls_port} 127.0.0.1", text, flags=re.M)
    # The test broker keeps nothing on disk (the helper sets persistence false).
    return "\n".join(
        ln for ln in text.splitlines() if not ln.startswith(("persistence", "autosave"))
    )


def _add_user(passwd: Path, user: str, password: str) -> None:
    subprocess.run(
        ["sh", str(DEPLOY / "add-user.sh"), str(passwd), user, password], check=True, timeout=30
    )


@pytest.fixture
def broker(unique_id: str) -> Iterator[Broker]:
    # Not under tmp_path: mosquitto started as root drops to user "mosquitto", which cannot enter
    # pytest's private (0700) temporary folders to read the password file.
    workdir = Path(tempfile.mkdtemp(prefix=f"hz-broker-{unique_id}-"))
    try:
        yield from _run_broker(workdir, unique_id)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_broker(workdir: Path, unique_id: str) -> Iterator[Broker]:
    certs = workdir / "certs"
    subprocess.run(
        ["sh", str(DEPLOY / "make-certs.sh"), str(certs), "localhost", "127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (workdir / "acl").write_text((DEPLOY / "acl").read_text())
    passwords = {CLOUD_USER: "cloud-" + unique_id, f"{unique_id}a": "pa", f"{unique_id}b": "pb"}
    for user, password in passwords.items():
        _add_user(workdir / "passwd", user, password)
    # mosquitto started as root drops to user "mosquitto"; let it read the test's files.
    for path in (workdir, certs, *workdir.iterdir(), *certs.iterdir()):
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else 0o644)
    plain, tls = free_port(), free_port()
    server = Mosquitto(
        workdir, extra_config=_config(workdir, plain, tls), listener=False, port=plain
    )
    with server.running():
        yield Broker(plain, tls, certs, passwords)
