"""Benchmark of the edge buffer and forwarder (``python bench/bench_buffer.py``).

Figures, each the median of several runs with a baseline measured in the same run:

* append: ``Buffer.put`` (validate, encode, number) with group commits running, until everything
  is committed, for a mix of readings and fixes and for readings only; baseline a bare
  ``sqlite3`` ``executemany`` insert of the same rows already encoded (WAL, synchronous=NORMAL).
* drain: items deleted per second after the cloud's acknowledgement, through the real
  Mosquitto at 127.0.0.1:1883 (a unique gateway id; a minimal acker in this process plays the
  cloud: it decodes each batch and acknowledges its seqs at once); also the same deleting on
  the broker's PUBACK (``delete_on = "broker"``); baseline a bare aiomqtt loop publishing the
  same batch payloads with QoS 1, one at a time.
* 1M backlog: seconds to drain one million stored items, and the peak RSS of the draining
  process (a child process that only opens the buffer and drains it).

Aims: append >= 100,000 items/s, drain >= 100,000 items/s, 1M backlog < 15 s, RSS < 100 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiomqtt  # noqa: E402

import wire  # noqa: E402
from edge.buffer import Buffer  # noqa: E402
from edge.forward import DeleteOn, Forwarder, MqttSettings  # noqa: E402

HOST, PORT = "127.0.0.1", 1883
NOW_MS = int(time.time() * 1000)


def item(n: int) -> wire.Item:
    if n % 5 == 4:
        return wire.Fix(seq=0, ts=NOW_MS + n, asset=f"truck-{n % 40}", lat=30.1, lon=120.2,
                        speed_kmh=42.5, course=90.0, hdop=0.9, sats=12)  # fmt: skip
    return wire.Reading(seq=0, ts=NOW_MS + n, site="farm-1", point=f"T{n % 200}.LT01",
                        value=n * 0.25, unit="m")  # fmt: skip


async def fill(path: Path, count: int) -> None:
    """Store ``count`` items (untimed set-up of the drain figures)."""
    async with Buffer(path) as buffer:
        for start in range(0, count, 20_000):
            for n in range(start, min(count, start + 20_000)):
                buffer.put(item(n))
            await buffer.flush()


async def append_rate(path: Path, items: list[wire.Item]) -> float:
    async with Buffer(path) as buffer:
        committer = asyncio.create_task(buffer.run())
        started = time.perf_counter()
        for start in range(0, len(items), 1000):
            for one in items[start : start + 1000]:
                buffer.put(one)
            await asyncio.sleep(0)
        await buffer.flush()
        elapsed = time.perf_counter() - started
        committer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committer
    return len(items) / elapsed


def sqlite_rate(path: Path, items: list[wire.Item]) -> float:
    rows = [(n, 1, 0, NOW_MS, "k", wire.encode_item(i)) for n, i in enumerate(items, 1)]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, lane, kind, ts, key, body)")
    started = time.perf_counter()
    for start in range(0, len(rows), 5000):
        db.execute("BEGIN")
        db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", rows[start : start + 5000])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return len(rows) / elapsed


@contextlib.asynccontextmanager
async def acker(gateway_id: str) -> AsyncIterator[None]:
    """A minimal cloud: acknowledges every batch of ``gateway_id`` as soon as it arrives."""
    ready = asyncio.Event()

    async def run() -> None:
        async with aiomqtt.Client(HOST, PORT) as client:
            for channel in ("data", "alarm"):
                await client.subscribe(f"hz/v1/{gateway_id}/{channel}", qos=1)
            ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                seqs = [i.seq for i in wire.decode_batch(message.payload).items]
                ack = wire.Ack(gw=gateway_id, ts=0, seqs=wire.seq_ranges(seqs))
                await client.publish(wire.ack_topic(gateway_id), wire.encode_ack(ack), qos=1)

    task = asyncio.create_task(run())
    await ready.wait()
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def drain(path: Path, gateway_id: str, *, delete_on: DeleteOn = "cloud") -> tuple[int, float]:
    """Drain the buffer at ``path`` into Mosquitto; return (items, seconds)."""
    async with Buffer(path) as buffer, acker(gateway_id):
        total = buffer.depth
        forwarder = Forwarder(
            buffer,
            gateway_id=gateway_id,
            mqtt=MqttSettings(host=HOST, port=PORT, delete_on=delete_on),
        )
        started = time.perf_counter()
        task = asyncio.create_task(forwarder.run())
        while buffer.depth:  # noqa: ASYNC110  # a plain counter, polled
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return total, elapsed


async def bare_publish_rate(count: int, gateway_id: str) -> float:
    bodies = [wire.encode_item(item(n)) for n in range(1000)]
    payload = wire.assemble_batch(gateway_id, bodies)
    async with aiomqtt.Client(HOST, PORT) as client:
        started = time.perf_counter()
        for _ in range(count // 1000):
            await client.publish(wire.data_topic(gateway_id), payload, qos=1)
        elapsed = time.perf_counter() - started
    return count / elapsed


def child_drain(path: str, gateway_id: str) -> None:
    """Run in a child process: drain, then print items, seconds and peak RSS as JSON."""
    items, seconds = asyncio.run(drain(Path(path), gateway_id))
    # VmHWM, not ru_maxrss: the latter carries the parent's peak over fork + exec.
    status = Path("/proc/self/status").read_text().splitlines()
    peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    print(json.dumps({"items": items, "seconds": seconds, "peak_rss_mb": peak_mb}))


def backlog_run(workdir: Path, count: int) -> dict[str, float]:
    path = workdir / f"backlog-{uuid.uuid4().hex[:6]}.db"
    asyncio.run(fill(path, count))
    out = subprocess.run(
        [sys.executable, __file__, "--drain-child", str(path), f"bench-{uuid.uuid4().hex[:8]}"],
        check=True, capture_output=True, text=True, cwd=REPO,
    ).stdout  # fmt: skip
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def report(name: str, values: list[float], unit: str, baseline: list[float] | None = None) -> None:
    median = statistics.median(values)
    line = f"{name:<34} median {median:>12,.1f} {unit}" if median < 100 else ""
    line = line or f"{name:<34} median {median:>12,.0f} {unit}"
    if baseline:
        ratio = statistics.median(values) / statistics.median(baseline)
        line += f"   baseline {statistics.median(baseline):>12,.0f} {unit}   ratio {ratio:.2f}"
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drain-child", nargs=2, metavar=("DB", "GATEWAY"), help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.drain_child:
        child_drain(*args.drain_child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-buffer-") as tmp:
        workdir = Path(tmp)
        mixed = [item(n) for n in range(200_000)]
        readings = [item(n) for n in range(250_000) if n % 5 != 4][:200_000]
        cases = (("readings and fixes 4:1", mixed), ("readings only", readings))
        for case, (name, items) in enumerate(cases):
            repeat = range(args.runs)
            ours = [asyncio.run(append_rate(workdir / f"a{case}-{r}.db", items)) for r in repeat]
            bare = [sqlite_rate(workdir / f"s{case}-{r}.db", items) for r in repeat]
            report(f"append, {name}", ours, "items/s", bare)

        drains: list[float] = []
        pubacks: list[float] = []
        bares: list[float] = []
        modes: tuple[tuple[DeleteOn, list[float]], ...] = (("cloud", drains), ("broker", pubacks))
        for run in range(3):
            for delete_on, rates in modes:
                path = workdir / f"d{run}-{delete_on}.db"
                asyncio.run(fill(path, 200_000))
                gateway = f"bench-{uuid.uuid4().hex[:8]}"
                count, seconds = asyncio.run(drain(path, gateway, delete_on=delete_on))
                rates.append(count / seconds)
            bares.append(asyncio.run(bare_publish_rate(200_000, f"bench-{uuid.uuid4().hex[:8]}")))
        report("drain, deleted on the cloud's ack", drains, "items/s", bares)
        report("drain, deleted on the PUBACK", pubacks, "items/s", bares)

        runs = [backlog_run(workdir, args.backlog) for _ in range(2)]
        report(f"{args.backlog:,} backlog drain time", [r["seconds"] for r in runs], "s")
        print(
            f"{'  (as a rate)':<34} median {statistics.median(r['items'] / r['seconds'] for r in runs):>12,.0f} items/s"
        )
        report("peak RSS of the draining process", [r["peak_rss_mb"] for r in runs], "MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
