"""SQL plumbing shared by :mod:`cloud.archive`: engines, migrations, dialect helpers, row mapping."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final, TypeVar

from sqlalchemy import Select, Table, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import wire
from cloud.archive import schema as s
from cloud.models import Alert, AlertEvent, GeoObject, Received

__all__ = [
    "DAY_MS",
    "StoreError",
    "alert_from_row",
    "create_engine_for",
    "fix_from_row",
    "fix_row",
    "geo_from_row",
    "insert_for",
    "migrate",
    "quote_ident",
    "reading_from_row",
    "reading_row",
    "scoped",
    "upsert",
]

log = logging.getLogger(__name__)
DAY_MS: Final = 86_400_000
_S = TypeVar("_S", bound=Select[Any])


class StoreError(Exception):
    """Root of the archive's errors."""


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier quoted as SQL and ``search_path`` want it (any name, any case)."""
    return '"' + name.replace('"', '""') + '"'


def create_engine_for(url: str, *, schema: str | None, echo: bool) -> AsyncEngine:
    """An async engine for SQLite (WAL, foreign keys, busy timeout) or PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        return engine
    if url.startswith("postgresql"):
        settings = {"search_path": quote_ident(schema)} if schema else {}
        return create_async_engine(
            url, echo=echo, pool_size=5, connect_args={"server_settings": settings}
        )
    raise StoreError(
        f"unsupported database url {url!r}: use sqlite+aiosqlite or postgresql+asyncpg"
    )


async def migrate(engine: AsyncEngine, *, schema: str | None) -> int:
    """Bring the schema to :data:`cloud.archive.schema.SCHEMA_VERSION`; return the version found."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            if schema:
                await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}"))
            # Serialize workers migrating the same database at the same time.
            await conn.execute(text("SELECT pg_advisory_xact_lock(72616)"))
        await conn.run_sync(s.schema_meta.create, checkfirst=True)
        found = await conn.scalar(
            select(s.schema_meta.c.value).where(s.schema_meta.c.key == "version")
        )
        version = int(found or 0)
        if version > s.SCHEMA_VERSION:
            raise StoreError(
                f"database schema {version} is newer than this build's {s.SCHEMA_VERSION}"
            )
        for step in s.MIGRATIONS[version:]:
            await step(conn)
        if version < s.SCHEMA_VERSION:
            log.info("archive schema migrated from %d to %d", version, s.SCHEMA_VERSION)
            await conn.execute(s.schema_meta.delete().where(s.schema_meta.c.key == "version"))
            await conn.execute(
                s.schema_meta.insert().values(key="version", value=str(s.SCHEMA_VERSION))
            )
    return version


def insert_for(dialect: str, table: Table) -> Any:
    """A dialect-specific INSERT (it has ``on_conflict_do_*``)."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def upsert(
    dialect: str, table: Table, row: Mapping[Any, Any], keys: Sequence[str], *, where: Any = None
) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET every other column [WHERE ``where``]."""
    stmt = insert_for(dialect, table).values(**row)
    changes = {k: stmt.excluded[k] for k in row if k not in keys}
    if not changes:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=changes, where=where)


def scoped(query: _S, column: Any, scope: Collection[str] | None) -> _S:
    """Restrict ``query`` to rows whose tenant ``column`` is in ``scope`` (``None``: all)."""
    return query if scope is None else query.where(column.in_(list(scope)))


def _marks(rec: Received[Any], flags: tuple[str, ...] = ()) -> str:
    marks = list(flags)
    if rec.late and "late" not in marks:
        marks.append("late")
    if rec.future and "future" not in marks:
        marks.append("future")
    return ",".join(marks)


def fix_row(rec: Received[wire.Fix]) -> dict[str, Any]:
    """The ``fixes`` row of a received fix."""
    f = rec.item
    return {
        "asset_id": f.asset,
        "ts_ms": f.ts,
        "enterprise_id": rec.enterprise_id,
        "gateway_id": rec.gateway_id,
        "seq": f.seq,
        "lat": f.lat,
        "lon": f.lon,
        "speed_kmh": f.speed_kmh,
        "course": f.course,
        "heading": f.heading,
        "alt_m": f.alt_m,
        "hdop": f.hdop,
        "pdop": f.pdop,
        "vdop": f.vdop,
        "fix_type": f.fix_type,
        "sats": f.sats,
        "quality": f.quality,
        "source": f.source,
        "nav_status": f.nav_status,
        "flags": _marks(rec, f.flags),
        "recv_ms": rec.recv_ms,
    }


def fix_from_row(row: Mapping[Any, Any]) -> wire.Fix:
    """A wire fix from a ``fixes`` row (stored marks such as ``late`` are in ``flags``)."""
    return wire.Fix(
        seq=row["seq"],
        ts=row["ts_ms"],
        asset=row["asset_id"],
        lat=row["lat"],
        lon=row["lon"],
        speed_kmh=row["speed_kmh"],
        course=row["course"],
        heading=row["heading"],
        alt_m=row["alt_m"],
        hdop=row["hdop"],
        pdop=row["pdop"],
        vdop=row["vdop"],
        fix_type=row["fix_type"],
        sats=row["sats"],
        quality=row["quality"],
        source=row["source"],
        nav_status=row["nav_status"],
        flags=tuple(x for x in row["flags"].split(",") if x),
    )


def reading_row(rec: Received[wire.Reading]) -> dict[str, Any]:
    """The ``readings`` row of a received reading."""
    r = rec.item
    return {
        "site_id": r.site,
        "point": r.point,
        "ts_ms": r.ts,
        "enterprise_id": rec.enterprise_id,
        "gateway_id": rec.gateway_id,
        "seq": r.seq,
        "value": r.value,
        "unit": r.unit,
        "quality": r.quality,
        "recv_ms": rec.recv_ms,
        "late": rec.late,
    }


def reading_from_row(row: Mapping[Any, Any]) -> wire.Reading:
    """A wire reading from a ``readings`` row."""
    return wire.Reading(
        seq=row["seq"],
        ts=row["ts_ms"],
        site=row["site_id"],
        point=row["point"],
        value=row["value"],
        unit=row["unit"],
        quality=row["quality"],
    )


def alert_from_row(row: Mapping[Any, Any], events: Sequence[Mapping[Any, Any]]) -> Alert:
    """An alert from its row and its event rows (in order)."""
    history = tuple(
        AlertEvent(
            ts_ms=e["ts_ms"],
            action=e["action"],
            by=e["by"],
            comment=e["comment"],
            data=e["data"] or {},
        )
        for e in events
    )
    fields = dict(row)
    fields["data"] = fields.get("data") or {}
    return Alert(**fields, events=history)


def geo_from_row(row: Mapping[Any, Any]) -> GeoObject:
    """A geo object from its row."""
    return GeoObject(**row)
