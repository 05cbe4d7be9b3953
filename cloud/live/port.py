"""The live state port: what ingest, rules and the API need to know *now*.

Latest fix and status per asset, rule state, gateways, geo index, live feed, and the
``(gateway, seq)`` de-duplication ledger. Two adapters implement it:
:class:`~cloud.live.redis_adapter.RedisLiveState` (pipelined; what production and several workers
share) and :class:`~cloud.live.memory.MemoryLiveState` (in-process, the embedded default). Only
the Redis one is durable across restarts and shared by workers (the archive's ledger is the
durable choice for the embedded setup: :meth:`cloud.archive.Store.admit_seqs`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import wire
from cloud.live._common import Subscription
from cloud.models import GatewayLive, LatestFix, LiveEvent, Received

__all__ = ["BatchLedger", "BatchLive", "LiveState", "SeqLedger"]


@runtime_checkable
class SeqLedger(Protocol):
    """Durable memory of which ``(gateway, seq)`` were received (de-duplication, gaps)."""

    async def seen_seqs(self, gateway_id: str, seqs: Sequence[int]) -> list[int]:
        """Those of ``seqs`` admitted before, sorted (reads only: ingest asks before it writes
        and admits only what its archive writes made durable)."""
        ...

    async def admit_seqs(self, gateway_id: str, seqs: Sequence[int], *, now_ms: int) -> list[int]:
        """Record ``seqs``; return, sorted, those never admitted before (atomic per seq)."""
        ...

    async def missing_seqs(self, gateway_id: str, first_seq: int, last_seq: int) -> int:
        """How many of ``first_seq .. last_seq`` (inclusive) were never admitted."""
        ...

    async def high_water(self, gateway_id: str, seq: int) -> int | None:
        """Raise the gateway's highest data ``seq`` to ``seq``; return the previous one."""
        ...


@runtime_checkable
class LiveState(SeqLedger, Protocol):
    """What ingest, rules and the API need to know *now*; one interface, two adapters."""

    async def put_fixes(self, records: Sequence[Received[wire.Fix]]) -> list[str]:
        """Keep each asset's newest fix and its position in the geo index.

        Late and future records are ignored; a record older than the stored one never replaces
        it (safe with several workers). Returns the asset ids whose latest fix changed.
        """
        ...

    async def latest_fixes(self, asset_ids: Collection[str]) -> dict[str, LatestFix]:
        """The newest fix of each asset that has one."""
        ...

    async def set_asset_status(self, asset_id: str, status: Mapping[str, Any]) -> None:
        """Replace an asset's JSON-ready status (moving/parked, in zone, ...; set by rules)."""
        ...

    async def asset_status(self, asset_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """The status of each asset that has one."""
        ...

    async def get_rule_states(self, asset_ids: Collection[str]) -> dict[str, tuple[int, bytes]]:
        """Per-asset rule state (bytes encoded by the rules) and its version, for assets that
        have one."""
        ...

    async def put_rule_states(self, writes: Mapping[str, tuple[int, bytes]]) -> set[str]:
        """Store rule states, each only if its stored version is still the one given (0: none
        stored): compare-and-set, so two workers never both apply a transition. A written state
        gets version + 1.

        Returns:
            The assets whose state changed meanwhile (not written: load and evaluate again).
        """
        ...

    async def rule_checkpoints(self, asset_id: str) -> list[tuple[int, bytes]]:
        """Checkpoints of an asset's rule state, oldest first: (evaluated-until ms, state)."""
        ...

    async def add_rule_checkpoint(
        self, asset_id: str, clock_ms: int, state: bytes, *, keep_after_ms: int
    ) -> None:
        """Keep a checkpoint; drop those evaluated up to before ``keep_after_ms``."""
        ...

    async def replace_rule_checkpoints(
        self, asset_id: str, after_ms: int, checkpoints: Sequence[tuple[int, bytes]]
    ) -> None:
        """Drop the checkpoints evaluated up to after ``after_ms`` and keep ``checkpoints``
        instead (a re-evaluation from ``after_ms`` made them with the late fixes)."""
        ...

    async def set_rule_due(self, due: Mapping[str, int | None]) -> None:
        """When each asset's rules next need the clock (``None``: never, forget it)."""
        ...

    async def due_rule_assets(self, until_ms: int, *, limit: int = 10_000) -> list[str]:
        """Assets whose rules need the clock at or before ``until_ms``."""
        ...

    async def set_lot_members(self, changes: Sequence[tuple[str, str, int | None]]) -> None:
        """``(lot, asset, since_ms)``: the asset is in the lot since then (``None``: left)."""
        ...

    async def lot_members(self, lot_ids: Collection[str]) -> dict[str, dict[str, int]]:
        """Assets in each lot, with the time each was confirmed inside."""
        ...

    async def try_lock(self, name: str, owner: str, *, ttl_ms: int) -> bool:
        """Take (or renew, for the same owner) a lock that expires by itself."""
        ...

    async def count_recent(
        self, key: str, *, keep_after_ms: int, add: tuple[str, int] | None = None
    ) -> int:
        """A set of timed members shared by every worker (``add``: ``(member, ts_ms)``):
        forget those at or before ``keep_after_ms``, add, and count what is left. A set not
        touched for a day is forgotten."""
        ...

    async def set_gateway(
        self,
        gateway_id: str,
        *,
        enterprise_id: str | None = None,
        state: str | None = None,
        status_ms: int | None = None,
        seen_ms: int | None = None,
        health: wire.Health | None = None,
    ) -> None:
        """Update what is known of a gateway; ``None`` arguments leave fields unchanged."""
        ...

    async def forget_gateway(self, gateway_id: str) -> None:
        """Drop what is known of a gateway (it was deleted or changed hands)."""
        ...

    async def gateways(self, gateway_ids: Collection[str]) -> dict[str, GatewayLive]:
        """Live knowledge of each gateway that has any."""
        ...

    async def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float,
        *,
        enterprise_ids: Collection[str] | None = None,
        limit: int = 1000,
    ) -> list[tuple[str, float]]:
        """Assets whose latest position lies within ``radius_m``: ``(asset_id, distance_m)``,
        nearest first, only of enterprises in scope (``None``: all)."""
        ...

    async def publish(self, event: LiveEvent) -> None:
        """Send one event to every live subscriber (of every worker with Redis)."""
        ...

    async def publish_many(self, events: Sequence[LiveEvent]) -> None:
        """Send several events (one pipeline)."""
        ...

    def subscribe(self) -> Subscription:
        """A new subscription to the live feed (filter by ``event.enterprise_id``)."""
        ...

    async def registry_version(self) -> int:
        """A number every change of a gateway's or an asset's owner increases (0 before any):
        ingest workers drop their cached owners when it moves."""
        ...

    async def bump_registry_version(self) -> int:
        """Note a change of gateways or assets (the API calls this); returns the new number."""
        ...

    async def put_ticket(self, ticket_hash: str, key_hash: str, *, ttl_s: float) -> None:
        """Keep a live-stream ticket (by its hash) for ``ttl_s``: it stands for that key."""
        ...

    async def take_ticket(self, ticket_hash: str) -> str | None:
        """The key hash of a ticket, which is used up by this (``None``: unknown or expired)."""
        ...

    async def close(self) -> None:
        """Release connections and end subscriptions (does not close a caller's client)."""
        ...


