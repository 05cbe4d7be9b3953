"""Fixes per second through the pure rules engine, one process (issue 12, benchmark a).

A synthetic province around Jiangsu (``bench/rules_world.py``): 10,000 zones (polygons with
holes, multipolygons, circles, corridors; night bans, seasons, classes, versions), 1,000 routes
with a trip each, 500 lots, 50,000 assets. Every asset's first minute of track warms the states
up (untimed, as a running service has them); then the next fixes, in time order across all
assets, go through :meth:`cloud.rules.engine.Engine.evaluate` in batches of 100, 1,000 and
10,000, every run starting from the same warm states, which are carried between calls as the
service keeps them: as bytes (``encode_state``), decoded for the assets of a batch before the
call and encoded after it. Printed per batch size, medians of several runs:

- engine: fixes/s of ``evaluate`` alone;
- codec: decoding and encoding the batch's states (the service's Redis round trip, less Redis);
- with codec: fixes/s of the two together.

Also the cost of the Rules II families (speed, fatigue, offline): the same fixes through the
same world with them switched off, as a ratio.

Baseline, in the same run: zone membership without the index, each fix tested against every
zone with ``shapely.contains_xy`` (prepared shapes), on a subset of the fixes; the engine's own
membership step (``World.near`` + the exact test) on the same fixes; the ratios, and whether the
two agree. Also: the time to draw the province and to build the world, and the memory (RSS).

    python bench/bench_rules.py [--quick] [--runs N] [--fixes N] [--profile]

``--profile`` runs batches of 1,000 once more under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rules_world
import shapely

import wire
from cloud.rules.config import RulesConfig
from cloud.rules.engine import Engine
from cloud.rules.state import decode_state, encode_state
from cloud.rules.world import World

AIM_FIXES_S = 100_000
#: Thresholds that switch the Rules II families off (the Rules I baseline).
RULES_I_ONLY = {
    "speed_limit_kmh": 0, "speed_limit_expressway_kmh": 0, "speed_limit_hazard_kmh": 0,
    "fatigue_continuous_s": 0, "fatigue_night_s": 0, "fatigue_daily_s": 0, "offline_s": 0,
    "offline_moved_gap_s": 1e9, "dark_zone_m": 0,
}  # fmt: skip
WARM_S = 60.0


@dataclass(frozen=True)
class Plan:
    sizes: rules_world.Sizes
    batches: tuple[int, ...]
    fixes: int
    runs: int
    baseline_fixes: int


FULL = Plan(rules_world.FULL, (100, 1_000, 10_000), 200_000, 3, 1_000)
QUICK = Plan(rules_world.QUICK, (100, 1_000), 3_000, 3, 200)


@dataclass
class Pass:
    """One pass of the timed fixes through the engine."""

    engine_s: float = 0.0
    decode_s: float = 0.0
    encode_s: float = 0.0
    calls: int = 0
    events: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    late: int = 0


def rss_mb() -> float:
    """Resident memory of this process (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def by_asset(fixes: Sequence[wire.Fix]) -> dict[str, list[wire.Fix]]:
    grouped: dict[str, list[wire.Fix]] = {}
    for fix in fixes:
        grouped.setdefault(fix.asset, []).append(fix)
    return grouped


def feed(engine: Engine, fixes: Sequence[wire.Fix], batch: int, stored: dict[str, bytes]) -> Pass:
    """``fixes`` through the engine ``batch`` at a time; ``stored`` holds the states (bytes)."""
    result = Pass()
    for start in range(0, len(fixes), batch):
        chunk = fixes[start : start + batch]
        grouped = by_asset(chunk)
        t0 = time.perf_counter()
        states = {asset: decode_state(stored.get(asset)) for asset in grouped}
        t1 = time.perf_counter()
        outcome = engine.evaluate(grouped, states, now_ms=chunk[-1].ts + 1_000)
        t2 = time.perf_counter()
        for asset, state in outcome.states.items():
            stored[asset] = encode_state(state)
        t3 = time.perf_counter()
        result.decode_s += t1 - t0
        result.engine_s += t2 - t1
        result.encode_s += t3 - t2
        result.calls += 1
        result.events.update(f"{e.kind} {e.action}" for e in outcome.events)
        result.dropped.update(outcome.dropped)
        result.late += len(outcome.late)
    return result


def membership(world: World, fixes: Sequence[wire.Fix]) -> float:
    """Zone membership of ``fixes``: every zone tested (no index) against the engine's step;
    returns the baseline's fixes/s."""
    shapes = np.array([z.shape for z in world.zones], dtype=object)
    lons = np.array([f.lon for f in fixes])
    lats = np.array([f.lat for f in fixes])
    naive: set[tuple[int, int]] = set()
    started = time.perf_counter()
    xs, ys = world.project(lons, lats)
    for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
        naive.update((i, int(z)) for z in np.flatnonzero(shapely.contains_xy(shapes, x, y)))
    naive_s = time.perf_counter() - started
    times = []
    for _ in range(5):
        started = time.perf_counter()
        xs, ys = world.project(lons, lats)
        fix_idx, zone_idx = world.near(xs, ys)
        inside = shapely.contains_xy(shapes[zone_idx], xs[fix_idx], ys[fix_idx])
        times.append(time.perf_counter() - started)
    indexed = set(zip(fix_idx[inside].tolist(), zone_idx[inside].tolist(), strict=True))
    naive_rate = len(fixes) / naive_s
    indexed_rate = len(fixes) / statistics.median(times)
    print(
        f"baseline, no index: {len(fixes):,} fixes x {len(shapes):,} zones with contains_xy: "
        f"{naive_rate:,.0f} fixes/s"
    )
    print(
        f"engine's membership step (World.near + contains_xy), same fixes: "
        f"{indexed_rate:,.0f} fixes/s = {indexed_rate / naive_rate:,.0f}x the baseline; "
        f"answers {'agree' if naive == indexed else 'DIFFER'} ({len(naive):,} memberships)"
    )
    return naive_rate


def profile(engine: Engine, fixes: Sequence[wire.Fix], warm: dict[str, bytes]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    feed(engine, fixes, 1_000, dict(warm))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(out.getvalue())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small world, a few seconds")
    parser.add_argument("--runs", type=int, help="runs per batch size (median)")
    parser.add_argument("--fixes", type=int, help="timed fixes per run")
    parser.add_argument("--profile", action="store_true", help="cProfile one pass of 1,000s")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    runs, count = args.runs or plan.runs, args.fixes or plan.fixes

    base_mb = rss_mb()
    started = time.perf_counter()
    province = rules_world.build_province(plan.sizes)
    drawn_s = time.perf_counter() - started
    drawn_mb = rss_mb()
    started = time.perf_counter()
    world = World.build(province.objects, province.assets)
    engine = Engine(world)
    build_s = time.perf_counter() - started
    world_mb = rss_mb() - drawn_mb
    sizes = plan.sizes
    print(
        f"world: {sizes.zones:,} zones ({len(world.zones) - len(world.lots):,} versions), "
        f"{len(world.lots):,} lots, {len(world.routes):,} routes, "
        f"{sum(len(t) for t in world.trips.values()):,} trips, {len(world.assets):,} assets"
    )
    print(
        f"province drawn in {drawn_s:.1f} s (RSS +{drawn_mb - base_mb:,.0f} MB); "
        f"World.build + Engine in {build_s:.1f} s, RSS +{world_mb:,.0f} MB"
    )

    until = WARM_S + 1.1 * count / province.fix_rate() + 60
    fixes = province.fixes(0.0, until)
    warm_fixes = [f for f in fixes if f.ts < rules_world.T0_MS + WARM_S * 1000]
    timed = fixes[len(warm_fixes) : len(warm_fixes) + count]
    del fixes
    # The bench's own fixes and states are not the engine's garbage: out of the collector's
    # sight, as a service that holds only one batch would have them.
    gc.collect()
    gc.freeze()
    warm: dict[str, bytes] = {}
    before_mb = rss_mb()
    warmed = feed(engine, warm_fixes, 10_000, warm)
    states_mb = sum(len(raw) for raw in warm.values()) / 1e6
    print(
        f"warm-up: {len(warm_fixes):,} fixes (every asset's first {WARM_S:.0f} s) in "
        f"{warmed.engine_s:.1f} s ({len(warm_fixes) / warmed.engine_s:,.0f} fixes/s); "
        f"{len(warm):,} states, {states_mb:,.1f} MB encoded; RSS +{rss_mb() - before_mb:,.0f} MB"
    )
    span_s = (timed[-1].ts - timed[0].ts) / 1000
    print(
        f"timed: {len(timed):,} fixes ({span_s:.0f} s of observation, "
        f"{len({f.asset for f in timed}):,} assets); {runs} runs per batch size, medians"
    )
    print(
        f"{'batch':>6} {'calls':>6} {'engine fixes/s':>15} {'decode ms':>10} {'encode ms':>10} "
        f"{'with codec fixes/s':>19}"
    )
    rates: dict[int, float] = {}
    last = Pass()
    for batch in plan.batches:
        passes = [feed(engine, timed, batch, dict(warm)) for _ in range(runs)]
        last = passes[-1]
        engine_rate = statistics.median(len(timed) / p.engine_s for p in passes)
        codec_rate = statistics.median(
            len(timed) / (p.engine_s + p.decode_s + p.encode_s) for p in passes
        )
        decode_ms = statistics.median(p.decode_s / p.calls * 1000 for p in passes)
        encode_ms = statistics.median(p.encode_s / p.calls * 1000 for p in passes)
        rates[batch] = engine_rate
        print(
            f"{batch:>6,} {last.calls:>6,} {engine_rate:>15,.0f} {decode_ms:>10.2f} "
            f"{encode_ms:>10.2f} {codec_rate:>19,.0f}",
            flush=True,
        )
    events = sum(last.events.values())
    common = ", ".join(f"{kind} {n:,}" for kind, n in last.events.most_common(6))
    print(f"events per run: {events:,} ({common}); dropped {dict(last.dropped)}; late {last.late}")

    # The cost of Rules II (speed, fatigue, offline) in the same run: the same world with them
    # switched off, batches of 1,000.
    rules_one = World.build(
        province.objects, province.assets, config=RulesConfig.from_mapping(RULES_I_ONLY)
    )
    one = [feed(Engine(rules_one), timed, 1_000, dict(warm)) for _ in range(runs)]
    one_rate = statistics.median(len(timed) / p.engine_s for p in one)
    print(
        f"Rules I only (speed, fatigue, offline off), batches of 1,000: {one_rate:,.0f} fixes/s; "
        f"the full rule set costs {one_rate / rates[1_000]:.2f}x"
    )

    naive = membership(world, timed[: plan.baseline_fixes])
    mid = plan.batches[len(plan.batches) // 2]
    print(f"engine (batches of {mid:,}) = {rates[mid] / naive:,.1f}x the no-index baseline")
    best = max(rates.values())
    verdict = "met" if best >= AIM_FIXES_S else "NOT met"
    print(f"aim {AIM_FIXES_S:,} fixes/s through the engine: {verdict} (best {best:,.0f})")
    if args.profile:
        profile(engine, timed, warm)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
