"""Notification recipients and the outbox of the archive (mixed into ``Store``).

The outbox is filled from the alert history (``alert_events``, written in the same transaction
as each alert change), so an alert change is never lost on its way to the outbox: a worker that
dies before enqueuing leaves the history behind the cursor, and the next sweep (any worker's)
enqueues it. Enqueuing is idempotent (``dedupe`` is unique), so reading history twice is
harmless: delivery is at least once, enqueuing exactly once.

Workers claim due rows with a lease: on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` then
an update; on SQLite one conditional ``UPDATE ... RETURNING`` (SQLite runs writers one at a
time). A claim moves ``next_ms`` to the lease's end, names its ``owner`` and counts the attempt;
the outcome is written only while the row still carries that owner and attempt.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import msgspec
from sqlalchemy import and_, delete, func, select, update

from cloud.archive import schema as s
from cloud.archive._base import StoreBase
from cloud.archive._sql import alert_from_row, insert_for
from cloud.notify.records import (
    Attempt,
    Change,
    Claimed,
    Finished,
    Notification,
    Outgoing,
    Recipient,
)

__all__ = ["Flood", "NotifyOps"]

_CURSOR = "outbox"
_NOTIFYING = ("open", "update", "close", "withdraw")


class NotifyOps(StoreBase):
    """Recipients, the outbox and its cursor."""

    # -- recipients -------------------------------------------------------------------------

    async def put_recipient(self, recipient: Recipient) -> None:
        """Create or replace a recipient."""
        row = msgspec.to_builtins(recipient)
        await self._upsert(s.notify_recipients, row, ("id",))

    async def get_recipient(self, recipient_id: str) -> Recipient | None:
        """One recipient (scoping is the caller's: it depends on tier and region)."""
        rows = await self._select(s.notify_recipients, None, None, id=recipient_id)
        return msgspec.convert(rows[0], Recipient) if rows else None

    async def list_recipients(
        self, enterprise_ids: Collection[str] | None = None
    ) -> list[Recipient]:
        """Every regulator recipient, and the enterprise recipients of ``enterprise_ids``
        (``None``: of every enterprise), by id."""
        c = s.notify_recipients.c
        query = select(s.notify_recipients).order_by(c.id)
        if enterprise_ids is not None:
            query = query.where((c.tier == "regulator") | c.enterprise_id.in_(list(enterprise_ids)))
        async with self.engine.connect() as conn:
            rows = [{str(k): v for k, v in r._mapping.items()} for r in await conn.execute(query)]
        return [msgspec.convert(r, Recipient) for r in rows]

    async def delete_recipient(self, recipient_id: str) -> bool:
        """Delete a recipient (its notifications stay); ``False`` if unknown."""
        return await self._delete(s.notify_recipients, None, None, id=recipient_id)

    # -- the sweep: alert history -> outbox ---------------------------------------------------

    async def notify_cursor(self) -> tuple[int, int]:
        """The outbox's cursor (the newest alert history entry read) and its floor (nothing at
        or below it is ever read: the history from before the outbox existed)."""
        c = s.notify_cursor.c
        async with self.engine.connect() as conn:
            rows = dict((await conn.execute(select(c.name, c.event_id))).all())
        return int(rows.get(_CURSOR, 0)), int(rows.get("floor", 0))

    async def alert_changes(self, after_id: int, *, limit: int = 500) -> list[Change]:
        """Alert history entries that may notify (open, update, close, withdraw) after
        ``after_id`` and not swept yet, oldest first, each with its alert and its enterprise's
        region."""
        ev = s.alert_events.c
        swept = select(s.notify_swept.c.event_id).where(s.notify_swept.c.event_id > after_id)
        query = (
            select(ev.id, ev.alert_id, ev.ts_ms, ev.action, ev.data)
            .where(ev.id > after_id, ev.action.in_(_NOTIFYING), ev.id.not_in(swept))
            .order_by(ev.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            entries = (await conn.execute(query)).all()
            if not entries:
                return []
            alert_ids = sorted({e.alert_id for e in entries})
            alerts = await conn.execute(select(s.alerts).where(s.alerts.c.id.in_(alert_ids)))
            by_id = {r.id: alert_from_row(r._mapping, []) for r in alerts}
            regions = dict(
                (await conn.execute(select(s.enterprises.c.id, s.enterprises.c.region))).all()
            )
            levels = await conn.execute(
                select(ev.id, ev.alert_id, ev.data)
                .where(ev.alert_id.in_(alert_ids), ev.action.in_(("open", "update")))
                .where(ev.id <= entries[-1].id)
                .order_by(ev.id)
            )
            history = [(r.id, r.alert_id, r.data) for r in levels]
        return [
            Change(
                event_id=e.id,
                action=e.action,
                ts_ms=e.ts_ms,
                data=e.data or {},
                prev_level=_level_before(history, e.alert_id, e.id),
                alert=by_id[e.alert_id],
                region=regions.get(by_id[e.alert_id].enterprise_id),
            )
            for e in entries
            if e.alert_id in by_id
        ]

    async def enqueue_notifications(
        self,
        items: Sequence[Outgoing],
        *,
        cursor: int,
        now_ms: int,
        expiry_ms: int,
        swept: Sequence[int] = (),
        keep_swept: int = 0,
        flood: Flood | None = None,
    ) -> int:
        """Add notifications (one already there, by ``dedupe``, is left alone), note the
        history entries ``swept`` (those within ``keep_swept`` of the cursor are kept) and move
        the cursor forward to ``cursor``, in one transaction; return how many were new.

        With ``flood``, a recipient's endpoint that got ``flood.most`` notifications in the last
        ``flood.window_ms`` gets the next ones (except critical ones) ``held``, and one
        ``digest`` per window (due at the window's end) tells them at once.
        """
        stmt = insert_for(self.dialect, s.notifications).on_conflict_do_nothing(
            index_elements=["dedupe"]
        )
        added = 0
        async with self.engine.begin() as conn:
            for item in items:
                row = _outbox_row(item, now_ms, expiry_ms)
                held = flood is not None and await _flooded(conn, item, now_ms, flood)
                if held:
                    row.update(status="held", last_error="flood control: sent in a digest")
                new = int((await conn.execute(stmt.values(**row))).rowcount or 0)
                if new and held:
                    assert flood is not None
                    await conn.execute(stmt.values(**_digest_row(item, now_ms, expiry_ms, flood)))
                added += new
            if swept:
                noted = insert_for(self.dialect, s.notify_swept).on_conflict_do_nothing()
                await conn.execute(noted, [{"event_id": i} for i in swept])
            c = s.notify_cursor.c
            await conn.execute(
                update(s.notify_cursor)
                .where(c.name == _CURSOR, c.event_id < cursor)
                .values(event_id=cursor)
            )
            await conn.execute(
                delete(s.notify_swept).where(s.notify_swept.c.event_id <= cursor - keep_swept)
            )
        return added

    async def held_notifications(self, digest: Claimed) -> list[tuple[int, dict[str, Any]]]:
        """The notifications flood control held for a digest's endpoint: (id, payload), oldest
        first."""
        c = s.notifications.c
        query = (
            select(c.id, c.payload)
            .where(
                c.recipient_id == digest.recipient_id,
                c.channel == digest.channel,
                c.address == digest.address,
                c.status == "held",
            )
            .order_by(c.id)
        )
        async with self.engine.connect() as conn:
            return [(int(r.id), dict(r.payload)) for r in await conn.execute(query)]

    # -- claims and outcomes ------------------------------------------------------------------

    async def claim_notifications(
        self, owner: str, *, now_ms: int, lease_ms: int, limit: int
    ) -> list[Claimed]:
        """Lease up to ``limit`` due notifications to ``owner`` (expiring those past their
        expiry first); two workers never hold the same one."""
        c = s.notifications.c
        due = and_(c.status == "pending", c.next_ms <= now_ms)
        claim = {"next_ms": now_ms + lease_ms, "owner": owner, "attempts": c.attempts + 1}
        picked = select(c.id).where(due).order_by(c.next_ms, c.id).limit(limit)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(s.notifications)
                .where(due, c.expires_ms <= now_ms)
                .values(status="expired", done_ms=now_ms, owner=None)
            )
            if self.dialect == "postgresql":
                ids = list((await conn.execute(picked.with_for_update(skip_locked=True))).scalars())
                if not ids:
                    return []
                stmt = update(s.notifications).where(c.id.in_(ids))
            else:
                stmt = update(s.notifications).where(due, c.id.in_(picked.scalar_subquery()))
            rows = (await conn.execute(stmt.values(**claim).returning(s.notifications))).all()
        return sorted((_claimed(r._mapping) for r in rows), key=lambda x: x.id)

    async def finish_notification(
        self,
        claimed: Claimed,
        attempt: Attempt,
        *,
        status: str,
        next_ms: int,
        now_ms: int,
        settles: Sequence[int] = (),
    ) -> bool:
        """Record one outcome (see :meth:`finish_notifications`)."""
        done = Finished(
            claimed=claimed, attempt=attempt, status=status, next_ms=next_ms, now_ms=now_ms,
            settles=tuple(settles),
        )  # fmt: skip
        return (await self.finish_notifications([done]))[0]

    async def finish_notifications(self, results: Sequence[Finished]) -> list[bool]:
        """Record attempts and each notification's new status (``pending`` again with a
        retry at ``next_ms``, or final) in one transaction; for each, ``False`` if the lease
        was lost meanwhile (the attempt is recorded, the row left to its new owner). A final
        status of a digest settles the held notifications it told: ``digested`` when sent."""
        if not results:
            return []
        c = s.notifications.c
        attempts = [
            {"notification_id": r.claimed.id, **msgspec.structs.asdict(r.attempt)} for r in results
        ]
        kept: list[bool] = []
        async with self.engine.begin() as conn:
            await conn.execute(s.notify_attempts.insert(), attempts)
            for r in results:
                final = r.status != "pending"
                owned = (c.id == r.claimed.id, c.owner == r.attempt.worker)
                result = await conn.execute(
                    update(s.notifications)
                    .where(*owned, c.attempts == r.claimed.attempt)
                    .values(
                        status=r.status,
                        next_ms=r.next_ms,
                        owner=None,
                        done_ms=r.now_ms if final else None,
                        last_error=r.attempt.error,
                    )
                )
                kept.append(bool(result.rowcount))
                if final and r.settles and result.rowcount:
                    await conn.execute(
                        update(s.notifications)
                        .where(c.id.in_(list(r.settles)), c.status == "held")
                        .values(
                            status="digested" if r.status == "sent" else r.status, done_ms=r.now_ms
                        )
                    )
        return kept

    # -- reading ------------------------------------------------------------------------------

    async def list_notifications(self, alert_id: str) -> list[Notification]:
        """The notifications of an alert with their attempts, oldest first (the caller checks
        that the alert is in scope)."""
        c = s.notifications.c
        a = s.notify_attempts.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(s.notifications).where(c.alert_id == alert_id))).all()
            ids = [r.id for r in rows]
            attempts = (
                await conn.execute(
                    select(s.notify_attempts).where(a.notification_id.in_(ids)).order_by(a.id)
                )
            ).all()
        history: dict[int, list[Attempt]] = {}
        for row in attempts:
            fields = {
                str(k): v for k, v in row._mapping.items() if k not in ("id", "notification_id")
            }
            history.setdefault(row.notification_id, []).append(Attempt(**fields))
        hidden = ("dedupe", "secret", "payload", "owner")
        found = [
            Notification(
                **{str(k): v for k, v in r._mapping.items() if k not in hidden},
                history=tuple(history.get(r.id, ())),
            )
            for r in rows
        ]
        return sorted(found, key=lambda n: n.id)

    async def notification_counts(self) -> dict[str, int]:
        """How many notifications are in each status."""
        c = s.notifications.c
        query = select(c.status, func.count()).group_by(c.status)
        async with self.engine.connect() as conn:
            return {str(k): int(v) for k, v in (await conn.execute(query)).all()}


