"""Fixtures of the cloud core tests: the archive over SQLite and PostgreSQL, live state over
Redis and memory, each isolated per test (own file, own PostgreSQL schema, own key prefix)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.ingest import Ingest
from cloud.live import LiveState, MemoryLiveState, RedisLiveState
from cloud.models import Enterprise, Gateway
from tests.conftest import POSTGRES_URL, REDIS_URL


async def drop_schema(schema: str) -> None:
    """Remove a test's PostgreSQL schema and everything in it."""
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


async def delete_prefix(client: aioredis.Redis, prefix: str) -> None:
    """Remove a test's Redis keys."""
    keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)


@contextlib.asynccontextmanager
async def open_store(kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty archive: ``sqlite`` in a temporary file or ``postgresql`` in its own schema."""
    if kind == "sqlite":
        opened = await Store.connect(f"sqlite+aiosqlite:///{tmp_path / 'archive.db'}")
        try:
            yield opened
        finally:
            await opened.close()
        return
    schema = "hzt_" + uuid.uuid4().hex[:12]
    opened = await Store.connect(POSTGRES_URL, schema=schema)
    try:
        yield opened
    finally:
        await opened.close()
        await drop_schema(schema)


@contextlib.asynccontextmanager
async def open_live(kind: str, unique_id: str) -> AsyncIterator[LiveState]:
    """An empty live state: ``memory`` or ``redis`` under a unique key prefix."""
    if kind == "memory":
        state = MemoryLiveState()
        try:
            yield state
        finally:
            await state.close()
        return
    client = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"hzt:{unique_id}:"
    shared = RedisLiveState(client, prefix)
    try:
        yield shared
    finally:
        await shared.close()
        await delete_prefix(client, prefix)
        await client.aclose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty, migrated archive on each backend."""
    async with open_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["memory", "redis"])
async def live(request: pytest.FixtureRequest, unique_id: str) -> AsyncIterator[LiveState]:
    """An empty live state on each adapter."""
    async with open_live(request.param, unique_id) as state:
        yield state


async def register(
    store: Store, enterprise_id: str, gateway_id: str, region: str = "320281"
) -> None:
    """Register an enterprise and one of its gateways."""
    await store.put_enterprise(Enterprise(id=enterprise_id, name=enterprise_id, region=region))
    await store.put_gateway(Gateway(id=gateway_id, enterprise_id=enterprise_id))


@pytest.fixture(params=["embedded", "production"])
async def ingest(
    request: pytest.FixtureRequest, tmp_path: Path, unique_id: str
) -> AsyncIterator[Ingest]:
    """An ingest with alerts on one of the two stacks; gateway ``<unique_id>`` of ``e1`` known.

    ``embedded``: SQLite, in-process state, the archive's durable ledger; ``production``:
    PostgreSQL, Redis state and ledger.
    """
    embedded = request.param == "embedded"
    async with (
        open_store("sqlite" if embedded else "postgresql", tmp_path) as store,
        open_live("memory" if embedded else "redis", unique_id) as live,
    ):
        await register(store, "e1", unique_id)
        yield Ingest(
            store=store,
            live=live,
            ledger=store if embedded else live,
            alerts=AlertService(store, live),
        )
