"""The archive: registry, tracks, readings, alerts, geo objects, API keys (SQLAlchemy 2 Core).

One :class:`Store` class over SQLite (``sqlite+aiosqlite:///path``, the embedded default) and
PostgreSQL (``postgresql+asyncpg://...``, production). The schema is migrated on
:meth:`Store.connect`.

Scoping: every method that returns or changes tenant data takes ``enterprise_ids``; ``None``
means all enterprises (admin), an empty collection means none. An object outside the scope is
reported exactly like a missing one (``None`` / ``False``), so the API can answer 404.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import msgspec
from sqlalchemy import Table, delete, or_, select, update

import wire
from cloud.archive import schema as s
from cloud.archive._base import ConflictError, Scope
from cloud.archive._files import make_sqlite_files_private
from cloud.archive._notify import NotifyOps
from cloud.archive._ops import AlarmMark, StoreOps
from cloud.archive._sql import (
    StoreError,
    create_engine_for,
    fix_from_row,
    fix_row,
    geo_from_row,
    migrate,
    reading_from_row,
    reading_row,
    scoped,
    upsert,
)
from cloud.archive._windows import WindowOps
from cloud.archive.postgres import (
    ensure_fix_partitions,
    forget_fix_partitions,
    is_missing_partition,
)
from cloud.models import (
    Asset,
    Enterprise,
    Gateway,
    GeoKind,
    GeoObject,
    Point,
    Received,
    Site,
    region_contains,
)

__all__ = ["AlarmMark", "ConflictError", "Scope", "Store", "StoreError"]


class Store(StoreOps, NotifyOps, WindowOps):
    """Async archive over SQLite or PostgreSQL. Create with :meth:`connect`; close when done."""

    @classmethod
    async def connect(cls, url: str, *, schema: str | None = None, echo: bool = False) -> Store:
        """Open the database at ``url`` and migrate its schema to the current version.

        Args:
            url: ``sqlite+aiosqlite:///file.db`` or ``postgresql+asyncpg://user@host/db``.
            schema: PostgreSQL schema to use (created if missing); tests use one per run.
            echo: log every SQL statement.

        A SQLite file is created with mode 0600 (and so are its ``-wal`` and ``-shm`` files),
        an existing one made 0600: the archive is for the service's user only.
        """
        make_sqlite_files_private(url)
        engine = create_engine_for(url, schema=schema, echo=echo)
        try:
            await migrate(engine, schema=schema)
        except Exception:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    async def schema_version(self) -> int:
        """The schema version recorded in the database."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(s.schema_meta.c.value).where(s.schema_meta.c.key == "version")
            )
        return int(value or 0)

    # -- registry ---------------------------------------------------------------------------

    async def put_enterprise(self, enterprise: Enterprise) -> None:
        """Create or replace an enterprise."""
        await self._upsert(s.enterprises, msgspec.structs.asdict(enterprise), ("id",))

    async def get_enterprise(
        self, enterprise_id: str, *, enterprise_ids: Scope = None
    ) -> Enterprise | None:
        """One enterprise, or ``None`` if missing or outside the scope."""
        rows = await self._select(
            s.enterprises, s.enterprises.c.id, enterprise_ids, id=enterprise_id
        )
        return Enterprise(**rows[0]) if rows else None

    async def list_enterprises(
        self, enterprise_ids: Scope = None, *, region: str | None = None
    ) -> list[Enterprise]:
        """Enterprises in scope, optionally only those within GB/T 2260 ``region``."""
        rows = await self._select(s.enterprises, s.enterprises.c.id, enterprise_ids)
        found = [Enterprise(**r) for r in rows]
        if region is not None:
            found = [e for e in found if region_contains(region, e.region)]
        return sorted(found, key=lambda e: e.id)

    async def enterprise_ids_in_region(self, region: str) -> list[str]:
        """Ids of the enterprises whose region lies within ``region`` (a regulator's scope)."""
        return [e.id for e in await self.list_enterprises(region=region)]

    async def delete_enterprise(self, enterprise_id: str) -> bool:
        """Delete an enterprise; raise :class:`ConflictError` while it still has gateways, assets..."""
        return await self._delete(s.enterprises, s.enterprises.c.id, None, id=enterprise_id)

    async def put_gateway(self, gateway: Gateway) -> None:
        """Create or replace a gateway (its enterprise must exist)."""
        await self._upsert(s.gateways, msgspec.structs.asdict(gateway), ("id",))

    async def get_gateway(self, gateway_id: str, *, enterprise_ids: Scope = None) -> Gateway | None:
        """One gateway, or ``None`` if missing or outside the scope."""
        rows = await self._select(
            s.gateways, s.gateways.c.enterprise_id, enterprise_ids, id=gateway_id
        )
        return Gateway(**rows[0]) if rows else None

    async def gateway_owners(self, gateway_ids: Collection[str]) -> dict[str, str]:
        """The enterprise of each of these gateways that is registered (missing ones are left
        out), in one query per 500 ids: what :meth:`get_gateway` says of each, without a round
        trip per gateway when a round brings a few hundred gateways seen for the first time."""
        ids = sorted(set(gateway_ids))
        owners: dict[str, str] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                query = select(s.gateways.c.id, s.gateways.c.enterprise_id).where(
                    s.gateways.c.id.in_(ids[start : start + 500])
                )
                owners.update({row.id: row.enterprise_id for row in await conn.execute(query)})
        return owners

    async def list_gateways(self, enterprise_ids: Scope = None) -> list[Gateway]:
        """Gateways in scope, by id."""
        rows = await self._select(s.gateways, s.gateways.c.enterprise_id, enterprise_ids)
        return sorted((Gateway(**r) for r in rows), key=lambda g: g.id)

    async def delete_gateway(self, gateway_id: str, *, enterprise_ids: Scope = None) -> bool:
        """Delete a gateway; ``False`` if missing or outside the scope."""
        return await self._delete(
            s.gateways, s.gateways.c.enterprise_id, enterprise_ids, id=gateway_id
        )

    async def put_asset(self, asset: Asset) -> None:
        """Create or replace an asset (its enterprise must exist)."""
        await self._upsert(s.assets, msgspec.structs.asdict(asset), ("id",))

    async def get_asset(self, asset_id: str, *, enterprise_ids: Scope = None) -> Asset | None:
        """One asset, or ``None`` if missing or outside the scope."""
        rows = await self._select(s.assets, s.assets.c.enterprise_id, enterprise_ids, id=asset_id)
        return Asset(**rows[0]) if rows else None

    async def list_assets(
        self, enterprise_ids: Scope = None, *, asset_class: str | None = None
    ) -> list[Asset]:
        """Assets in scope, optionally of one class, by id."""
        filters = {} if asset_class is None else {"asset_class": asset_class}
        rows = await self._select(s.assets, s.assets.c.enterprise_id, enterprise_ids, **filters)
        return sorted((Asset(**r) for r in rows), key=lambda a: a.id)

    async def asset_owners(self, asset_ids: Collection[str]) -> dict[str, str]:
        """The enterprise of each of these assets that is registered (for ingest checks)."""
        return await self._owners(s.assets, asset_ids)

    async def site_owners(self, site_ids: Collection[str]) -> dict[str, str]:
        """The enterprise of each of these sites that is registered (for ingest checks)."""
        return await self._owners(s.sites, site_ids)

    async def _owners(self, table: Table, object_ids: Collection[str]) -> dict[str, str]:
        owners: dict[str, str] = {}
        ids = sorted(object_ids)
        async with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                query = select(table.c.id, table.c.enterprise_id).where(
                    table.c.id.in_(ids[start : start + 500])
                )
                owners.update({row.id: row.enterprise_id for row in await conn.execute(query)})
        return owners

    async def delete_asset(self, asset_id: str, *, enterprise_ids: Scope = None) -> bool:
        """Delete an asset (its archived track stays until retention)."""
        return await self._delete(s.assets, s.assets.c.enterprise_id, enterprise_ids, id=asset_id)

    async def put_site(self, site: Site) -> None:
        """Create or replace a site."""
        await self._upsert(s.sites, msgspec.structs.asdict(site), ("id",))

    async def get_site(self, site_id: str, *, enterprise_ids: Scope = None) -> Site | None:
        """One site, or ``None`` if missing or outside the scope."""
        rows = await self._select(s.sites, s.sites.c.enterprise_id, enterprise_ids, id=site_id)
        return Site(**rows[0]) if rows else None

    async def list_sites(self, enterprise_ids: Scope = None) -> list[Site]:
        """Sites in scope, by id."""
        rows = await self._select(s.sites, s.sites.c.enterprise_id, enterprise_ids)
        return sorted((Site(**r) for r in rows), key=lambda x: x.id)

    async def delete_site(self, site_id: str, *, enterprise_ids: Scope = None) -> bool:
        """Delete a site and its points."""
        if await self.get_site(site_id, enterprise_ids=enterprise_ids) is None:
            return False
        async with self.engine.begin() as conn:
            await conn.execute(delete(s.points).where(s.points.c.site_id == site_id))
            await conn.execute(delete(s.sites).where(s.sites.c.id == site_id))
        return True

    async def put_point(self, point: Point) -> None:
        """Create or replace a point of an existing site."""
        row = {
            "site_id": point.site_id,
            "tag": point.tag,
            "unit": point.unit,
            "limits": msgspec.to_builtins(point.limits),
        }
        await self._upsert(s.points, row, ("site_id", "tag"))

    async def list_points(self, site_id: str, *, enterprise_ids: Scope = None) -> list[Point]:
        """Points of a site in scope (empty if the site is missing or outside the scope)."""
        if await self.get_site(site_id, enterprise_ids=enterprise_ids) is None:
            return []
        rows = await self._select(s.points, None, None, site_id=site_id)
        return sorted((msgspec.convert(r, Point) for r in rows), key=lambda p: p.tag)

    async def delete_point(self, site_id: str, tag: str, *, enterprise_ids: Scope = None) -> bool:
        """Delete one point of a site in scope."""
        if await self.get_site(site_id, enterprise_ids=enterprise_ids) is None:
            return False
        return await self._delete(s.points, None, None, site_id=site_id, tag=tag)

    # -- tracks, readings, vessels --------------------------------------------------------

    async def insert_fixes(self, records: Sequence[Received[wire.Fix]]) -> int:
        """Archive fixes in one transaction; return how many were given (a fix whose gateway
        seq is archived already is not written twice)."""
        rows = [fix_row(r) for r in records]
        if self.dialect == "postgresql" and rows:
            stamps = [r["ts_ms"] for r in rows]
            await ensure_fix_partitions(self.engine, self._partitions, stamps)
            try:
                return await self._copy(s.fixes, rows, skip_existing=True)
            except Exception as exc:
                if not is_missing_partition(exc):
                    raise
                # Another worker's retention dropped a month this store had cached (COPY is
                # all or nothing, so trying again after re-creating it writes each row once).
                forget_fix_partitions(self._partitions, stamps)
                await ensure_fix_partitions(self.engine, self._partitions, stamps)
                return await self._copy(s.fixes, rows, skip_existing=True)
        return await self._insert_many(s.fixes, rows, skip_existing=True)

    async def insert_readings(self, records: Sequence[Received[wire.Reading]]) -> int:
        """Archive sensor readings; return how many were given (one row per gateway seq)."""
        rows = [reading_row(r) for r in records]
        if self.dialect == "postgresql":
            return await self._copy(s.readings, rows, skip_existing=True)
        return await self._insert_many(s.readings, rows, skip_existing=True)

    async def archived_items(
        self, gateway_id: str, seqs: Collection[int]
    ) -> dict[int, wire.Fix | wire.Reading]:
        """The fixes and readings archived under these seqs of a gateway (for comparing a
        duplicate with what was kept)."""
        wanted = sorted(set(seqs))
        found: dict[int, wire.Fix | wire.Reading] = {}
        if not wanted:
            return found
        async with self.engine.connect() as conn:
            for table, from_row in ((s.fixes, fix_from_row), (s.readings, reading_from_row)):
                query = select(table).where(
                    table.c.gateway_id == gateway_id, table.c.seq.in_(wanted)
                )
                for row in await conn.execute(query):
                    found[row.seq] = from_row(row._mapping)
        return found

    async def insert_vessels(self, records: Sequence[Received[wire.Vessel]]) -> int:
        """Keep the newest static data per (enterprise, MMSI); return how many were applied."""
        newest: dict[tuple[str, int], Received[wire.Vessel]] = {}
        for rec in records:
            key = (rec.enterprise_id, rec.item.mmsi)
            if key not in newest or newest[key].item.ts <= rec.item.ts:
                newest[key] = rec
        async with self.engine.begin() as conn:
            for rec in newest.values():
                row = {
                    "enterprise_id": rec.enterprise_id,
                    "mmsi": rec.item.mmsi,
                    "ts_ms": rec.item.ts,
                    "gateway_id": rec.gateway_id,
                    "data": msgspec.to_builtins(rec.item),
                }
                stmt = upsert(
                    self.dialect,
                    s.vessels,
                    row,
                    ("enterprise_id", "mmsi"),
                    where=s.vessels.c.ts_ms <= row["ts_ms"],
                )
                await conn.execute(stmt)
        return len(newest)

    async def track(
        self,
        asset_id: str,
        start_ms: int,
        end_ms: int,
        *,
        enterprise_ids: Scope = None,
        limit: int = 100_000,
    ) -> list[wire.Fix]:
        """Fixes of one asset with ``start_ms <= ts < end_ms``, oldest first.

        Late items carry the flag ``"late"``, future ones ``"future"``. Only fixes archived for
        enterprises in scope are returned (an asset moved between tenants keeps its history
        apart).
        """
        query = (
            select(s.fixes)
            .where(
                s.fixes.c.asset_id == asset_id,
                s.fixes.c.ts_ms >= start_ms,
                s.fixes.c.ts_ms < end_ms,
            )
            .order_by(s.fixes.c.ts_ms, s.fixes.c.seq)
            .limit(limit)
        )
        query = scoped(query, s.fixes.c.enterprise_id, enterprise_ids)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [fix_from_row(row._mapping) for row in result]

    async def readings(
        self,
        site_id: str,
        point: str,
        start_ms: int,
        end_ms: int,
        *,
        enterprise_ids: Scope = None,
        limit: int = 100_000,
    ) -> list[wire.Reading]:
        """Readings of one point with ``start_ms <= ts < end_ms``, oldest first."""
        c = s.readings.c
        query = (
            select(s.readings)
            .where(c.site_id == site_id, c.point == point, c.ts_ms >= start_ms, c.ts_ms < end_ms)
            .order_by(c.ts_ms, c.seq)
            .limit(limit)
        )
        query = scoped(query, c.enterprise_id, enterprise_ids)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [reading_from_row(row._mapping) for row in result]

    async def vessels(self, enterprise_ids: Scope = None) -> list[wire.Vessel]:
        """Newest static data of every vessel in scope, by MMSI."""
        query = scoped(select(s.vessels.c.data), s.vessels.c.enterprise_id, enterprise_ids)
        async with self.engine.connect() as conn:
            data = (await conn.execute(query.order_by(s.vessels.c.mmsi))).scalars().all()
        return [msgspec.convert(d, wire.Vessel) for d in data]

    # -- geo objects ------------------------------------------------------------------------

    async def put_geo(self, obj: GeoObject, *, now_ms: int) -> GeoObject:
        """Create a geo object or replace it with the next ``version``; return what was stored."""
        async with self.engine.begin() as conn:
            current = await conn.scalar(
                select(s.geo_objects.c.version).where(s.geo_objects.c.id == obj.id)
            )
            stored = msgspec.structs.replace(obj, version=(current or 0) + 1, updated_ms=now_ms)
            row = msgspec.structs.asdict(stored)
            await conn.execute(upsert(self.dialect, s.geo_objects, row, ("id",)))
            await conn.execute(upsert(self.dialect, s.geo_versions, row, ("id", "version")))
        return stored

    async def geo_history(
        self, kinds: Collection[str] = ("zone", "lot", "route", "trip")
    ) -> list[GeoObject]:
        """Every version of the geo objects of these kinds (the rules' world), by id and version;
        a deleted object's versions end at its deletion."""
        c = s.geo_versions.c
        query = select(s.geo_versions).where(c.kind.in_(list(kinds))).order_by(c.id, c.version)
        async with self.engine.connect() as conn:
            return [geo_from_row(r._mapping) for r in await conn.execute(query)]

    async def get_geo(
        self,
        object_id: str,
        *,
        enterprise_ids: Scope = None,
        kind: GeoKind | None = None,
        include_shared: bool = True,
    ) -> GeoObject | None:
        """One geo object in scope (regulator-wide ones too if ``include_shared``)."""
        found = await self._geo_query(enterprise_ids, kind, include_shared, object_id)
        return found[0] if found else None

    async def list_geo(
        self,
        kind: GeoKind | None = None,
        enterprise_ids: Scope = None,
        *,
        include_shared: bool = True,
    ) -> list[GeoObject]:
        """Geo objects of one kind (or all) in scope, by id."""
        return await self._geo_query(enterprise_ids, kind, include_shared, None)

    async def delete_geo(
        self,
        object_id: str,
        *,
        enterprise_ids: Scope = None,
        include_shared: bool = False,
        now_ms: int | None = None,
    ) -> bool:
        """Delete a geo object in scope (regulator-wide ones only with ``include_shared``); its
        versions end at ``now_ms`` (the rules stop applying it then)."""
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000
        if (
            await self.get_geo(
                object_id, enterprise_ids=enterprise_ids, include_shared=include_shared
            )
            is None
        ):
            return False
        ended = await self._delete(s.geo_objects, None, None, id=object_id)
        if ended:
            c = s.geo_versions.c
            stmt = (
                update(s.geo_versions)
                .where(c.id == object_id, or_(c.valid_to_ms.is_(None), c.valid_to_ms > now_ms))
                .values(valid_to_ms=now_ms)
            )
            async with self.engine.begin() as conn:
                await conn.execute(stmt)
        return ended

    async def _geo_query(
        self, scope: Scope, kind: str | None, shared: bool, object_id: str | None
    ) -> list[GeoObject]:
        c = s.geo_objects.c
        query = select(s.geo_objects).order_by(c.id)
        if kind is not None:
            query = query.where(c.kind == kind)
        if object_id is not None:
            query = query.where(c.id == object_id)
        if scope is not None:
            own = c.enterprise_id.in_(list(scope))
            query = query.where(own | c.enterprise_id.is_(None) if shared else own)
        async with self.engine.connect() as conn:
            return [geo_from_row(r._mapping) for r in await conn.execute(query)]
