"""End to end per worker: MQTT -> ingest -> rules -> alerts, Redis live state, PostgreSQL archive
(issue 12, benchmarks (b) and (b')).

The world of the issue (10,000 zones, 1,000 routes with trips, 500 lots, 50,000 assets: see
bench/_loadgen_world.py) is registered in a PostgreSQL schema of its own; a Mosquitto of its
own (a plain anonymous listener on a free port: not deploy/mosquitto's TLS listeners, password
files, ACL and client ids forced to the user name) carries the traffic; one worker process runs
what ``cloud/main.py`` runs for ingest (:class:`cloud.ingest.Ingest` with the
:class:`cloud.watch.RuleService` step and :class:`cloud.alerts.AlertService`, the rules' clock,
:func:`cloud.ingest.serve` on a shared subscription) with its live state in Redis under a key
prefix of its own. Load generators (bench/_loadgen.py) are separate processes publishing as
gateways do. Every figure is the median of several runs, beside baselines of the same run:

- (b) fixes/s in messages of 100 fixes (fleet gateways): the worker with rules and alerts, the
  same worker with the rules step off (ingest only: the cost of the rules as a ratio), and the
  generator into a decode-only subscriber. Rate = fixes done between 10% and 90% of a run over
  the time between, the generator publishing as fast as it can (the broker queues the rest).
- (b) latency at a steady 10,000 fixes/s: 1% of the assets are probes that enter a forbidden
  zone of their own every 20 s of observation; from the publish of the fix that confirms the
  entry to the ``alert`` event on the live feed, subscribed the way the WebSocket endpoint is
  (``LiveState.subscribe``): p50, p95, p99.
- (b') messages/s of one fix each, one gateway per vehicle (50,000 gateways): the worker with
  and without rules, and the generator's own capacity: its publish rate (PUBACKs) and what a
  decode-only subscriber receives.

CPU use (cores) of each process during the runs is printed too: worker, generators, broker,
Redis and PostgreSQL share the machine.

    python bench/bench_rules_e2e.py                  # the issue's world (about 10 minutes)
    python bench/bench_rules_e2e.py --quick          # a small world, a few seconds
    python bench/bench_rules_e2e.py --profile DIR    # also cProfile the workers into DIR

Needs ``mosquitto`` installed and the shared Redis and PostgreSQL (``make services``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import aiomqtt
import redis.asyncio as aioredis
from sqlalchemy import text

REPO: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the test helpers: a broker of its own

from _loadgen import gateways  # noqa: E402
from _loadgen_world import FULL, QUICK, Sizes, World, register  # noqa: E402

from cloud.alerts import AlertService  # noqa: E402
from cloud.archive import Store  # noqa: E402
from cloud.config import CloudSettings  # noqa: E402
from cloud.ingest import Ingest, serve  # noqa: E402
from cloud.live import RedisLiveState  # noqa: E402
from cloud.watch import RuleService  # noqa: E402
from tests.support.procs import Mosquitto  # noqa: E402

PG_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL: Final = "redis://127.0.0.1:6379/0"
HERE: Final = Path(__file__).resolve().parent
BROKER_CONFIG: Final = "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 400\n"


@dataclass(frozen=True)
class Setup:
    """How much of everything one bench run does."""

    sizes: Sizes
    runs: int
    batch_ticks: int  # rounds of every asset per throughput run (100 fixes a message)
    single_ticks: int  # rounds of every vehicle per (b') run (one fix a message)
    latency_ticks: int  # rounds per latency run at latency_rate
    latency_rate: int  # fixes/s
    schedule_rate: int  # fixes/s the observation times of throughput runs follow
    processes: int  # generator processes
    clients: int  # MQTT clients per generator process (vehicles' gateways)
    window: int  # publishes in flight per client
    warmup: bool  # every asset once through a new worker before it is measured


FULL_SETUP: Final = Setup(
    sizes=FULL, runs=3, batch_ticks=6, single_ticks=2, latency_ticks=8, latency_rate=10_000,
    schedule_rate=30_000, processes=2, clients=50, window=64, warmup=True,
)  # fmt: skip
QUICK_SETUP: Final = Setup(
    sizes=QUICK, runs=1, batch_ticks=2, single_ticks=1, latency_ticks=4, latency_rate=2_000,
    schedule_rate=10_000, processes=1, clients=8, window=64, warmup=False,
)  # fmt: skip


# -- child processes ------------------------------------------------------------------------


class Child:
    """A process speaking JSON lines on stdout; stdin closed means: stop."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        #: (wall time, count) as the process reports them
        self.samples: list[tuple[float, int]] = [(0.0, 0)]
        self.counter = "fix"
        self._reader: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()  # set on every count the process reports

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def count(self) -> int:
        return self.samples[-1][1]

    async def start(self, first_line: str | None = None) -> None:
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, limit=1 << 24,
            )  # fmt: skip
        self._reader = asyncio.create_task(self._read(), name=f"read-{self.name}")
        if first_line is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(first_line.encode() + b"\n")
            await self.proc.stdin.drain()

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = json.loads(raw)
            if "t" in line:
                self.samples.append((line["t"], int(line[self.counter])))
                self._progress.set()
            else:
                await self.lines.put(line)

    async def reach(self, target: int, timeout_s: float) -> bool:
        """Wait until the process has reported ``target`` items; whether it did in time."""
        deadline = time.monotonic() + timeout_s
        while self.count < target:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        return True

    async def expect(self, key: str, timeout_s: float) -> Any:
        """The next line with ``key`` (what it says)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = await asyncio.wait_for(self.lines.get(), deadline - time.monotonic())
            except TimeoutError:
                raise RuntimeError(f"{self.name} said no {key!r}: see {self.log}") from None
            if key in line:
                return line[key]

    async def stop(self, timeout_s: float = 60.0) -> None:
        """Close stdin, wait for the end, kill it (by pid) if it does not come."""
        if self.proc is None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


@dataclass
class CpuMeter:
    """CPU seconds per group of processes between :meth:`begin` and :meth:`end` (in cores)."""

    groups: dict[str, Callable[[], list[int]]]
    wall_s: float = 0.0
    _t0: float = 0.0
    _before: dict[str, dict[int, float]] = field(default_factory=dict)

    def _now(self) -> dict[str, dict[int, float]]:
        return {g: {p: _cpu_s(p) for p in pids()} for g, pids in self.groups.items()}

    def begin(self) -> None:
        self._t0, self._before = time.monotonic(), self._now()

    def end(self) -> dict[str, float]:
        self.wall_s = wall = time.monotonic() - self._t0
        after = self._now()
        return {
            g: sum(v - self._before[g].get(p, 0.0) for p, v in after[g].items()) / wall
            for g in self.groups
        }


# -- the worker -------------------------------------------------------------------------------


class _Announced:
    """An ingest whose ``run`` says when it is subscribed (what :func:`serve` drives)."""

    def __init__(self, ingest: Ingest, ready: asyncio.Event) -> None:
        self.ingest = ingest
        self.counters = ingest.counters
        self.ready = ready

    async def run(self, client: aiomqtt.Client, *, share_group: str | None = None) -> None:
        await self.ingest.run(client, share_group=share_group, ready=self.ready)


async def _report(ingest: Ingest) -> None:
    last = -1
    while True:
        await asyncio.sleep(0.02)
        done = ingest.counters["accepted.fix"]
        if done != last:
            last = done
            print(json.dumps({"t": time.time(), "fix": done}), flush=True)


async def worker(spec: dict[str, Any]) -> None:
    """One cloud worker as ``cloud/main.py`` builds it, until stdin closes."""
    store = await Store.connect(PG_URL, schema=spec["schema"])
    client = aioredis.Redis.from_url(REDIS_URL)
    live = RedisLiveState(client, spec["prefix"])
    alerts = AlertService(store, live)
    rules = RuleService(store=store, live=live, alerts=alerts, config=CloudSettings().rules)
    await rules.refresh(force=True)
    ingest = Ingest(
        store=store, live=live, alerts=alerts, steps=(rules.step,) if spec["rules"] else ()
    )
    ready = asyncio.Event()
    tasks = [
        asyncio.create_task(
            serve(
                _Announced(ingest, ready),
                port=spec["port"],
                share_group="bench",
                identifier=f"hazwatch-cloud:{spec['name']}",
                session_expiry_s=0,
            ),
            name="ingest",
        ),
        asyncio.create_task(_report(ingest), name="report"),
    ]
    if spec["rules"]:
        tasks.append(asyncio.create_task(rules.run_timer(), name="rules-clock"))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        print(json.dumps({"ready": len(rules.world.zones)}), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the bench closes our stdin
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        final = {"ingest": dict(ingest.counters), "rules": dict(rules.counters)}
        print(json.dumps({"final": final}), flush=True)
        await live.close()
        await client.aclose()
        await store.close()


def worker_main(raw: str) -> int:
    spec = json.loads(raw)
    logging.basicConfig(level=logging.WARNING)
    if not spec.get("profile"):
        asyncio.run(worker(spec))
        return 0
    profile = cProfile.Profile()
    profile.enable()
    try:
        asyncio.run(worker(spec))
    finally:
        profile.disable()
        profile.dump_stats(spec["profile"])
    return 0


# -- the bench --------------------------------------------------------------------------------


@dataclass
class Clock:
    """Where a series of runs is: the next round (fix number) of every asset, the earliest
    next observation time (each asset's fixes go on in order, its gateway's seqs too)."""

    tick: int = 0
    next_ms: int = 0


@dataclass
class Bench:
    """Everything a run needs: the setup, the world, the broker, the stores, the clocks."""

    setup: Setup
    world: World
    broker: Mosquitto
    workdir: Path
    run_id: str
    live: RedisLiveState
    profile_dir: Path | None
    #: what the workers see; the decode-only subscriber's runs have a clock of their own
    clock: Clock = field(default_factory=Clock)
    sink_clock: Clock = field(default_factory=Clock)

    def meter(self, consumer: Child) -> CpuMeter:
        return CpuMeter(
            {
                consumer.name: lambda: [consumer.pid],
                "broker": lambda: [self.broker.pid],
                "redis": lambda: _pids_named("redis-server"),
                "postgres": lambda: _pids_named("postgres"),
                "bench": lambda: [os.getpid()],
            }
        )

    async def start_worker(self, *, rules: bool) -> Child:
        name = f"{self.run_id}-{'rules' if rules else 'ingest'}"
        spec = {
            "port": self.broker.port, "schema": self.run_id, "prefix": f"{self.run_id}:",
            "rules": rules, "name": name,
            "profile": str(self.profile_dir / f"{name}.prof") if self.profile_dir else None,
        }  # fmt: skip
        argv = [sys.executable, str(HERE / "bench_rules_e2e.py"), "--worker", json.dumps(spec)]
        child = Child("worker", argv, self.workdir / f"{name}.log")
        await child.start()
        await child.expect("ready", 300)
        return child

    async def start_sink(self) -> Child:
        argv = [sys.executable, str(HERE / "_loadgen.py"), "sink", "--port", str(self.broker.port)]
        child = Child("subscriber", argv, self.workdir / "sink.log")
        child.counter = "items"
        await child.start()
        await child.expect("ready", 30)
        return child

    async def generate(
        self, mode: str, ticks: int, *, rate: int, paced: bool, clock: Clock
    ) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
        """Start the generator processes of one run once they are ready; return a wait for
        their figures."""
        setup = self.setup
        fixes = len(self.world.asset_ids) * ticks
        now_ms = int(time.time() * 1000)
        if paced:  # time to build the payloads (about 10 us a fix) and connect, and to spare
            now_ms += 1_500 + fixes * 20 // 1000 // setup.processes
        start_ms = max(now_ms, clock.next_ms)
        tick_ms = len(self.world.asset_ids) * 1000 // rate
        plan = {
            "name": self.run_id, "mode": mode, "batch": 100 if mode == "batch" else 1,
            "sizes": vars(setup.sizes), "seed": self.world.seed, "t_ref_ms": self.world.t_ref_ms,
            "processes": setup.processes, "clients": setup.clients if mode == "single" else 4,
            "window": setup.window, "first_tick": clock.tick, "ticks": ticks, "tick_ms": tick_ms,
            "start_ms": start_ms, "paced": paced,
        }  # fmt: skip
        clock.tick += ticks
        clock.next_ms = start_ms + ticks * tick_ms + 1_000
        argv = [sys.executable, str(HERE / "_loadgen.py"), "publish", "--port"]
        children = []
        for p in range(setup.processes):
            child = Child(f"gen{p}", [*argv, str(self.broker.port)], self.workdir / f"gen{p}.log")
            await child.start(json.dumps({**plan, "process": p}))
            children.append(child)
        for child in children:
            await child.expect("ready", 120)

        async def figures() -> list[dict[str, Any]]:
            done = [await c.expect("done", 900) for c in children]
            for c in children:
                await c.stop()
            return done

        return figures


@dataclass
class RunFigures:
    rate: float  # per second, through the consumer
    cpu: dict[str, float]  # cores per process (group)
    publish_rate: float = 0.0  # the generators' own (PUBACKs), per second
    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0


def steady_rate(samples: list[tuple[float, int]], start: tuple[float, int], total: int) -> float:
    """Items per second between 10% and 90% of a run of ``total`` items: from the last report
    (or the run's ``start``: time, count) at or below 10% to the first at or above 90%."""
    before = start[1]
    points = [start, *(s for s in samples if s[0] > start[0] and s[1] > before)]
    low = [p for p in points if p[1] <= before + total * 0.1][-1]
    high = next(p for p in points if p[1] >= before + total * 0.9)
    return (high[1] - low[1]) / max(high[0] - low[0], 1e-3)


def _generator_figures(
    done: list[dict[str, Any]], wall_s: float, per_message: int
) -> tuple[float, float]:
    """(messages/s the generators published, PUBACK to PUBACK; cores they used)."""
    first = min(d["first_s"] for d in done)
    span = max(d["last_ack_s"] for d in done) - first
    messages = sum(d["fixes"] for d in done) / per_message
    return messages / max(span, 1e-3), sum(d["cpu_s"] for d in done) / wall_s


async def throughput(bench: Bench, consumer: Child, mode: str, ticks: int) -> RunFigures:
    """One run as fast as the generators go; the rate the consumer takes it in."""
    total = len(bench.world.asset_ids) * ticks
    before = consumer.count
    clock = bench.sink_clock if consumer.name == "subscriber" else bench.clock
    figures = await bench.generate(
        mode, ticks, rate=bench.setup.schedule_rate, paced=False, clock=clock
    )
    meter = bench.meter(consumer)
    meter.begin()
    started = time.time()
    if not await consumer.reach(before + total, 900):
        raise RuntimeError(f"{consumer.name} took {consumer.count - before} of {total}")
    cpu = meter.end()
    done = await figures()
    published, cpu["generators"] = _generator_figures(
        done, meter.wall_s, 100 if mode == "batch" else 1
    )
    rate = steady_rate(consumer.samples, (started, before), total)
    return RunFigures(rate=rate, cpu=cpu, publish_rate=published)


@contextlib.asynccontextmanager
async def alert_feed(bench: Bench, arrivals: dict[tuple[str, int], float]) -> AsyncIterator[None]:
    """Note when each forbidden-zone alert opens on the live feed: (asset, opened_ms) -> time."""
    async with bench.live.subscribe() as subscription:

        async def listen() -> None:
            async for event in subscription:
                data = event.data
                if (
                    event.kind == "alert"
                    and data.get("state") == "open"
                    and data.get("kind") == "zone.forbidden"
                ):
                    arrivals.setdefault((data["asset_id"], data["opened_ms"]), time.time())

        task = asyncio.create_task(listen(), name="alert-feed")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def latency(bench: Bench, worker: Child) -> RunFigures:
    """One run paced at the latency rate; publish -> alert on the live feed of each probe."""
    setup = bench.setup
    total = len(bench.world.asset_ids) * setup.latency_ticks
    before = worker.count
    arrivals: dict[tuple[str, int], float] = {}
    async with alert_feed(bench, arrivals):
        figures = await bench.generate(
            "batch", setup.latency_ticks, rate=setup.latency_rate, paced=True, clock=bench.clock
        )
        meter = bench.meter(worker)
        meter.begin()
        started = time.time()
        done = await figures()
        cpu = meter.end()
        await worker.reach(before + total, 300)
        await asyncio.sleep(1.0)  # the alerts of the last round
    _, cpu["generators"] = _generator_figures(done, meter.wall_s, 100)
    late = max(d["late_s"] for d in done)
    if late > 0.2:
        print(f"  (the generators fell up to {late:.1f} s behind their schedule)")
    opens = [(str(a), int(ts), float(sent)) for d in done for a, ts, sent in d["opens"]]
    lat = [(arrivals[(a, ts)] - sent) * 1000 for a, ts, sent in opens if (a, ts) in arrivals]
    rate = steady_rate(worker.samples, (started, before), total)
    return RunFigures(rate=rate, cpu=cpu, latencies_ms=lat, missed=len(opens) - len(lat))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def row(label: str, runs: list[float], unit: str = "") -> float:
    med = statistics.median(runs)
    cells = " ".join(f"{r:>9,.0f}" for r in runs)
    print(f"  {label:<44} {cells}   median {med:>9,.0f}{unit}")
    return med


def cpu_line(label: str, runs: list[RunFigures]) -> None:
    groups = runs[0].cpu.keys()
    cells = ", ".join(
        f"{g} {statistics.median([r.cpu.get(g, 0.0) for r in runs]):.2f}" for g in groups
    )
    print(f"    cpu (cores) {label}: {cells}")


async def measure(bench: Bench) -> dict[str, list[RunFigures]]:
    """Every run: the subscriber's, then the worker's with the rules and without."""
    setup = bench.setup
    runs = range(setup.runs)
    results: dict[str, list[RunFigures]] = {}
    sink = await bench.start_sink()
    try:
        for mode, ticks in (("batch", setup.batch_ticks), ("single", setup.single_ticks)):
            results[f"sink.{mode}"] = [await throughput(bench, sink, mode, ticks) for _ in runs]
    finally:
        await sink.stop()
    for rules in (True, False):
        key = "rules" if rules else "ingest"
        work = await bench.start_worker(rules=rules)
        try:
            for mode, ticks in (("batch", setup.batch_ticks), ("single", setup.single_ticks)):
                if setup.warmup:  # every asset (every vehicle's gateway) once
                    await throughput(bench, work, mode, 1)
                results[f"{key}.{mode}"] = [
                    await throughput(bench, work, mode, ticks) for _ in runs
                ]
                if rules and mode == "batch":
                    results["latency"] = [await latency(bench, work) for _ in runs]
        finally:
            await work.stop()
        print_outcome(key, await work.expect("final", 30))
    return results


def print_outcome(key: str, final: dict[str, dict[str, int]]) -> None:
    """What the worker found and what went wrong, from its counters."""
    bad = ("rejected", "store_error", "live_error", "step_error", "round_error", "ledger_error")
    problems = {k: v for k, v in final["ingest"].items() if k.startswith(bad)}
    problems |= {k: v for k, v in final["rules"].items() if "error" in k or "gave_up" in k}
    findings = sum(v for k, v in final["rules"].items() if k.startswith("finding."))
    dropped = {k: v for k, v in final["rules"].items() if k.startswith("fix_dropped")}
    late = final["ingest"].get("late", 0)
    print(
        f"  worker ({key}): {final['ingest'].get('accepted.fix', 0):,} fixes, {findings:,} "
        f"findings, {late} late, dropped {dropped or 'none'}, problems {problems or 'none'}"
    )


def report(bench: Bench, results: dict[str, list[RunFigures]]) -> None:
    setup = bench.setup
    print(f"\nmedian of {setup.runs} run(s); runs left to right")
    print("(b) fixes/s, 100 fixes per message (fleet gateways)")
    gen = row(
        "generator publish (PUBACKs), fixes/s",
        [r.publish_rate * 100 for r in results["sink.batch"]],
    )
    sink = row("generator -> decode-only subscriber", [r.rate for r in results["sink.batch"]])
    base = row("ingest only (rules step off)", [r.rate for r in results["ingest.batch"]])
    full = row("ingest + rules + alerts", [r.rate for r in results["rules.batch"]])
    print(
        f"  rules cost: ingest only / with rules = {base / full:.2f}x; with rules / decode-only "
        f"subscriber = {full / sink:.2f}; generator publish {gen:,.0f}"
    )
    cpu_line("with rules", results["rules.batch"])
    cpu_line("ingest only", results["ingest.batch"])

    lat = results["latency"]
    print(f"(b) publish -> alert on the live feed at {setup.latency_rate:,} fixes/s, ms")
    for r in lat:
        print(
            f"  {len(r.latencies_ms)} alerts ({r.missed} not seen): p50 {pct(r.latencies_ms, 50):.0f}"
            f"  p95 {pct(r.latencies_ms, 95):.0f}  p99 {pct(r.latencies_ms, 99):.0f}"
            f"  max {max(r.latencies_ms, default=float('nan')):.0f}  (worker {r.rate:,.0f} fixes/s)"
        )
    med = {q: statistics.median([pct(r.latencies_ms, q) for r in lat]) for q in (50, 95, 99)}
    print(f"  median of runs: p50 {med[50]:.0f}  p95 {med[95]:.0f}  p99 {med[99]:.0f}")
    cpu_line("latency runs", lat)

    print("(b') messages/s, one fix per message, one gateway per vehicle")
    row("generator publish (PUBACKs)", [r.publish_rate for r in results["sink.single"]])
    sink1 = row("generator -> decode-only subscriber", [r.rate for r in results["sink.single"]])
    base1 = row("ingest only (rules step off)", [r.rate for r in results["ingest.single"]])
    full1 = row("ingest + rules + alerts", [r.rate for r in results["rules.single"]])
    print(
        f"  rules cost: ingest only / with rules = {base1 / full1:.2f}x; with rules / decode-only "
        f"subscriber = {full1 / sink1:.2f}"
    )
    cpu_line("generator -> subscriber", results["sink.single"])
    cpu_line("with rules", results["rules.single"])
    cpu_line("ingest only", results["ingest.single"])


async def main(args: argparse.Namespace, profile_dir: Path | None) -> int:
    setup = QUICK_SETUP if args.quick else FULL_SETUP
    if args.runs:
        setup = replace(setup, runs=args.runs)
    run_id = "e2e" + uuid.uuid4().hex[:8]
    now_ms = int(time.time() * 1000)
    world = World(setup.sizes, t_ref_ms=now_ms)
    s = setup.sizes
    print(
        f"world: {s.zones:,} zones ({int(world.probe.sum()):,} of them probe zones), {s.routes:,} "
        f"routes with trips, {s.lots:,} lots, {s.assets:,} assets of {s.enterprises} enterprises"
    )
    store = await Store.connect(PG_URL, schema=run_id)
    client = aioredis.Redis.from_url(REDIS_URL)
    live = RedisLiveState(client, f"{run_id}:")
    try:
        started = time.monotonic()
        every = gateways(world, "batch") + gateways(world, "single")
        await register(store, world, gateways=every, now_ms=now_ms)
        print(f"registered in {time.monotonic() - started:.1f} s (PostgreSQL schema {run_id})")
        with tempfile.TemporaryDirectory(prefix="hazwatch-e2e-") as tmp:
            broker = Mosquitto(Path(tmp) / "mq", extra_config=BROKER_CONFIG)
            with broker.running():
                print(
                    f"broker: mosquitto on 127.0.0.1:{broker.port}, plain anonymous listener; "
                    f"worker: one process, Redis prefix {run_id}:"
                )
                bench = Bench(setup, world, broker, Path(tmp), run_id, live, profile_dir)
                report(bench, await measure(bench))
    finally:
        await live.close()
        keys = [k async for k in client.scan_iter(match=f"{run_id}:*", count=10_000)]
        for start in range(0, len(keys), 10_000):
            await client.delete(*keys[start : start + 10_000])
        await client.aclose()
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{run_id}" CASCADE'))
        await store.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small world, a few seconds")
    parser.add_argument("--runs", type=int, help="runs of each measurement (median)")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the workers into DIR")
    arguments = parser.parse_args()
    profiles = Path(arguments.profile).resolve() if arguments.profile else None
    if profiles is not None:
        profiles.mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main(arguments, profiles)))
