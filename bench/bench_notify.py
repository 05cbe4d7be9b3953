"""Benchmark of the notification outbox (``python bench/bench_notify.py``).

Figures, each the median of several runs, on SQLite (a temporary file) and PostgreSQL
(127.0.0.1:5432, a schema of its own):

* throughput: notifications per second from alert history to a local webhook receiver
  (sweep into the outbox, lease, signed POST, record the attempt), with one and two
  dispatchers on the same archive (flood control off; ``--alerts`` alerts times
  ``--recipients`` recipients);
* outage: the receiver answers 503 for a while (then is down: connections refused), then comes
  back. Every notification must be delivered, and each exactly once to the receiver's 2xx
  answers: lost and duplicated counts are printed and must be 0.

The receiver is an asyncio HTTP/1.1 server (keep-alive) in this process, counting each
notification id it answers 200. The throughput includes the sweep from alert history. On a
2-core machine one dispatcher gives a few hundred per second (about 370 on SQLite, 420 on
PostgreSQL); the HTTP client (httpx) takes most of the time, the archive's one transaction per
claimed batch little. A second dispatcher in the same process adds contention, not speed: it
is there to show that two never send one notification twice.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from cloud.alerts import AlertService  # noqa: E402
from cloud.archive import Store  # noqa: E402
from cloud.models import Enterprise  # noqa: E402
from cloud.notify.channels import WebhookChannel  # noqa: E402
from cloud.notify.config import NotifySettings  # noqa: E402
from cloud.notify.dispatch import Dispatcher  # noqa: E402
from cloud.notify.records import Endpoint, Recipient  # noqa: E402

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SETTINGS = NotifySettings(
    batch=200, concurrency=8, flood_max=0, backoff_base_s=0.05, backoff_max_s=0.2,
    timeout_s=5, poll_s=0.01, escalate_warning_s=0, escalate_critical_s=0,
)  # fmt: skip


class Receiver:
    """A webhook receiver: answers ``status`` (200 by default) and counts the ids it took."""

    def __init__(self) -> None:
        self.status = 200
        self.taken: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                code = self.status
                if code == 200:
                    self.taken[headers.get("x-hazwatch-notification", "?")] += 1
                reason = "OK" if code == 200 else "Unavailable"
                writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # what asyncio.Server.close_clients does (3.13)
                writer.close()
            await self._server.wait_closed()
            self._server = None


@asynccontextmanager
async def archive(backend: str) -> AsyncIterator[Store]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            store = await Store.connect(f"sqlite+aiosqlite:///{folder}/bench.db")
            try:
                yield store
            finally:
                await store.close()
        return
    schema = "hzb_" + uuid.uuid4().hex[:10]
    store = await Store.connect(PG_URL, schema=schema)
    try:
        yield store
    finally:
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await store.close()


async def seed(store: Store, url: str, alerts: int, recipients: int) -> int:
    """Recipients and alerts (untimed); return how many notifications they make."""
    await store.put_enterprise(Enterprise(id="e1", name="e1", region="320281"))
    for n in range(recipients):
        endpoint = Endpoint(channel="webhook", address=f"{url}/r{n}", secret="bench-secret-0001")
        await store.put_recipient(
            Recipient(id=f"r{n}", tier="enterprise", enterprise_id="e1", channels=(endpoint,))
        )
    service = AlertService(store)
    now_ms = int(time.time() * 1000)
    for n in range(alerts):
        await service.raise_condition(
            enterprise_id="e1", key=f"asset:t{n}:speed", kind="speed", level="warning",
            now_ms=now_ms, asset_id=f"t{n}",
        )  # fmt: skip
    return alerts * recipients


async def drain(workers: list[Dispatcher], store: Store, expected: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s

    async def loop(worker: Dispatcher) -> None:
        while time.monotonic() < deadline:
            if not await worker.run_once():
                counts = await store.notification_counts()
                if counts.get("sent", 0) >= expected:
                    return
                await asyncio.sleep(SETTINGS.poll_s)

    await asyncio.gather(*(loop(w) for w in workers))


def dispatchers(store: Store, count: int) -> list[Dispatcher]:
    made = []
    for n in range(count):
        hook = WebhookChannel(timeout_s=5, allow_private=True)
        worker = Dispatcher(
            store=store, channels={"webhook": hook}, settings=SETTINGS, worker=f"bench-{n}"
        )
        made.append(worker)
    return made


async def throughput(backend: str, workers: int, alerts: int, recipients: int) -> float:
    receiver = Receiver()
    await receiver.start()
    try:
        async with archive(backend) as store:
            expected = await seed(store, f"http://127.0.0.1:{receiver.port}", alerts, recipients)
            running = dispatchers(store, workers)
            started = time.perf_counter()
            await drain(running, store, expected, limit_s=300)
            elapsed = time.perf_counter() - started
            for worker in running:
                await worker.aclose()
            assert (await store.notification_counts()).get("sent") == expected
            return expected / elapsed
    finally:
        await receiver.stop()


async def outage(backend: str, alerts: int, recipients: int) -> tuple[int, int, int]:
    """Receiver failing, then down, then back: (expected, lost, duplicated)."""
    receiver = Receiver()
    await receiver.start()
    port = receiver.port
    try:
        async with archive(backend) as store:
            expected = await seed(store, f"http://127.0.0.1:{port}", alerts, recipients)
            running = dispatchers(store, 2)
            receiver.status = 503
            await drain(running, store, expected, limit_s=0.5)
            await receiver.stop()  # down: connections refused
            await drain(running, store, expected, limit_s=0.5)
            receiver.port = port
            receiver.status = 200
            await receiver.start()  # back
            await drain(running, store, expected, limit_s=120)
            for worker in running:
                await worker.aclose()
            sent = (await store.notification_counts()).get("sent", 0)
            lost = expected - len(receiver.taken) + (expected - sent)
            duplicated = sum(n - 1 for n in receiver.taken.values())
            return expected, lost, duplicated
    finally:
        await receiver.stop()


async def main(args: argparse.Namespace) -> int:
    failed = False
    for backend in args.backends:
        for workers in (1, 2):
            rates = [
                await throughput(backend, workers, args.alerts, args.recipients)
                for _ in range(args.runs)
            ]
            print(
                f"{backend:10} {workers} dispatcher(s): {statistics.median(rates):8.0f} "
                f"notifications/s (median of {args.runs})",
                flush=True,
            )
        expected, lost, duplicated = await outage(backend, args.alerts // 2, args.recipients)
        print(
            f"{backend:10} outage: {expected} notifications, lost {lost}, duplicated {duplicated}",
            flush=True,
        )
        failed = failed or lost != 0 or duplicated != 0
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--recipients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args())))