class Flood(msgspec.Struct, frozen=True):
    """Flood control: at most ``most`` notifications per endpoint in ``window_ms``."""

    most: int
    window_ms: int


async def _flooded(conn: Any, item: Outgoing, now_ms: int, flood: Flood) -> bool:
    """Whether ``item``'s endpoint had its fill of notifications in the last window."""
    if item.status != "pending" or item.payload.get("severity") == "critical":
        return False  # critical alarms are never held back
    c = s.notifications.c
    query = select(func.count()).where(
        c.recipient_id == item.recipient_id,
        c.channel == item.channel,
        c.address == item.address,
        c.created_ms > now_ms - flood.window_ms,
        c.status.not_in(("skipped", "suppressed")),
        c.event != "digest",
    )
    return int(await conn.scalar(query) or 0) >= flood.most


def _digest_row(item: Outgoing, now_ms: int, expiry_ms: int, flood: Flood) -> dict[str, Any]:
    """The digest of ``item``'s endpoint for the current window (one per window)."""
    bucket = now_ms // flood.window_ms
    held = msgspec.structs.replace(
        item,
        dedupe=f"digest:{item.recipient_id}:{item.channel}:{item.dedupe.rsplit(':', 1)[-1]}:{bucket}",
        alert_id="",
        event="digest",
        payload={"event": "digest"},
    )
    row = _outbox_row(held, now_ms, expiry_ms)
    row["next_ms"] = (bucket + 1) * flood.window_ms
    row["expires_ms"] = row["next_ms"] + expiry_ms
    return row


