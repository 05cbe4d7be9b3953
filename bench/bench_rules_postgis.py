"""Zone membership and distance to route: the engine's geometry against PostGIS (issue 12, c).

The province of ``bench_rules.py`` (``bench/rules_world.py``: 10,000 zones, 500 lots, 1,000
routes with trips) is loaded into PostGIS from the same GeoJSON the engine's world is built
from, in a throw-away schema (``bench_rules_<hex>``, dropped at the end): zones and lots in
the world's own metric plane (the same azimuthal equidistant projection, registered as a
spatial reference of the schema; circles and corridors buffered by PostGIS itself), with a
GiST index, and again as ``geography`` (GiST too); routes with their sections' widths. Then the
same fixes, in batches of 1,000 as the service sees them, ask both sides the same questions:

- zones: which zones and lots contain each fix. Engine: ``World.project`` + ``World.near``
  (the STRtree) + ``shapely.contains_xy``, as ``Engine`` does it. PostGIS: one query per batch,
  ``ST_Intersects`` of each fix (sent as longitude/latitude arrays) with the indexed zones.
- route: how far each fix of a trip's truck lies outside its route's corridor (distance to the
  line minus the half width of the section it is beside). Engine: fix by fix, as its trip step
  does it today, and vectorized over the batch (what it could do). PostGIS:
  ``ST_Distance`` and ``ST_LineLocatePoint`` on the route, joined by id.

Printed: fixes/s of each side (median of several runs), the ratio, and how many answers differ
(a zone one side finds and the other not; a corridor inside/outside that differs), with how far
from the boundary the differences lie.

    python bench/bench_rules_postgis.py [--quick] [--runs N] [--fixes N]

Needs the PostgreSQL of the development machine (127.0.0.1:5432, database ``test``) with PostGIS
(``deploy/dev-services.sh`` installs Debian's ``postgresql-15-postgis-3``); without it, it says
so and exits with 77 (skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import rules_world
import shapely
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

import wire
from cloud.rules.objects import ZoneSpec
from cloud.rules.world import World

URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SKIPPED = 77
SRID = 990_001  # the world's plane, registered for the run
BATCH = 1_000


@dataclass(frozen=True)
class Plan:
    sizes: rules_world.Sizes
    fixes: int
    runs: int


FULL = Plan(rules_world.FULL, 20_000, 3)
QUICK = Plan(rules_world.QUICK, 2_000, 3)

ZONE_SQL = """
SELECT f.i - 1, z.idx
FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) WITH ORDINALITY AS f(lon, lat, i)
JOIN {table} z ON ST_Intersects(z.shape, {point})
"""
METRIC_POINT = f"ST_Transform(ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326), {SRID})"
GEOGRAPHY_POINT = "CAST(ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326) AS geography)"
ROUTE_SQL = f"""
SELECT f.i - 1, ST_Distance(r.line, p.pt) - r.half_width[
         least(greatest(width_bucket(ST_LineLocatePoint(r.line, p.pt) * r.length, r.cum), 1),
               cardinality(r.half_width))]
FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[]), CAST(:routes AS text[]))
     WITH ORDINALITY AS f(lon, lat, route, i)
