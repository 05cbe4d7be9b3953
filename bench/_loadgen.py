"""Load generators of the end-to-end rules bench, run as processes by bench_rules_e2e.py.

- ``publish``: one process of a load generator. It reads a JSON plan on stdin, computes its
  share of the fixes (:class:`bench._loadgen_world.World` says where every asset is), encodes
  them with the wire codec into ready payloads, connects its MQTT clients and prints
  ``{"ready": ...}``; from ``start_ms`` on it publishes them (QoS 1), each client keeping a
  window of publishes in flight, either as fast as it can or each message at its scheduled
  time (``paced``); then it prints ``{"done": ...}`` with its figures and exits.
- ``sink``: a decode-only subscriber (``wire.decode_batch`` on every message of every
  gateway): what the generators deliver through the broker when nothing else is in the way.
  It prints ``{"t": ..., "msgs": ..., "items": ...}`` as the counts move, until stdin closes.

Two shapes of traffic, both as gateways send it:

- ``batch``: fleet gateways (one per enterprise, as a carrier's platform forwards its trucks)
  sending 100 fixes per message, one fix of each of its assets per round;
- ``single``: one gateway per vehicle, one fix per message.

Each gateway's messages go through one client in order, so every asset's fixes arrive in
observation order, and its seqs continue from run to run (``first_tick``). Observation times
are the schedule (``start_ms`` plus the message's slot at ``rate`` fixes per second), so they
track the wall clock as a live gateway's would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import numpy as np
import numpy.typing as npt
from _loadgen_world import Sizes, World

import wire

__all__ = ["Slot", "gateways", "slots"]

HOST = "127.0.0.1"
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Slot:
    """One message of every round: a gateway and the assets whose fixes it carries."""

    gateway_id: str
    assets: Ints
    #: the position of the first of them among the gateway's assets (for seqs)
    first: int
    #: how many assets the gateway has (seqs advance by this per round)
    per_round: int


def gateways(world: World, mode: str) -> list[tuple[str, str]]:
    """``(gateway_id, enterprise_id)`` of every gateway of a traffic shape."""
    if mode == "batch":
        return [(f"fleet-{e}", e) for e in sorted(set(world.enterprise_of))]
    return [(f"veh-{a}", e) for a, e in zip(world.asset_ids, world.enterprise_of, strict=True)]


def slots(world: World, mode: str, batch: int) -> list[Slot]:
    """The messages of one round, in the order they are due."""
    if mode == "single":
        return [
            Slot(f"veh-{a}", np.array([i], dtype=np.int64), 0, 1)
            for i, a in enumerate(world.asset_ids)
        ]
    fleets: dict[str, list[int]] = {}
    for i, e in enumerate(world.enterprise_of):
        fleets.setdefault(e, []).append(i)
    chunked = {
        e: [np.array(m[c : c + batch], dtype=np.int64) for c in range(0, len(m), batch)]
        for e, m in fleets.items()
    }
    out = []
    for c in range(max(len(v) for v in chunked.values())):  # fleets interleaved
        for e in sorted(chunked):
            if c < len(chunked[e]):
                out.append(Slot(f"fleet-{e}", chunked[e][c], c * batch, len(fleets[e])))
    return out


@dataclass
class _Message:
    when_s: float  # scheduled wall time
    topic: str
    payload: bytes
    fixes: int
    #: (asset, observation time of the first fix inside) of probes whose entry it confirms
    opens: list[tuple[str, int]] = field(default_factory=list)


def _build(plan: dict[str, Any]) -> list[list[_Message]]:
    """The messages of this process, per client, in order."""
    world = World(Sizes(**plan["sizes"]), t_ref_ms=plan["t_ref_ms"], seed=plan["seed"])
    every = slots(world, plan["mode"], plan["batch"])
    mine = [(j, s) for j, s in enumerate(every) if j % plan["processes"] == plan["process"]]
    clients: list[list[_Message]] = [[] for _ in range(plan["clients"])]
    if not mine:
        return clients
    tick_ms, start_ms = plan["tick_ms"], plan["start_ms"]
    assets = np.concatenate([s.assets for _, s in mine])
    offsets = np.concatenate(
        [np.full(len(s.assets), j * tick_ms // len(every), dtype=np.int64) for j, s in mine]
    )
    probe = world.probe[assets]
    for k in range(plan["first_tick"], plan["first_tick"] + plan["ticks"]):
        base = start_ms + (k - plan["first_tick"]) * tick_ms
        ts = base + offsets
        lons, lats = world.positions(assets, ts, k)
        at = 0
        for position, (_, s) in enumerate(mine):
            n = len(s.assets)
            items = []
            opens = []
            for q in range(n):
                i = int(s.assets[q])
                fix = wire.Fix(
                    seq=k * s.per_round + s.first + q + 1, ts=int(ts[at + q]),
                    asset=world.asset_ids[i], lat=round(float(lats[at + q]), 7),
                    lon=round(float(lons[at + q]), 7),
                    speed_kmh=30.0 if probe[at + q] else round(float(world.speed_kmh[i]), 1),
                    hdop=0.8, sats=12,
                )  # fmt: skip
                items.append(wire.encode_item(fix, validate=False))
                if probe[at + q] and world.probe_opens(k) and k > plan["first_tick"]:
                    opens.append((world.asset_ids[i], int(ts[at + q]) - tick_ms))
            at += n
            payload = wire.assemble_batch(s.gateway_id, items)
            clients[position % plan["clients"]].append(
                _Message(int(ts[at - 1]) / 1000, wire.data_topic(s.gateway_id), payload, n, opens)
            )
    return clients


@dataclass
class _Figures:
    messages: int = 0
    fixes: int = 0
    first_s: float = math.inf
    last_ack_s: float = 0.0
    late_s: float = 0.0
    #: [asset, observation ms of its first fix inside, wall time of the publish]
    opens: list[tuple[str, int, float]] = field(default_factory=list)


async def _publish(
    client: aiomqtt.Client,
    messages: Sequence[_Message],
    *,
    window: int,
    paced: bool,
    figures: _Figures,
) -> None:
    room = asyncio.Semaphore(window)
    running: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        room.release()
        if not task.cancelled() and task.exception() is None:
            figures.last_ack_s = max(figures.last_ack_s, time.time())

    for message in messages:
        if paced:
            delay = message.when_s - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                figures.late_s = max(figures.late_s, -delay)
        await room.acquire()
        now = time.time()
        figures.first_s = min(figures.first_s, now)
        figures.opens += [(a, ts, now) for a, ts in message.opens]
        task = asyncio.create_task(client.publish(message.topic, message.payload, qos=1))
        running.add(task)
        task.add_done_callback(finished)
        figures.messages += 1
        figures.fixes += message.fixes
    while running:
        await asyncio.gather(*running)


async def publish_main(port: int) -> int:
    """The ``publish`` command."""
    plan = json.loads(sys.stdin.readline())
    per_client = _build(plan)
    quiet = logging.getLogger("bench.loadgen")
    quiet.setLevel(logging.ERROR)  # aiomqtt warns about many pending publishes
    figures = _Figures()
    clients = [
        aiomqtt.Client(
            HOST,
            port,
            identifier=f"lg-{plan['name']}-{plan['process']}-{c}",
            max_inflight_messages=plan["window"],
            logger=quiet,
            keepalive=300,
        )
        for c in range(len(per_client))
    ]
    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        print(json.dumps({"ready": sum(len(m) for m in per_client)}), flush=True)
        delay = plan["start_ms"] / 1000 - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif plan["paced"]:
            figures.late_s = -delay
        cpu_s = time.process_time()
        await asyncio.gather(
            *(
                _publish(c, m, window=plan["window"], paced=plan["paced"], figures=figures)
                for c, m in zip(clients, per_client, strict=True)
            )
        )
    done = {
        "cpu_s": time.process_time() - cpu_s,
        "messages": figures.messages, "fixes": figures.fixes, "first_s": figures.first_s,
        "last_ack_s": figures.last_ack_s, "late_s": figures.late_s, "opens": figures.opens,
    }  # fmt: skip
    print(json.dumps({"done": done}), flush=True)
    return 0


async def sink_main(port: int) -> int:
    """The ``sink`` command: decode every data message, report the counts."""
    counts = {"msgs": 0, "items": 0}

    async def report() -> None:
        last = -1
        while True:
            await asyncio.sleep(0.05)
            if counts["msgs"] != last:
                last = counts["msgs"]
                print(json.dumps({"t": time.time(), **counts}), flush=True)

    async with aiomqtt.Client(HOST, port) as client:
        await client.subscribe(wire.subscription("data"), qos=1)
        print(json.dumps({"ready": True}), flush=True)

        async def consume() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                counts["items"] += len(wire.decode_batch(payload).items)
                counts["msgs"] += 1

        tasks = [asyncio.create_task(consume()), asyncio.create_task(report())]
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"t": time.time(), **counts}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("publish", "sink"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    run = publish_main if args.command == "publish" else sink_main
    return asyncio.run(run(args.port))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
