"""Plumbing of :class:`cloud.archive.Store`: the engine, scoping helpers and the shared errors."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import Table, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.archive._sql import StoreError, insert_for, scoped, upsert

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

    async def _insert_many(
        self, table: Table, rows: list[dict[str, Any]], *, skip_existing: bool = False
    ) -> int:
        """Insert rows in one transaction; ``skip_existing`` leaves out rows that would break a
        unique index (an item archived before) instead of failing."""
        if not rows:
            return 0
        stmt: Any = table.insert()
        if skip_existing:
            stmt = insert_for(self.dialect, table).on_conflict_do_nothing()
        async with self.engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                await conn.execute(stmt, rows[start : start + 5000])
        return len(rows)

    async def _copy(
        self, table: Table, rows: list[dict[str, Any]], *, skip_existing: bool = False
    ) -> int:
        """Bulk-load rows on PostgreSQL with COPY (several times faster than INSERTs).

        With ``skip_existing``, a COPY that hits a row already there (a resend, a spill
        replayed after a crash) is done again through a temporary table and ``INSERT ... ON
        CONFLICT DO NOTHING``: slower, and needed only then.
        """
        if not rows:
            return 0
        columns = [c.name for c in table.columns]
        records = [tuple(row.get(c) for c in columns) for row in rows]
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            try:
                await driver.copy_records_to_table(table.name, records=records, columns=columns)
            except UniqueViolationError:
                if not skip_existing:
                    raise
                await _copy_skipping_existing(driver, table.name, columns, records)
        return len(rows)


async def _copy_skipping_existing(
    driver: Any, table: str, columns: list[str], records: list[tuple[Any, ...]]
) -> None:
    """COPY into a session-local staging table, then insert what is not there yet (one
    transaction; the staging table empties itself at commit)."""
    staging = f"hz_staging_{table}"
    names = ", ".join(columns)
    async with driver.transaction():
        await driver.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        await driver.copy_records_to_table(staging, records=records, columns=columns)
        await driver.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT DO NOTHING"
        )