JOIN routes r ON r.id = f.route
CROSS JOIN LATERAL (SELECT {METRIC_POINT} AS pt) AS p
"""


class UnavailableError(Exception):
    """PostgreSQL or PostGIS cannot be used here (the bench is skipped)."""


# -- PostGIS side ----------------------------------------------------------------------------


async def postgis_schema(conn: AsyncConnection) -> str | None:
    """The schema PostGIS is installed in, ``None`` if it is not (raise if unavailable)."""
    available = await conn.scalar(
        text("SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'")
    )
    if available is None:
        raise UnavailableError(
            "PostGIS is not installed for the PostgreSQL at 127.0.0.1:5432 "
            "(Debian: apt-get install postgresql-15-postgis-3, or run deploy/dev-services.sh)"
        )
    found = await conn.scalar(
        text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'postgis'")
    )
    return None if found is None else str(found)


async def load(engine: AsyncEngine, world: World, province: rules_world.Province) -> str:
    """Zones, lots and routes into PostGIS; returns what the loading took, in words."""
    by_version = {(o.id, o.version): o for o in province.objects}
    zones = []
    for zone in world.zones:
        obj = by_version[(zone.id, zone.version)]
        spec = zone.spec
        radius = spec.radius_m if isinstance(spec, ZoneSpec) else None
        width = spec.width_m if isinstance(spec, ZoneSpec) else None
        zones.append({"idx": zone.index, "g": orjson.dumps(obj.geometry).decode(),
                      "radius": radius, "half": None if width is None else width / 2})  # fmt: skip
    # Circles and corridors are areas: PostGIS buffers them as the engine does. (Parameters are
    # cast so that asyncpg's prepared statements know their types.)
    wgs84 = "ST_SetSRID(ST_GeomFromGeoJSON(CAST(:g AS text)), 4326)"
    metric = f"ST_Transform({wgs84}, {SRID})"
    sphere = f"CAST({wgs84} AS geography)"
    area, spherical = (
        f"CASE WHEN CAST(:radius AS float8) IS NOT NULL "
        f"THEN ST_Buffer({shape}, CAST(:radius AS float8), 'quad_segs=16') "
        f"WHEN CAST(:half AS float8) IS NOT NULL "
        f"THEN ST_Buffer({shape}, CAST(:half AS float8), 'endcap=flat') ELSE {shape} END"
        for shape in (metric, sphere)
    )
    routes = [
        {"id": r.id, "g": orjson.dumps(_route_geometry(province, r.id)).decode(),
         "cum": r.cum_m.tolist(), "half": r.half_width_m.tolist()}
        for r in world.routes.values()
    ]  # fmt: skip
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO zones (idx, shape) VALUES (:idx, {area})"), zones)
        await conn.execute(
            text(f"INSERT INTO zones_geography (idx, shape) VALUES (:idx, {spherical})"), zones
        )
        await conn.execute(
            text(
                f"INSERT INTO routes (id, line, cum, half_width) VALUES (:id, {metric}, "
                "CAST(:cum AS float8[]), CAST(:half AS float8[]))"
            ),
            routes,
        )
        await conn.execute(text("UPDATE routes SET length = ST_Length(line)"))
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text("CREATE INDEX ON zones USING gist (shape)"))
        await conn.execute(text("CREATE INDEX ON zones_geography USING gist (shape)"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE zones"))
        await conn.execute(text("ANALYZE zones_geography"))
        await conn.execute(text("ANALYZE routes"))
    indexed = time.perf_counter() - started
    return (
        f"{len(zones):,} zone versions and lots (metric and geography) and {len(routes):,} "
        f"routes loaded in {loaded:.1f} s, GiST indexes built in {indexed:.1f} s"
    )


def _route_geometry(province: rules_world.Province, route_id: str) -> dict[str, Any]:
    for obj in province.objects:
        if obj.kind == "route" and obj.id == route_id:
            return obj.geometry
    raise KeyError(route_id)


async def create_schema(engine: AsyncEngine, schema: str, world: World) -> bool:
    """The schema, its tables and the world's plane as a spatial reference; whether PostGIS was
    installed into the schema (and goes with it)."""
    async with engine.begin() as conn:
        installed = await postgis_schema(conn)
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        if installed is None:
            await conn.execute(text(f'CREATE EXTENSION postgis SCHEMA "{schema}"'))
        proj = world.projection
        proj4 = f"+proj=aeqd +lat_0={proj.lat0} +lon_0={proj.lon0} +datum=WGS84 +units=m +no_defs"
        await conn.execute(
            text(
                "INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, proj4text) "
                "VALUES (:srid, 'hazwatch-bench', :srid, :proj4)"
            ),
            {"srid": SRID, "proj4": proj4},
        )
        await conn.execute(text(f"CREATE TABLE zones (idx int, shape geometry(Geometry, {SRID}))"))
        await conn.execute(text("CREATE TABLE zones_geography (idx int, shape geography)"))
        await conn.execute(
            text(
                f"CREATE TABLE routes (id text PRIMARY KEY, line geometry(LineString, {SRID}), "
                "length float8, cum float8[], half_width float8[])"
            )
        )
    return installed is None


async def drop_schema(engine: AsyncEngine, schema: str, owned: bool) -> None:
    async with engine.begin() as conn:
        if not owned:  # PostGIS lives elsewhere: take our spatial reference back out of it
            await conn.execute(text("DELETE FROM spatial_ref_sys WHERE srid = :s"), {"s": SRID})
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


# -- the two sides ---------------------------------------------------------------------------


def arrays(fixes: Sequence[wire.Fix]) -> tuple[list[float], list[float]]:
    return [f.lon for f in fixes], [f.lat for f in fixes]


def engine_zones(
    world: World, shapes: npt.NDArray[np.object_], fixes: Sequence[wire.Fix]
) -> set[tuple[int, int]]:
    """(fix, zone) pairs with the fix inside, as the engine's geometry step finds them
    (``shapes``: the world's zone shapes, an array)."""
    lons, lats = arrays(fixes)
    xs, ys = world.project(lons, lats)
    fix_idx, zone_idx = world.near(xs, ys)
    inside = shapely.contains_xy(shapes[zone_idx], xs[fix_idx], ys[fix_idx])
    return set(zip(fix_idx[inside].tolist(), zone_idx[inside].tolist(), strict=True))


def engine_route(world: World, fixes: Sequence[wire.Fix], routes: Sequence[str]) -> list[float]:
    """Metres outside the corridor of each fix's route (negative inside), fix by fix as the
    engine's trip step computes it."""
    lons, lats = arrays(fixes)
    xs, ys = world.project(lons, lats)
    out = []
    for x, y, route_id in zip(xs.tolist(), ys.tolist(), routes, strict=True):
        route = world.routes[route_id]
        point = shapely.points(x, y)
        along = float(shapely.line_locate_point(route.line, point))
        out.append(float(shapely.distance(route.line, point)) - route.half_width_at(along))
    return out


def engine_route_batch(
    world: World, fixes: Sequence[wire.Fix], routes: Sequence[str]
) -> list[float]:
    """The same, for the whole batch in a few vectorized calls (what the engine could do)."""
    lons, lats = arrays(fixes)
    xs, ys = world.project(lons, lats)
    points = shapely.points(xs, ys)
    lines = np.array([world.routes[r].line for r in routes], dtype=object)
    along = shapely.line_locate_point(lines, points)
    off = shapely.distance(lines, points)
    return [
        float(d) - world.routes[r].half_width_at(float(a))
        for d, a, r in zip(off.tolist(), along.tolist(), routes, strict=True)
    ]


async def postgis_zones(
    conn: AsyncConnection, fixes: Sequence[wire.Fix], *, geography: bool
) -> set[tuple[int, int]]:
    lons, lats = arrays(fixes)
    sql = ZONE_SQL.format(
        table="zones_geography" if geography else "zones",
        point=GEOGRAPHY_POINT if geography else METRIC_POINT,
    )
    rows = await conn.execute(text(sql), {"lons": lons, "lats": lats})
    return {(int(i), int(z)) for i, z in rows}


async def postgis_route(
    conn: AsyncConnection, fixes: Sequence[wire.Fix], routes: Sequence[str]
) -> list[float]:
    lons, lats = arrays(fixes)
    rows = await conn.execute(text(ROUTE_SQL), {"lons": lons, "lats": lats, "routes": list(routes)})
    out = [0.0] * len(fixes)
    for i, off in rows:
        out[int(i)] = float(off)
    return out


# -- timing and comparing --------------------------------------------------------------------


async def timed(call: Callable[[], Awaitable[object]], runs: int) -> tuple[float, object]:
    """Median seconds of ``runs`` calls, and the last call's answer."""
    times, answer = [], None
    for _ in range(runs):
        started = time.perf_counter()
        answer = await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), answer


