"""Plumbing of :class:`cloud.archive.Store`: the engine, scoping helpers and the shared errors."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.archive._sql import StoreError, scoped, upsert

__all__ = ["ConflictError", "Scope", "StoreBase"]

Scope = Collection[str] | None


class ConflictError(StoreError):
    """The change breaks a uniqueness or reference rule (an open alert for that key exists...)."""


class StoreBase:
    """The engine and the generic row helpers every part of the store uses."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Wrap an engine whose schema is already migrated (use ``Store.connect``)."""
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self._partitions: set[str] = set()

    async def _upsert(self, table: Table, row: dict[str, Any], keys: tuple[str, ...]) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(upsert(self.dialect, table, row, keys))
        except IntegrityError as exc:
            raise ConflictError(f"{table.name}: {exc.orig}") from exc

    async def _select(
        self, table: Table, tenant: Any, scope: Scope, **equals: Any
    ) -> list[dict[str, Any]]:
        query = select(table).where(*(table.c[k] == v for k, v in equals.items()))
        if tenant is not None:
            query = scoped(query, tenant, scope)
        async with self.engine.connect() as conn:
            return [{str(k): v for k, v in r._mapping.items()} for r in await conn.execute(query)]

    async def _delete(self, table: Table, tenant: Any, scope: Scope, **equals: Any) -> bool:
        stmt = delete(table).where(*(table.c[k] == v for k, v in equals.items()))
        if tenant is not None and scope is not None:
            stmt = stmt.where(tenant.in_(list(scope)))
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(stmt)
        except IntegrityError as exc:
            raise ConflictError(f"{table.name}: still referenced ({exc.orig})") from exc
        return bool(result.rowcount)

    async def _insert_many(self, table: Table, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        async with self.engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                await conn.execute(table.insert(), rows[start : start + 5000])
        return len(rows)

    async def _copy(self, table: Table, rows: list[dict[str, Any]]) -> int:
        """Bulk-load rows on PostgreSQL with COPY (several times faster than INSERTs)."""
        if not rows:
            return 0
        columns = [c.name for c in table.columns]
        records = [tuple(row.get(c) for c in columns) for row in rows]
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.copy_records_to_table(table.name, records=records, columns=columns)
        return len(rows)
