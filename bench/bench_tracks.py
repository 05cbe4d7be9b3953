"""Track-query latency on millions of stored fixes in PostgreSQL (partitioned by month).

Generates the fixes server-side with ``generate_series`` in a throw-away schema (500 assets,
one fix every 390 s each, spread over ~3 months so the monthly partitions matter), then times
:meth:`cloud.archive.Store.track` for several ranges: medians over random assets and the ratio
against a ``SELECT 1`` round trip through the same engine (the floor of any query).

    python bench/bench_tracks.py [rows]     # default 10_000_000; HZ_BENCH_ROWS overrides too

Needs the PostgreSQL of the development machine (127.0.0.1:5432, database ``test``).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid

from sqlalchemy import text

from cloud.archive import Store

URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ASSETS = 500
STEP_MS = 390_000
T0 = 1_754_006_400_000  # 2025-08-01 00:00 UTC
RANGES = (
    ("1 hour", 3_600_000),
    ("1 day", 86_400_000),
    ("7 days", 7 * 86_400_000),
    ("30 days", 30 * 86_400_000),
)
RUNS = 25

LOAD = """
INSERT INTO fixes (asset_id, ts_ms, enterprise_id, gateway_id, seq, lat, lon, speed_kmh, course,
                   quality, source, flags, recv_ms)
SELECT 'bench-' || (g % {assets}), {t0}::bigint + (g / {assets}) * {step}, 'e1', 'gw-' || (g % {assets}), g,
       31.0 + (g % 997) * 1e-4, 120.0 + (g % 991) * 1e-4, 60.0, 90.0, 'good', 'gnss', '',
       {t0}::bigint + (g / {assets}) * {step} + 800
FROM generate_series(0::bigint, {last}) AS g
"""


async def load(store: Store, rows: int) -> float:
    """Generate ``rows`` fixes; return the seconds it took (partitions, load, index, analyze)."""
    started = time.perf_counter()
    last_ts = T0 + (rows // ASSETS) * STEP_MS
    from cloud.archive.postgres import ensure_fix_partitions

    await ensure_fix_partitions(store.engine, set(), range(T0, last_ts + 1, 86_400_000 * 7))
    await ensure_fix_partitions(store.engine, set(), [last_ts])
    async with store.engine.begin() as conn:
        await conn.execute(text("SET LOCAL synchronous_commit = off"))
        await conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        await conn.execute(text("DROP INDEX ix_fixes_asset_ts"))
        await conn.execute(text(LOAD.format(assets=ASSETS, t0=T0, step=STEP_MS, last=rows - 1)))
        await conn.execute(text("CREATE INDEX ix_fixes_asset_ts ON fixes (asset_id, ts_ms)"))
    async with store.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE fixes"))
    return time.perf_counter() - started


async def median_ms(call: object, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def main(rows: int) -> int:
    schema = "bench_" + uuid.uuid4().hex[:8]
    store = await Store.connect(URL, schema=schema)
    try:
        seconds = await load(store, rows)
        print(
            f"generated {rows:,} fixes ({ASSETS} assets, {rows // ASSETS:,} each) in {seconds:.1f} s"
        )
        async with store.engine.connect() as conn:
            parts = await conn.scalar(
                text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'fixes'::regclass")
            )
        print(f"monthly partitions: {parts}")

        async def ping() -> None:
            async with store.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await median_ms(ping, 5)
        baseline = await median_ms(ping)
        print(f"baseline SELECT 1 round trip: median {baseline:.2f} ms")
        rng = random.Random(7)
        span = (rows // ASSETS) * STEP_MS
        print(f"{'range':>8} {'rows':>7} {'median ms':>10} {'x baseline':>11}")
        for name, width in RANGES:
            counts: list[int] = []

            async def query(width: int = width, counts: list[int] = counts) -> None:
                asset = f"bench-{rng.randrange(ASSETS)}"
                start = T0 + rng.randrange(max(1, span - width))
                counts.append(len(await store.track(asset, start, start + width)))

            await median_ms(query, 3)
            counts.clear()
            ms = await median_ms(query)
            print(
                f"{name:>8} {int(statistics.median(counts)):>7} {ms:>10.2f} {ms / baseline:>11.1f}"
            )
    finally:
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await store.close()
    return 0


if __name__ == "__main__":
    count = (
        int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("HZ_BENCH_ROWS", "10000000"))
    )
    sys.exit(asyncio.run(main(count)))