def batches(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def zone_mismatch(
    world: World,
    fixes: Sequence[wire.Fix],
    mine: set[tuple[int, int]],
    theirs: set[tuple[int, int]],
) -> str:
    differ = mine ^ theirs
    if not differ:
        return "0"
    xs, ys = world.project(*arrays(fixes))
    gaps = [
        float(shapely.distance(world.zones[z].boundary, shapely.points(xs[i], ys[i])))
        for i, z in differ
    ]
    return f"{len(differ)} (all within {max(gaps):.2f} m of a boundary)"


def route_mismatch(mine: Sequence[float], theirs: Sequence[float]) -> str:
    delta = np.abs(np.array(mine) - np.array(theirs))
    sides = sum((a > 0) != (b > 0) for a, b in zip(mine, theirs, strict=True))
    return f"{sides} (metres outside differ by {delta.max():.3f} m at most)"


async def compare(
    engine: AsyncEngine, world: World, zone_fixes: list[wire.Fix], trip_fixes: list[wire.Fix],
    runs: int,
) -> None:  # fmt: skip
    routes = [world.trip_at(f.asset, f.ts, 3600.0) for f in trip_fixes]
    kept = [(f, t.route.id) for f, t in zip(trip_fixes, routes, strict=True) if t and t.route]
    route_fixes, route_ids = [f for f, _ in kept], [r for _, r in kept]
    print(
        f"{'question':<22} {'fixes':>7} {'engine fixes/s':>15} {'PostGIS fixes/s':>16} "
        f"{'engine/PostGIS':>15}  answers differing"
    )
    shapes = np.array([z.shape for z in world.zones], dtype=object)
    async with engine.connect() as conn:

        async def sql_zones(geography: bool) -> set[tuple[int, int]]:
            found: set[tuple[int, int]] = set()
            for start in range(0, len(zone_fixes), BATCH):
                part = await postgis_zones(
                    conn, zone_fixes[start : start + BATCH], geography=geography
                )
                found |= {(i + start, z) for i, z in part}
            return found

        async def own_zones() -> set[tuple[int, int]]:
            found: set[tuple[int, int]] = set()
            for start in range(0, len(zone_fixes), BATCH):
                part = engine_zones(world, shapes, zone_fixes[start : start + BATCH])
                found |= {(i + start, z) for i, z in part}
            return found

        async def sql_route() -> list[float]:
            out: list[float] = []
            for start in range(0, len(route_fixes), BATCH):
                end = start + BATCH
                out += await postgis_route(conn, route_fixes[start:end], route_ids[start:end])
            return out

        async def own_route(step: Callable[..., list[float]]) -> list[float]:
            out: list[float] = []
            for start in range(0, len(route_fixes), BATCH):
                end = start + BATCH
                out += step(world, route_fixes[start:end], route_ids[start:end])
            return out

        await sql_zones(False)  # warm the server's caches and the prepared statements
        mine_s, mine = await timed(own_zones, runs)
        for name, geography in (("zones (metric plane)", False), ("zones (geography)", True)):
            theirs_s, theirs = await timed(functools.partial(sql_zones, geography), runs)
            assert isinstance(mine, set)
            assert isinstance(theirs, set)
            _row(name, len(zone_fixes), mine_s, theirs_s,
                 zone_mismatch(world, zone_fixes, mine, theirs))  # fmt: skip
        theirs_s, theirs_off = await timed(sql_route, runs)
        assert isinstance(theirs_off, list)
        for name, step in (("route, fix by fix", engine_route),
                           ("route, vectorized", engine_route_batch)):  # fmt: skip
            mine_s, mine_off = await timed(functools.partial(own_route, step), runs)
            assert isinstance(mine_off, list)
            _row(name, len(route_fixes), mine_s, theirs_s, route_mismatch(mine_off, theirs_off))
        assert isinstance(mine, set)
        print(f"memberships found: {len(mine):,} (fix, zone) pairs over {len(zone_fixes):,} fixes")


def _row(name: str, count: int, mine_s: float, theirs_s: float, differ: str) -> None:
    print(
        f"{name:<22} {count:>7,} {count / mine_s:>15,.0f} {count / theirs_s:>16,.0f} "
        f"{theirs_s / mine_s:>14,.1f}x  {differ}",
        flush=True,
    )


async def probe() -> tuple[str, str | None]:
    """The server's version and the schema PostGIS is in (``None``: not created yet)."""
    engine = create_async_engine(URL)
    try:
        async with engine.connect() as conn:
            version = str(await conn.scalar(text("SHOW server_version")))
            return version, await postgis_schema(conn)
    except OSError as exc:
        raise UnavailableError(f"PostgreSQL does not answer at 127.0.0.1:5432 ({exc})") from exc
    finally:
        await engine.dispose()


async def run(plan: Plan, runs: int, count: int) -> int:
    version, installed = await probe()
    schema = "bench_rules_" + uuid.uuid4().hex[:8]
    path = ",".join(dict.fromkeys([schema, installed or schema, "public"]))
    engine = create_async_engine(URL, connect_args={"server_settings": {"search_path": path}})
    province = rules_world.build_province(plan.sizes)
    world = World.build(province.objects, province.assets)
    owned = await create_schema(engine, schema, world)
    try:
        async with engine.connect() as conn:
            postgis = await conn.scalar(text("SELECT postgis_lib_version()"))
        print(f"PostgreSQL {version}, PostGIS {postgis}; batches of {BATCH:,} fixes")
        print(await load(engine, world, province))
        zone_fixes = province.fixes(0.0, 1.2 * count / province.fix_rate() + 30)[:count]
        on_trip = np.zeros(len(province.assets), dtype=bool)
        on_trip[: plan.sizes.routes] = True
        rate = float(np.sum(1.0 / province.motion.period_s[on_trip]))
        trip_fixes = province.fixes(0.0, 1.2 * count / rate + 30, only=on_trip)[:count]
        await compare(engine, world, zone_fixes, trip_fixes, runs)
    finally:
        await drop_schema(engine, schema, owned)
        await engine.dispose()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small world, a few seconds")
    parser.add_argument("--runs", type=int, help="runs per question (median)")
    parser.add_argument("--fixes", type=int, help="fixes per question")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    try:
        return asyncio.run(run(plan, args.runs or plan.runs, args.fixes or plan.fixes))
    except UnavailableError as exc:
        print(f"skipped: {exc}", flush=True)
        return SKIPPED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
