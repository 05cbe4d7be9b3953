"""Soak: steady load for a long time with random kills; count what was lost and repeated.

The whole system as processes: a Mosquitto broker of its own (persistence on), two cloud
workers (``hazwatch cloud``: PostgreSQL archive in a schema of its own, Redis live state and
ledger under a key prefix of its own, one MQTT v5 shared subscription) and several edge agents
(``hazwatch edge`` with a synthetic source of readings, fixes and alarms). Every 15-45 s one of
them is SIGKILLed at random: the broker (down 2-8 s, restarted on its persistence file), a cloud
worker (restarted after 1-4 s) or an agent (restarted at once on the same buffer file).

At the end the sources stop, the agents drain their buffers into the cloud, and for every agent
it prints: items assigned (every seq its buffer file gave out), archived (the cloud's ledger,
which admits a seq only once its write is durable), lost (assigned, not archived), repeated (an
item archived twice: readings and fixes rows sharing a seq), dropped on purpose by the edge
(thinning, age; zero at this load) and kills. The aim: 0 lost, 0 repeated.

    python bench/soak_nothing_lost.py                  # 30 minutes
    python bench/soak_nothing_lost.py --duration-s 300 --agents 3

Needs the shared PostgreSQL and Redis (``make services``); not part of ``make bench`` (it runs
for half an hour).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the test helpers: a broker of its own, the synthetic source

import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from cloud.archive import Store  # noqa: E402
from cloud.live import RedisLiveState  # noqa: E402
from cloud.models import Enterprise, Gateway  # noqa: E402
from tests.support.procs import Mosquitto, free_port  # noqa: E402

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Proc:
    """A restartable process with a config file and a log."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class World:
    workdir: Path
    schema: str
    prefix: str
    broker: Mosquitto
    clouds: list[Proc] = field(default_factory=list)
    agents: list[Proc] = field(default_factory=list)
    broker_kills: int = 0


def cloud_config(world: World, index: int) -> Path:
    path = world.workdir / f"cloud{index}.toml"
    path.write_text(
        f'[database]\nurl = "{PG_URL}"\nschema = "{world.schema}"\n'
        f'spill_path = "{world.workdir}/spill{index}.jsonl"\n'
        f'[state]\nredis_url = "{REDIS_URL}"\nkey_prefix = "{world.prefix}"\n'
        f'[mqtt]\nport = {world.broker.port}\nshare_group = "soak"\n'
        f'client_id = "hazwatch-cloud:soak{index}"\n'
        f"[http]\nport = {free_port()}\n"
    )
    return path


def agent_config(world: World, gateway: str, *, load: bool) -> Path:
    path = world.workdir / f"{gateway}.toml"
    ticker = (
        "per_tick = 10\ntick_s = 0.1\nalarm_every = 97\nfix_every = 5\n" if load else "count = 0\n"
    )
    path.write_text(
        f'[gateway]\nid = "{gateway}"\nstate_dir = "{world.workdir}/{gateway}"\n'
        f'[mqtt]\nport = {world.broker.port}\ndelete_on = "cloud"\nack_timeout_s = 20\n'
        "reconnect_max_s = 5\n"
        f'[buffer]\npath = "{world.workdir}/{gateway}/buffer.db"\n'
        f'[plugins.tick]\nmodule = "tests.edge.agent.ticker"\n{ticker}'
    )
    return path


async def prepare(world: World, gateways: list[str]) -> None:
    store = await Store.connect(PG_URL, schema=world.schema)
    try:
        await store.put_enterprise(Enterprise(id="soak", name="soak", region="320281"))
        for gateway in gateways:
            await store.put_gateway(Gateway(id=gateway, enterprise_id="soak"))
    finally:
        await store.close()


