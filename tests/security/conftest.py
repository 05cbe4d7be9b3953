"""A test-owned Mosquitto built from deploy/mosquitto (mosquitto.conf, acl, add-user.sh,
make-certs.sh) with only paths and ports rewritten: user ``hazwatch-cloud`` in the cloud's
password file, gateways ``<unique>a`` and ``<unique>b`` in the gateways' one, the cloud's plain
and TLS listeners and the gateways' TLS listener, certificates from our own CA.

Clients here speak MQTT v5, so a PUBACK tells whether the broker accepted a publish.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.procs import Mosquitto, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
CLOUD_USER = "hazwatch-cloud"
NOT_AUTHORIZED = 0x87


@dataclass
class Broker:
    """Where the test broker listens and who may log in.

    Attributes:
        plain_port: the cloud's plain listener (loopback).
        cloud_tls_port: the cloud's TLS listener.
        tls_port: the gateways' TLS listener (client id := user name).
    """

    plain_port: int
    cloud_tls_port: int
    tls_port: int
    certs: Path
    passwords: dict[str, str]


def _rewrite(text: str, pattern: str, replacement: str) -> str:
    text, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, f"mosquitto.conf changed: no single line matches {pattern!r}"
    return text


def _config(workdir: Path, broker: Broker) -> str:
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = text.replace("/etc/mosquitto/hazwatch/", f"{workdir}/")
    listeners = (
        (r"^listener 1883 127\.0\.0\.1$", broker.plain_port),
        (r"^listener 8884$", broker.cloud_tls_port),
        (r"^listener 8883$", broker.tls_port),
    )
    for shipped, port in listeners:
        text = _rewrite(text, shipped, f"listener {port} 127.0.0.1")
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
    _add_user(workdir / "cloud.passwd", CLOUD_USER, "cloud-" + unique_id)
    _add_user(workdir / "gateways.passwd", f"{unique_id}a", "pa")
    _add_user(workdir / "gateways.passwd", f"{unique_id}b", "pb")
    passwords = {CLOUD_USER: "cloud-" + unique_id, f"{unique_id}a": "pa", f"{unique_id}b": "pb"}
    # mosquitto started as root drops to user "mosquitto"; let it read the test's files.
    for path in (workdir, certs, *workdir.iterdir(), *certs.iterdir()):
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else 0o644)
    broker = Broker(free_port(), free_port(), free_port(), certs, passwords)
    server = Mosquitto(
        workdir, extra_config=_config(workdir, broker), listener=False, port=broker.plain_port
    )
    with server.running():
        yield broker


def cloud_client(broker: Broker, *, identifier: str | None = None) -> aiomqtt.Client:
    """A client of user ``hazwatch-cloud`` on the cloud's plain listener."""
    return aiomqtt.Client(
        "127.0.0.1", broker.plain_port, username=CLOUD_USER, password=broker.passwords[CLOUD_USER],
        identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5, timeout=10,
    )  # fmt: skip


def gateway_client(
    broker: Broker, user: str, *, identifier: str | None = None, port: int | None = None
) -> aiomqtt.Client:
    """A client of gateway ``user`` over TLS, by default on the gateways' listener."""
    tls = aiomqtt.TLSParameters(ca_certs=str(broker.certs / "ca.crt"))
    return aiomqtt.Client(
        "localhost", port or broker.tls_port, username=user, password=broker.passwords[user],
        identifier=identifier, tls_params=tls, protocol=aiomqtt.ProtocolVersion.V5, timeout=10,
    )  # fmt: skip


async def next_payload(sub: aiomqtt.Client, *, timeout_s: float = 10.0) -> tuple[str, bytes]:
    """The topic and payload of the next message ``sub`` receives."""
    async with asyncio.timeout(timeout_s):
        message = await anext(aiter(sub.messages))
    assert isinstance(message.payload, bytes)
    return str(message.topic), message.payload


@dataclass
class Events:
    """What the broker told one client: PUBACK reason codes in order, and disconnections."""

    pubacks: list[ReasonCode] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)


def watch(client: aiomqtt.Client) -> Events:
    """Record ``client``'s PUBACK reason codes and disconnections (aiomqtt hides both)."""
    events = Events()
    paho = client._client
    on_publish, on_disconnect = paho.on_publish, paho.on_disconnect

    def publish(*args: Any) -> None:
        events.pubacks.append(args[3])
        if on_publish is not None:
            on_publish(*args)

    def disconnect(*args: Any) -> None:
        events.disconnects.append(str(args[3]))
        if on_disconnect is not None:
            on_disconnect(*args)

    paho.on_publish, paho.on_disconnect = publish, disconnect
    return events
