"""Maintenance windows and escalation claims of the archive (mixed into ``Store``).

An escalation step of an alert is claimed by one worker with a lease (an upsert that only
takes a row nobody holds or whose holder's lease ended) and marked ``done`` once applied.
"""

from __future__ import annotations

import msgspec
from sqlalchemy import and_, select, update

from cloud.archive import schema as s
from cloud.archive._base import Scope, StoreBase
from cloud.archive._sql import alert_from_row, scoped, upsert
from cloud.models import Alert
from cloud.notify.records import MaintenanceWindow

__all__ = ["WindowOps"]


class WindowOps(StoreBase):
    """Maintenance windows, unacknowledged alerts and escalation claims."""

    async def put_window(self, window: MaintenanceWindow) -> None:
        """Create or replace a maintenance window."""
        await self._upsert(s.maintenance_windows, msgspec.structs.asdict(window), ("id",))

    async def list_windows(
        self, enterprise_ids: Scope = None, *, active_at_ms: int | None = None
    ) -> list[MaintenanceWindow]:
        """Maintenance windows in scope (only those open at ``active_at_ms``, if given), by id."""
        c = s.maintenance_windows.c
        query = scoped(select(s.maintenance_windows), c.enterprise_id, enterprise_ids)
        if active_at_ms is not None:
            query = query.where(c.start_ms <= active_at_ms, c.end_ms > active_at_ms)
        async with self.engine.connect() as conn:
            rows = [{str(k): v for k, v in r._mapping.items()} for r in await conn.execute(query)]
        return sorted((MaintenanceWindow(**r) for r in rows), key=lambda w: w.id)

    async def windows_since(self, enterprise_id: str, since_ms: int) -> list[MaintenanceWindow]:
        """The windows of an enterprise that end after ``since_ms`` (those that may cover an
        alert change from then on)."""
        c = s.maintenance_windows.c
        query = select(s.maintenance_windows).where(
            c.enterprise_id == enterprise_id, c.end_ms > since_ms
        )
        async with self.engine.connect() as conn:
            rows = [{str(k): v for k, v in r._mapping.items()} for r in await conn.execute(query)]
        return [MaintenanceWindow(**r) for r in rows]

    async def delete_window(self, window_id: str, *, enterprise_ids: Scope = None) -> bool:
        """Delete a maintenance window in scope; ``False`` if missing or outside the scope."""
        return await self._delete(
            s.maintenance_windows, s.maintenance_windows.c.enterprise_id, enterprise_ids,
            id=window_id,
        )  # fmt: skip

    async def unacknowledged_alerts(
        self, opened_before_ms: int, *, limit: int = 1000
    ) -> list[Alert]:
        """Open alerts (nobody acknowledged them) opened at or before ``opened_before_ms``, oldest
        first, without history."""
        c = s.alerts.c
        query = (
            select(s.alerts)
            .where(c.state == "open", c.opened_ms <= opened_before_ms)
            .order_by(c.opened_ms, c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [alert_from_row(r._mapping, []) for r in await conn.execute(query)]

    async def claim_escalation(
        self, alert_id: str, step: int, *, now_ms: int, lease_ms: int
    ) -> bool:
        """Claim escalation ``step`` of an alert for this worker: ``False`` if it is done, or
        another worker claimed it less than ``lease_ms`` ago."""
        c = s.alert_escalations.c
        row = {"alert_id": alert_id, "step": step, "claimed_ms": now_ms, "done": False}
        free = and_(c.done.is_(False), c.claimed_ms <= now_ms - lease_ms)
        stmt = upsert(self.dialect, s.alert_escalations, row, ("alert_id", "step"), where=free)
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt.returning(c.step))).first() is not None

    async def escalation_done(self, alert_id: str, step: int) -> None:
        """Mark an escalation step applied (or found unnecessary)."""
        c = s.alert_escalations.c
        async with self.engine.begin() as conn:
            await conn.execute(
                update(s.alert_escalations)
                .where(c.alert_id == alert_id, c.step == step)
                .values(done=True)
            )