def buffer_figures(path: Path) -> tuple[int, int, int, dict[str, int]]:
    """(first seq, next seq, rows left, drops) of an agent's buffer file."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        left = sum(
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("alarm_lane", "data_lane")
        )
    drops = {k.removeprefix("drop:"): v for k, v in meta.items() if k.startswith("drop:")}
    return int(meta["first_seq"]), int(meta["next_seq"]), left, drops


async def chaos(world: World, until: float, rng: random.Random) -> None:
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(15, 45))
        if time.monotonic() >= until:
            return
        victim = rng.choice(["broker", "cloud", "agent"])
        if victim == "broker":
            world.broker.kill()
            world.broker_kills += 1
            await asyncio.sleep(rng.uniform(2, 8))
            world.broker.start()
        elif victim == "cloud":
            cloud = rng.choice(world.clouds)
            cloud.kill()
            await asyncio.sleep(rng.uniform(1, 4))
            cloud.start()
        else:
            agent = rng.choice(world.agents)
            agent.kill()
            agent.start()
        print(f"  {time.strftime('%H:%M:%S')} killed {victim}", flush=True)


async def drain(world: World, gateways: list[str], timeout_s: float) -> None:
    """Restart the agents without load and wait until their buffers are empty."""
    for agent, gateway in zip(world.agents, gateways, strict=True):
        agent.stop()
        agent.argv[-1] = str(agent_config(world, gateway, load=False))
        agent.start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [buffer_figures(world.workdir / g / "buffer.db")[2] for g in gateways]
        if not any(left):
            return
        await asyncio.sleep(1)
    print(f"  drain timed out; rows left {left}", flush=True)


async def count(
    world: World, gateways: list[str]
) -> list[tuple[str, int, int, int, int, dict[str, int]]]:
    client = aioredis.from_url(REDIS_URL)
    ledger = RedisLiveState(client, prefix=world.prefix)
    store = await Store.connect(PG_URL, schema=world.schema)
    rows = []
    try:
        for gateway in gateways:
            first, nxt, _, drops = buffer_figures(world.workdir / gateway / "buffer.db")
            assigned = nxt - first
            seen = 0
            for start in range(first, nxt, 10_000):
                seen += len(
                    await ledger.seen_seqs(gateway, list(range(start, min(nxt, start + 10_000))))
                )
            repeated = 0
            async with store.engine.connect() as conn:
                for table in ("readings", "fixes"):
                    repeated += int(
                        await conn.scalar(
                            text(
                                f"SELECT count(*) - count(DISTINCT seq) FROM {table} WHERE gateway_id = :g"
                            ),
                            {"g": gateway},
                        )
                        or 0
                    )
            lost = assigned - seen - sum(drops.values())
            rows.append((gateway, assigned, seen, lost, repeated, drops))
    finally:
        await store.close()
        await ledger.close()
        await client.aclose()
    return rows


async def main(duration_s: float, agents: int, seed: int) -> int:
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    gateways = [f"soak-{run}-{i}" for i in range(agents)]
    with tempfile.TemporaryDirectory(prefix="hazwatch-soak-") as tmp:
        workdir = Path(tmp)
        store_dir = workdir / "mq" / "store"
        store_dir.mkdir(parents=True)
        root = "user root\n" if os.geteuid() == 0 else ""
        broker = Mosquitto(
            workdir / "mq",
            extra_config=f"{root}persistence true\npersistence_location {store_dir}/\n"
            "autosave_interval 5\nmax_queued_messages 0\n",
        )
        world = World(workdir, schema=f"soak_{run}", prefix=f"soak{run}:", broker=broker)
        await prepare(world, gateways)
        hazwatch = [sys.executable, "-m", "hazwatch.cli"]
        world.clouds = [
            Proc(
                f"cloud{i}",
                [*hazwatch, "cloud", "--config", str(cloud_config(world, i))],
                workdir / f"cloud{i}.log",
            )
            for i in range(2)
        ]
        world.agents = [
            Proc(
                g,
                [*hazwatch, "edge", "--config", str(agent_config(world, g, load=True))],
                workdir / f"{g}.log",
            )
            for g in gateways
        ]
        broker.start()
        try:
            for proc in [*world.clouds, *world.agents]:
                proc.start()
            print(
                f"soak: {agents} agents, 2 cloud workers, {duration_s:.0f} s, seed {seed}",
                flush=True,
            )
            started = time.monotonic()
            await chaos(world, started + duration_s, rng)
            print(f"  load stops after {time.monotonic() - started:.0f} s; draining", flush=True)
            await drain(world, gateways, timeout_s=300)
            figures = await count(world, gateways)
        finally:
            for proc in [*world.agents, *world.clouds]:
                proc.stop()
            broker.kill()
        kills = {
            "broker": world.broker_kills,
            "cloud": sum(c.kills for c in world.clouds),
            "agent": sum(a.kills for a in world.agents),
        }
        print(f"kills: {kills}")
        print(
            f"{'gateway':<22} {'assigned':>9} {'archived':>9} {'lost':>6} {'repeated':>9}  dropped"
        )
        for gateway, assigned, seen, lost, repeated, drops in figures:
            print(f"{gateway:<22} {assigned:>9} {seen:>9} {lost:>6} {repeated:>9}  {drops or '-'}")
        total_lost = sum(f[3] for f in figures)
        total_repeated = sum(f[4] for f in figures)
        print(
            f"total: assigned {sum(f[1] for f in figures)}, lost {total_lost}, repeated {total_repeated}"
        )
        return 0 if total_lost == 0 and total_repeated == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=1800.0)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.duration_s, args.agents, args.seed)))
