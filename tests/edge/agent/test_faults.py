"""Fault injection with real brokers: a collector checks every seq arrived and alarms came first."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from pathlib import Path

import aiomqtt
import pytest

import wire
from edge.agent import Agent
from tests.edge.agent.collector import Collector
from tests.edge.agent.helpers import as_root_line, persistent_mosquitto, prefill, running, settings
from tests.edge.agent.ticker import Ticker
from tests.support.procs import Mosquitto

pytestmark = pytest.mark.services


def assert_complete(collector: Collector, first: int, last: int) -> None:
    assert collector.missing(first, last) == []
    assert collector.alarm_order_violations() == []
    assert collector.bad == []


async def test_broker_killed_and_restarted_mid_stream(tmp_path: Path, unique_id: str) -> None:
    broker = persistent_mosquitto(tmp_path / "mq")
    ticker = Ticker(per_tick=5, tick_s=0.01, alarm_every=25)
    with broker.running():
        async with (
            Collector(unique_id, port=broker.port, persistent=True) as collector,
            running(settings(tmp_path, unique_id, port=broker.port), [ticker]) as agent,
        ):
            assert agent.buffer is not None
            assert agent.forwarder is not None
            await collector.wait(lambda: len(collector.seqs()) >= 300)
            os.kill(broker.pid, signal.SIGUSR1)  # save the collector's session, then crash
            await collector.wait(lambda: (tmp_path / "mq" / "store" / "mosquitto.db").exists())
            broker.kill()
            # Items from here on were taken during the outage. (The broker may also hold data
            # it accepted before the crash and had not yet delivered to the collector: that
            # comes first after the restart, from the broker's own store, and says nothing of
            # the agent's order.)
            outage_first = agent.buffer.next_seq
            outage_alarms = ticker.alarms
            await collector.wait(lambda: ticker.alarms >= outage_alarms + 10)
            assert not agent.forwarder.connected.is_set()
            # Pause the source while the order is checked: an item taken between the newest
            # claim and the oldest one may join the oldest (a small backlog drains in one go).
            ticker.count = ticker.emitted
            broker.start()
            mark = len(collector.arrivals)

            def after_outage() -> list[tuple[str, list[int]]]:
                return [
                    (channel, seqs)
                    for channel, seqs in collector.new_after(mark)
                    if max(seqs) >= outage_first
                ]

            def data_batches() -> list[list[int]]:
                return [seqs for channel, seqs in after_outage() if channel == "data"]

            await collector.wait(lambda: len(data_batches()) >= 2)
            ticker.count = ticker.emitted + 100
            await collector.wait(lambda: ticker.emitted == ticker.count)
            await agent.buffer.flush()
            last = agent.buffer.next_seq - 1
            await collector.wait(lambda: not collector.missing(last - 50, last))
            first = min(collector.seqs())
            await collector.wait(lambda: not collector.missing(first, last))
    assert after_outage()[0][0] == "alarm", "the alarm backlog goes first"
    data = data_batches()
    assert max(data[0]) > max(data[1]), "current data first, then the backlog beside it"
    assert min(data[1]) < min(data[0])
    assert_complete(collector, first, last)
    values = {i.value for i in collector.items() if isinstance(i, wire.Reading)}
    assert 0.0 in values
    assert agent.forwarder.counters["connects"] >= 2


async def test_quota_hit_while_alarms_keep_coming(tmp_path: Path, unique_id: str) -> None:
    ticker = Ticker(per_tick=20, tick_s=0.01, alarm_every=10)
    buffer, first = await prefill(
        tmp_path / "buffer.db", ticker, 3000, quota_bytes=80_000, thin_window=300
    )
    drops = buffer.drops
    assert sum(drops.values()) > 1000
    assert set(drops) <= {"reading_thinned", "quota_oldest"}
    outage_last = buffer.next_seq - 1
    config = settings(tmp_path, unique_id, quota_bytes=80_000)
    async with Collector(unique_id) as collector, running(config, [ticker]) as agent:
        assert agent.buffer is not None
        await collector.wait(lambda: ticker.emitted >= 3500)
        ticker.count = ticker.emitted
        await agent.buffer.flush()
        last = agent.buffer.next_seq - 1
        await collector.wait(lambda: agent.buffer is not None and agent.buffer.depth == 0)
        await collector.wait(lambda: last in collector.seqs())
    alarms = collector.of_kind(wire.Alarm)
    assert len({a.seq for a in alarms}) == ticker.alarms, "no alarm is ever dropped"
    assert collector.arrivals[0][0] == "alarm", "the alarm backlog goes first"
    assert len(collector.missing(first, outage_last)) == sum(drops.values())
    assert collector.missing(outage_last + 1, last) == []
    assert collector.alarm_order_violations() == []


async def test_corrupt_database_is_replaced_and_reported(
    tmp_path: Path, unique_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    ticker = Ticker(per_tick=5, tick_s=0.01, alarm_every=20)
    old, _ = await prefill(tmp_path / "buffer.db", ticker, 500)
    with (tmp_path / "buffer.db").open("r+b") as handle:
        handle.write(os.urandom(8192))
    caplog.set_level(logging.ERROR, logger="edge.buffer")
    async with (
        Collector(unique_id) as collector,
        running(settings(tmp_path, unique_id), [ticker]) as agent,
    ):
        assert agent.buffer is not None
        await collector.wait(lambda: len(collector.seqs()) >= 200)
        ticker.count = ticker.emitted
        await agent.buffer.flush()
        last = agent.buffer.next_seq - 1
        buffer = agent.buffer
        await collector.wait(lambda: last in collector.seqs() and buffer.depth == 0)
    assert "is corrupt" in caplog.text
    assert "moved aside" in caplog.text
    channel, (fault, *_) = collector.arrivals[0]
    assert channel == "alarm"
    assert isinstance(fault, wire.Alarm)
    assert fault.code == "buffer_corrupt"
    assert fault.level == "fault"
    assert fault.seq > old.next_seq - 1
    assert_complete(collector, fault.seq, last)
    assert len([n for n in os.listdir(tmp_path) if n.startswith("buffer.db.corrupt-")]) == 1


def password_broker(workdir: Path) -> Mosquitto:
    workdir.mkdir(parents=True)
    passwords = workdir / "passwords"
    for index, (user, password) in enumerate((("gw", "right"), ("reader", "r"))):
        flags = ["-b", "-c"] if index == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(passwords), user, password], check=True)
    os.chmod(passwords, 0o644)
    config = f"{as_root_line()}allow_anonymous false\npassword_file {passwords}\n"
    return Mosquitto(workdir, extra_config=config)


async def test_refused_credentials_keep_the_data(
    tmp_path: Path, unique_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = password_broker(tmp_path / "mq")
    ticker = Ticker(per_tick=5, tick_s=0.01, alarm_every=30)
    caplog.set_level(logging.ERROR, logger="edge.forward")
    with broker.running():
        collector = Collector(unique_id, port=broker.port, username="reader", password="r")
        wrong = settings(tmp_path, unique_id, port=broker.port, username="gw", password="wrong")
        async with collector, running(wrong, [ticker]) as agent:
            assert agent.buffer is not None
            await collector.wait(lambda: "refused the connection" in caplog.text)
            await collector.wait(lambda: ticker.emitted >= 300)
        assert "username, password" in caplog.text
        assert agent.buffer.depth >= 300, "nothing sent, nothing lost"
        ticker.count = ticker.emitted
        last = agent.buffer.next_seq - 1
        first = last - agent.buffer.depth + 1
        right = settings(tmp_path, unique_id, port=broker.port, username="gw", password="right")
        async with collector, running(right, []) as agent:
            await collector.wait(lambda: last in collector.seqs())
            await collector.wait(lambda: agent.buffer is not None and agent.buffer.depth == 0)
    assert_complete(collector, first, last)
    assert collector.arrivals[0][0] == "alarm"


async def test_publishes_the_acl_refuses_keep_the_data(
    tmp_path: Path, unique_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway id that is not its broker user: the broker acknowledges and drops a v3.1.1
    publish it refuses, so the agent must notice the refusal (v5 PUBACK) and delete nothing."""
    broker = password_broker(tmp_path / "mq")
    acl = tmp_path / "mq" / "acl"
    acl.write_text("pattern write hz/v1/%u/#\nuser reader\ntopic read hz/v1/#\n")
    os.chmod(acl, 0o644)
    with broker.config_path.open("a") as config:
        config.write(f"acl_file {acl}\n")
    ticker = Ticker(per_tick=5, tick_s=0.01, alarm_every=30)
    caplog.set_level(logging.ERROR, logger="edge.forward")
    with broker.running():
        wrong = settings(tmp_path, unique_id, port=broker.port, username="gw", password="right")
        async with Collector(unique_id, port=broker.port, username="reader", password="r") as c:
            async with running(wrong, [ticker]) as agent:
                assert agent.buffer is not None
                buffer = agent.buffer
                await c.wait(lambda: "refused a publish" in caplog.text or buffer.depth == 0)
                await c.wait(lambda: ticker.emitted >= 300)
            assert c.items() == []
    assert "refused a publish" in caplog.text
    assert "[gateway] id" in caplog.text
    assert buffer.counters["acked"] == 0, "nothing the broker dropped was deleted"
    assert buffer.depth == ticker.emitted