def _level_before(history: list[tuple[int, str, Any]], alert_id: str, event_id: int) -> str | None:
    """The level an alert had just before its history entry ``event_id``."""
    level: str | None = None
    for entry_id, owner, data in history:
        if entry_id >= event_id:
            break
        if owner == alert_id and isinstance(data, dict) and isinstance(data.get("level"), str):
            level = data["level"]
    return level


def _outbox_row(item: Outgoing, now_ms: int, expiry_ms: int) -> dict[str, Any]:
    skipped = item.status == "skipped"
    return {
        "dedupe": item.dedupe,
        "alert_id": item.alert_id,
        "enterprise_id": item.enterprise_id,
        "event": item.event,
        "recipient_id": item.recipient_id,
        "channel": item.channel,
        "address": item.address,
        "secret": item.secret,
        "payload": item.payload,
        "status": item.status,
        "attempts": 0,
        "next_ms": now_ms,
        "created_ms": now_ms,
        "expires_ms": now_ms + expiry_ms,
        "done_ms": now_ms if skipped else None,
        "last_error": item.reason,
    }


def _claimed(row: Any) -> Claimed:
    return Claimed(
        id=row["id"],
        dedupe=row["dedupe"],
        alert_id=row["alert_id"],
        event=row["event"],
        recipient_id=row["recipient_id"],
        channel=row["channel"],
        address=row["address"],
        secret=row["secret"],
        payload=row["payload"],
        attempt=row["attempts"],
        expires_ms=row["expires_ms"],
    )