@runtime_checkable
class BatchLedger(Protocol):
    """A :class:`SeqLedger` that also answers for many gateways in one call (what both live
    state adapters do; the archive's ledger does not). Each method does what its one-gateway
    form does, per entry, in order; ingest falls back to those forms when a batch call fails
    (or the ledger has none), so a failure still touches one gateway only."""

    async def seen_seqs_many(
        self, requests: Sequence[tuple[str, Sequence[int]]], /
    ) -> list[list[int]]:
        """:meth:`SeqLedger.seen_seqs` of each ``(gateway, seqs)``."""
        ...

    async def admit_seqs_many(
        self, requests: Sequence[tuple[str, Sequence[int]]], /, *, now_ms: int
    ) -> list[list[int]]:
        """:meth:`SeqLedger.admit_seqs` of each ``(gateway, seqs)``."""
        ...

    async def high_water_many(self, marks: Sequence[tuple[str, int]], /) -> list[int | None]:
        """:meth:`SeqLedger.high_water` of each ``(gateway, seq)``."""
        ...

    async def missing_seqs_many(self, ranges: Sequence[tuple[str, int, int]], /) -> list[int]:
        """:meth:`SeqLedger.missing_seqs` of each ``(gateway, first_seq, last_seq)``."""
        ...


@runtime_checkable
class BatchLive(Protocol):
    """Live-state writes of many keys in one call (both adapters have them; the rules and
    ingest fall back to the one-key forms of :class:`LiveState` otherwise)."""

    async def add_rule_checkpoints(
        self, checkpoints: Sequence[tuple[str, int, bytes, int]]
    ) -> None:
        """:meth:`LiveState.add_rule_checkpoint` of each ``(asset, clock_ms, state,
        keep_after_ms)``."""
        ...

    async def gateways_seen(
        self, seen: Sequence[tuple[str, str, int, wire.Health | None]], /
    ) -> None:
        """:meth:`LiveState.set_gateway` of each ``(gateway, enterprise_id, seen_ms, health)``."""
        ...