async def test_the_embedded_broker_is_used_with_mqtt_3_1_1(tmp_path: Path, unique_id: str) -> None:
    from simulators.broker import embedded_broker
    from tests.support.procs import free_port

    port = free_port()
    ticker = Ticker(per_tick=5, tick_s=0.01, alarm_every=30)
    async with (
        embedded_broker(port=port),
        Collector(unique_id, port=port) as collector,
        running(settings(tmp_path, unique_id, port=port, protocol="3.1.1"), [ticker]) as agent,
    ):
        await collector.wait(lambda: len(collector.seqs()) >= 100)
        assert agent.forwarder is not None
        assert agent.forwarder.protocol == aiomqtt.ProtocolVersion.V311


async def test_a_stop_as_the_connection_drops_ends_the_agent(
    tmp_path: Path, unique_id: str
) -> None:
    """On Python 3.11 a cancellation landing while the session's task group fails was
    swallowed, and the forwarder went on reconnecting for ever: stop hung."""
    for attempt in range(6):
        broker = Mosquitto(tmp_path / f"mq{attempt}")
        with broker.running():
            config = settings(tmp_path / str(attempt), unique_id, port=broker.port)
            ticker = Ticker(per_tick=5, tick_s=0.01)
            agent = Agent(config, [ticker])
            task = asyncio.create_task(agent.run())
            async with asyncio.timeout(10):
                while agent.forwarder is None or not agent.forwarder.connected.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            broker.kill()
            await asyncio.sleep(attempt * 0.002)
            agent.stop()
            async with asyncio.timeout(5):
                await task
