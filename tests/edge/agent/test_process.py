"""The real ``hazwatch edge`` process: killed with SIGKILL mid-stream, restarted, stopped cleanly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import wire
from tests.edge.agent.collector import Collector

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]


def write_config(path: Path, gateway_id: str, buffer: Path, *, ticker: bool) -> Path:
    text = f"""
[gateway]
id = "{gateway_id}"
[mqtt]
host = "127.0.0.1"
port = 1883
batch_items = 300
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[buffer]
path = "{buffer}"
[health]
interval_s = 0.5
"""
    if ticker:
        text += (
            '[plugins.tick]\nmodule = "tests.edge.agent.ticker"\nper_tick = 30\nalarm_every = 20\n'
        )
    path.write_text(text)
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hazwatch.cli", "edge", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def next_seq(buffer: Path) -> int:
    with sqlite3.connect(buffer) as db:
        (value,) = db.execute("SELECT value FROM meta WHERE name = 'next_seq'").fetchone()
    return int(value)


async def test_agent_killed_mid_batch_and_restarted(tmp_path: Path, unique_id: str) -> None:
    buffer = tmp_path / "state" / "buffer.db"
    with_ticker = write_config(tmp_path / "edge.toml", unique_id, buffer, ticker=True)
    drain_only = write_config(tmp_path / "drain.toml", unique_id, buffer, ticker=False)
    log = tmp_path / "agent.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with Collector(unique_id) as collector:
            procs.append(start(with_ticker, log))
            await collector.wait(lambda: len(collector.seqs()) >= 1500)
            procs[-1].kill()  # SIGKILL while batches are in flight
            assert procs[-1].wait(timeout=10) == -signal.SIGKILL
            await collector.wait(lambda: "offline" in collector.statuses)  # the last will
            seen = len(collector.seqs())
            online = collector.statuses.count("online")
            procs.append(start(with_ticker, log))
            await collector.wait(lambda: collector.statuses.count("online") > online)
            await collector.wait(lambda: len(collector.seqs()) >= seen + 1500)
            procs[-1].send_signal(signal.SIGTERM)
            assert procs[-1].wait(timeout=15) == 0
            last = next_seq(buffer) - 1
            online = collector.statuses.count("online")
            procs.append(start(drain_only, log))  # whatever SIGTERM left behind
            await collector.wait(lambda: collector.statuses.count("online") > online)
            first = min(collector.seqs())
            await collector.wait(lambda: not collector.missing(first, last), timeout_s=60)
            procs[-1].send_signal(signal.SIGTERM)
            assert procs[-1].wait(timeout=15) == 0
            await collector.wait(lambda: collector.statuses[-1] == "offline", timeout_s=5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    first_item = min(collector.items(), key=lambda item: item.seq)
    assert isinstance(first_item, wire.Reading)
    assert first_item.value == 0.0, "nothing was lost before the first item seen"
    assert collector.missing(first, last) == []
    assert collector.alarm_order_violations() == []
    assert collector.bad == []
    health = [i for i in collector.items() if isinstance(i, wire.Health)]
    assert health
    assert (
        health[-1].devices.get("ticker") == "online" or health[0].devices.get("ticker") == "online"
    )
    assert any("ticker.emitted" in h.counters for h in health)
    assert collector.statuses.count("online") >= 3
