"""PostgreSQL specifics of the archive: monthly range partitions of ``fixes``.

Partitions are named ``fixes_pYYYYMM`` and cover ``[month start, next month start)`` in epoch
milliseconds. They are created on demand before an insert needs them and dropped whole by
retention once the entire month is older than the cutoff. Each store caches the names it
created; a month dropped meanwhile by another worker's retention is noticed when PostgreSQL
refuses the rows, and created again.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from typing import Final

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "ensure_fix_partitions",
    "forget_fix_partitions",
    "is_missing_partition",
    "month_bounds",
    "prune_fix_partitions",
]

log = logging.getLogger(__name__)
_NAME_RE: Final = re.compile(r"^fixes_p(\d{4})(\d{2})$")


def month_bounds(year: int, month: int) -> tuple[int, int]:
    """``[start, end)`` of a UTC month in epoch milliseconds."""
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    nxt = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
    return int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)


def _month_of(ts_ms: int) -> tuple[int, int]:
    day = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return day.year, day.month


async def ensure_fix_partitions(
    engine: AsyncEngine, known: set[str], ts_values: Iterable[int]
) -> None:
    """Create the monthly partitions that rows with these timestamps need (idempotent)."""
    for year, month in sorted({_month_of(ts) for ts in ts_values}):
        name = f"fixes_p{year:04d}{month:02d}"
        if name in known:
            continue
        start, end = month_bounds(year, month)
        ddl = (
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF fixes "
            f"FOR VALUES FROM ({start}) TO ({end})"
        )
        for attempt in range(3):
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(ddl))
                break
            except DBAPIError:
                # Another worker created it at the same moment: check and retry.
                if attempt == 2:
                    raise
        known.add(name)


def forget_fix_partitions(known: set[str], ts_values: Iterable[int]) -> None:
    """Drop cached partition names of these timestamps' months (they must be checked again)."""
    for year, month in {_month_of(ts) for ts in ts_values}:
        known.discard(f"fixes_p{year:04d}{month:02d}")


def is_missing_partition(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL refusing a row that no partition of ``fixes`` takes."""
    return getattr(exc, "sqlstate", None) == "23514" and "no partition" in str(exc)


async def prune_fix_partitions(engine: AsyncEngine, known: set[str], cutoff_ms: int) -> int:
    """Drop partitions whose whole month lies before ``cutoff_ms``; return how many."""
    query = text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE p.relname = 'fixes' AND n.nspname = current_schema()"
    )
    dropped = 0
    async with engine.begin() as conn:
        names = (await conn.execute(query)).scalars().all()
        for name in names:
            match = _NAME_RE.match(name)
            if match is None:
                continue
            _, end = month_bounds(int(match.group(1)), int(match.group(2)))
            if end <= cutoff_ms:
                await conn.execute(text(f"DROP TABLE {name}"))
                known.discard(name)
                dropped += 1
    if dropped:
        log.info("dropped %d monthly fix partitions before %d", dropped, cutoff_ms)
    return dropped
