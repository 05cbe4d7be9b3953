"""Pieces shared by the live-state adapters: distance, subscriptions, newest fix per asset."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence

import wire
from cloud.models import LiveEvent, Received

__all__ = ["EARTH_RADIUS_M", "Subscription", "haversine_m", "newest_per_asset"]

#: Mean Earth radius used by Redis GEO commands too, so both adapters agree.
EARTH_RADIUS_M = 6372797.560856


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (same sphere as Redis GEOSEARCH)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class Subscription:
    """A live-feed subscription: an async iterator of :class:`LiveEvent`, also a context manager.

    ``async with live.subscribe() as sub`` waits until the subscription is active, so no event
    published afterwards is missed; ``async for event in sub`` then yields events.
    """

    async def start(self) -> None:
        """Make the subscription active (idempotent)."""

    async def aclose(self) -> None:
        """Stop receiving and release the subscription."""

    async def _next(self) -> LiveEvent:
        raise NotImplementedError

    async def __aenter__(self) -> Subscription:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        return self

    async def __anext__(self) -> LiveEvent:
        await self.start()
        return await self._next()


def newest_per_asset(records: Sequence[Received[wire.Fix]]) -> dict[str, Received[wire.Fix]]:
    """The newest usable (not late, not future) record of each asset in a batch."""
    newest: dict[str, Received[wire.Fix]] = {}
    for rec in records:
        if rec.late or rec.future:
            continue
        old = newest.get(rec.item.asset)
        if old is None or rec.item.ts >= old.item.ts:
            newest[rec.item.asset] = rec
    return newest
