"""The forwarder over TLS with a client certificate and a password (a test-owned Mosquitto)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import wire
from tests.edge.agent.collector import Collector
from tests.edge.agent.helpers import as_root_line, running, settings
from tests.edge.agent.ticker import Ticker
from tests.support.procs import Mosquitto, free_port

pytestmark = pytest.mark.services

MAKE_CERTS = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "make-certs.sh"


def tls_broker(workdir: Path, gateway_id: str) -> tuple[Mosquitto, int, Path]:
    certs = workdir / "certs"
    subprocess.run(
        ["sh", str(MAKE_CERTS), str(certs), "localhost", "127.0.0.1"],
        check=True, capture_output=True, timeout=60, env={**os.environ, "CLIENT": gateway_id},
    )  # fmt: skip
    passwords = workdir / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), gateway_id, "pw"], check=True)
    plain, tls = free_port(), free_port()
    config = (
        f"{as_root_line()}allow_anonymous false\npassword_file {passwords}\n"
        f"listener {plain} 127.0.0.1\n"
        f"listener {tls} 127.0.0.1\ncafile {certs}/ca.crt\ncertfile {certs}/server.crt\n"
        f"keyfile {certs}/server.key\nrequire_certificate true\n"
    )
    return Mosquitto(workdir, extra_config=config, listener=False, port=plain), tls, certs


async def test_tls_with_client_certificate_and_password(tmp_path: Path, unique_id: str) -> None:
    broker, tls_port, certs = tls_broker(tmp_path / "mq", unique_id)
    ticker = Ticker(per_tick=5, alarm_every=10)
    config = settings(
        tmp_path, unique_id, port=tls_port, username=unique_id, password="pw", tls=True,
        tls_ca=certs / "ca.crt", tls_cert=certs / "client.crt", tls_key=certs / "client.key",
    )  # fmt: skip
    with broker.running():
        async with (
            Collector(unique_id, port=broker.port, username=unique_id, password="pw") as collector,
            running(config, [ticker]) as agent,
        ):
            await collector.wait(lambda: len(collector.seqs()) >= 100)
            assert agent.forwarder is not None
            assert agent.forwarder.counters["connects"] == 1
    assert collector.alarm_order_violations() == []
    assert "online" in collector.statuses
    assert any(isinstance(item, wire.Alarm) for item in collector.items())
