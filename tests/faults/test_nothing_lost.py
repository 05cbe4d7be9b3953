"""Nothing lost end to end: a real agent, a real broker, the real cloud ingest, faults in between.

Every seq the agent assigns must end up durable in the cloud (the de-duplication ledger admits a
seq only once its write is durable, so the ledger is the count), and the edge buffer must drain
to empty (every row acknowledged by the cloud). Faults: the broker SIGKILLed with and without
persistence (Mosquitto 2.0 does not restore a ``$share`` subscription from its persistence file,
so it acknowledges the edge's publishes with nobody subscribed), a cloud worker SIGKILLed
mid-stream, and a client kicking the cloud off the broker by taking its client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import text

from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.ingest import Ingest, serve
from cloud.live import MemoryLiveState
from edge.agent import Agent
from tests.cloud.conftest import register
from tests.cloud.ingest_support import until
from tests.edge.agent.helpers import persistent_mosquitto, running, settings
from tests.edge.agent.ticker import Ticker
from tests.support.procs import Mosquitto, free_port, wait_port

pytestmark = [pytest.mark.services, pytest.mark.slow]

CLOUD_ID = "hazwatch-cloud:faults"


async def _lost(store: Store, gateway_id: str, first: int, last: int) -> list[int]:
    seen = set(await store.seen_seqs(gateway_id, list(range(first, last + 1))))
    return [q for q in range(first, last + 1) if q not in seen]


async def _drained(agent: Agent, *, timeout_s: float = 60.0) -> None:
    """Stop the source, then wait until the cloud has acknowledged every row."""
    assert agent.buffer is not None
    async with asyncio.timeout(timeout_s):
        while agent.buffer.depth:  # noqa: ASYNC110  # a plain attribute
            await asyncio.sleep(0.05)


async def _readings(store: Store, gateway_id: str) -> int:
    async with store.engine.connect() as conn:
        rows = await conn.scalar(
            text("SELECT count(*) FROM readings WHERE gateway_id = :gw"), {"gw": gateway_id}
        )
    return int(rows or 0)


async def _repeats(store: Store, gateway_id: str) -> int:
    async with store.engine.connect() as conn:
        rows = await conn.scalar(
            text("SELECT count(*) - count(DISTINCT seq) FROM readings WHERE gateway_id = :gw"),
            {"gw": gateway_id},
        )
    return int(rows or 0)


@contextlib.asynccontextmanager
async def _cloud(store: Store, port: int) -> AsyncIterator[Ingest]:
    """The cloud ingest in this process: shared subscription, fixed id, kept session."""
    live = MemoryLiveState()
    ingest = Ingest(store=store, live=live, ledger=store, alerts=AlertService(store, live))
    task = asyncio.create_task(
        serve(ingest, port=port, share_group="hz", identifier=CLOUD_ID, backoff_max_s=1.0)
    )
    try:
        yield ingest
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("persistence", [True, False])
async def test_a_broker_killed_mid_stream_loses_nothing(
    tmp_path: Path, unique_id: str, persistence: bool
) -> None:
    gw = unique_id
    broker = persistent_mosquitto(tmp_path / "mq") if persistence else Mosquitto(tmp_path / "mq")
    store = await Store.connect(f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}")
    await register(store, "e1", gw)
    ticker = Ticker(per_tick=5, tick_s=0.01, alarm_every=40, fix_every=10)
    config = settings(tmp_path, gw, port=broker.port, delete_on="cloud", ack_timeout_s=5.0)
    try:
        with broker.running():
            async with _cloud(store, broker.port) as ingest, running(config, [ticker]) as agent:
                assert agent.buffer is not None
                first = agent.buffer.next_seq
                await until(lambda: ingest.counters["accepted.reading"] > 200)
                if persistence:
                    os.kill(broker.pid, signal.SIGUSR1)  # the sessions are on disk, then a crash
                    await asyncio.sleep(0.3)
                broker.kill()
                await asyncio.sleep(2.0)
                broker.start()
                received = ingest.counters["received"]
                await until(lambda: ingest.counters["received"] > received + 20)
                ticker.count = ticker.emitted  # the source stops; the backlog drains
                await _drained(agent)
                last = agent.buffer.next_seq - 1
        assert last - first > 400
        assert await _lost(store, gw, first, last) == []
        assert await _repeats(store, gw) == 0
    finally:
        await store.close()


async def test_a_client_taking_the_clouds_id_loses_nothing(tmp_path: Path, unique_id: str) -> None:
    """Without the shipped broker config any client may take the cloud's client id: the cloud is
    kicked off again and again, and still nothing is lost (acknowledged only once archived)."""
    gw = unique_id
    broker = Mosquitto(tmp_path / "mq")
    store = await Store.connect(f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}")
    await register(store, "e1", gw)
    ticker = Ticker(per_tick=5, tick_s=0.01, count=1500)
    config = settings(tmp_path, gw, port=broker.port, delete_on="cloud", ack_timeout_s=2.0)

    async def rogue() -> None:
        while True:
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client("127.0.0.1", broker.port, identifier=CLOUD_ID):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.4)

    try:
        with broker.running():
            async with _cloud(store, broker.port) as ingest, running(config, [ticker]) as agent:
                assert agent.buffer is not None
                first = agent.buffer.next_seq
                kicker = asyncio.create_task(rogue())
                await until(lambda: ticker.emitted == 1500, timeout_s=30)
                kicker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await kicker
                await _drained(agent)
                last = agent.buffer.next_seq - 1
                assert ingest.counters["mqtt_reconnect"] >= 2
        assert await _lost(store, gw, first, last) == []
        assert await _repeats(store, gw) == 0
        assert await _readings(store, gw) == 1500
    finally:
        await store.close()


@contextlib.contextmanager
def _cloud_process(tmp_path: Path, mqtt_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``hazwatch cloud`` as its own process (SQLite archive, kept MQTT session)."""
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "cloud.db"}"\n'
        f'[mqtt]\nport = {mqtt_port}\nshare_group = "hz"\nclient_id = "{CLOUD_ID}"\n'
        f"[http]\nport = {free_port()}\n"
    )
    log = (tmp_path / "cloud.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hazwatch.cli", "cloud", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


async def test_a_cloud_worker_killed_mid_stream_loses_nothing(
    tmp_path: Path, unique_id: str
) -> None:
    gw = unique_id
    broker = persistent_mosquitto(tmp_path / "mq")
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    store = await Store.connect(url)
    await register(store, "e1", gw)
    ticker = Ticker(per_tick=10, tick_s=0.01, alarm_every=50)
    config = settings(tmp_path, gw, port=broker.port, delete_on="cloud", ack_timeout_s=5.0)
    try:
        with broker.running(), _cloud_process(tmp_path, broker.port) as cloud:
            async with running(config, [ticker]) as agent:
                assert agent.buffer is not None
                first = agent.buffer.next_seq
                await _until_archived(store, gw, first + 500)
                cloud.send_signal(signal.SIGKILL)  # between receipt and archive, or not
                cloud.wait(timeout=10)
                await asyncio.sleep(1.0)
                with _cloud_process(tmp_path, broker.port):
                    await _until_archived(store, gw, ticker_seq(agent) + 200)
                    ticker.count = ticker.emitted
                    await _drained(agent)
                    last = agent.buffer.next_seq - 1
        assert await _lost(store, gw, first, last) == []
        assert await _repeats(store, gw) == 0
    finally:
        await store.close()


def ticker_seq(agent: Agent) -> int:
    assert agent.buffer is not None
    return agent.buffer.next_seq


async def _until_archived(store: Store, gateway_id: str, seq: int, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not await store.seen_seqs(gateway_id, [seq]):  # noqa: ASYNC110  # a query
            await asyncio.sleep(0.1)


def test_the_cloud_process_helper_starts_a_listening_api(tmp_path: Path) -> None:
    """The subprocess helper itself: it comes up (else the kill test would prove nothing)."""
    broker = Mosquitto(tmp_path / "mq")
    with broker.running(), _cloud_process(tmp_path, broker.port) as proc:
        config = (tmp_path / "cloud.toml").read_text()
        port = int(config.rsplit("port = ", 1)[1].split()[0])
        wait_port(port, timeout_s=20)
        assert proc.poll() is None
