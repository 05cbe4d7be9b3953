"""Alerts, API keys, ingest bookkeeping and retention of the archive (mixed into ``Store``)."""

from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Collection, Sequence
from typing import Any, Literal

import msgspec
from sqlalchemy import Select, and_, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from cloud.archive import schema as s
from cloud.archive._base import ConflictError, Scope, StoreBase
from cloud.archive._sql import DAY_MS, alert_from_row, scoped, upsert
from cloud.archive.postgres import prune_fix_partitions
from cloud.models import Alert, AlertEvent, ApiKey, Gap, Rejected

__all__ = ["AlarmMark", "StoreOps"]

log = logging.getLogger("cloud.archive")
_INSERT_CHUNK = 500


class AlarmMark(msgspec.Struct, frozen=True, kw_only=True):
    """The newest edge alarm applied to a condition: observation time, ``seq``, state, and the
    gateway that sent it (its ``seq`` orders its own alarms, whatever its clock says)."""

    ts_ms: int
    seq: int
    state: Literal["raise", "clear"]
    gateway_id: str = ""


class StoreOps(StoreBase):
    """Alert, API key, ledger, gap, rejected-message and retention methods of the store."""

    # -- alerts -----------------------------------------------------------------------------

    async def insert_alert(self, alert: Alert) -> None:
        """Store a new alert with its events; :class:`ConflictError` if its key is already open."""
        row = {k: v for k, v in msgspec.structs.asdict(alert).items() if k != "events"}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(s.alerts.insert().values(**row))
                for event in alert.events:
                    await conn.execute(_event_insert(alert.id, event))
        except IntegrityError as exc:
            raise ConflictError(f"alert {alert.id} or open key {alert.key!r} exists") from exc

    async def update_alert(
        self,
        alert: Alert,
        event: AlertEvent | None = None,
        *,
        expect_state: str | None = None,
        if_mark: AlarmMark | None = None,
    ) -> bool:
        """Save an alert's fields (not its events) and append ``event`` in one transaction.

        Args:
            expect_state: the state the change was decided on; if the stored alert is no longer
                in it (another worker or user changed it meanwhile), nothing is written and
                :class:`ConflictError` is raised, so the caller can decide again.
            if_mark: write only while this is still the newest edge alarm of the alert's
                condition (see :meth:`advance_alarm_mark`); on PostgreSQL the mark is locked
                until the change is committed, so a newer alarm's advance waits for it.

        Returns:
            ``False`` if nothing was written because ``if_mark`` is no longer the newest.
        """
        row = {k: v for k, v in msgspec.structs.asdict(alert).items() if k not in ("events", "id")}
        stmt = update(s.alerts).where(s.alerts.c.id == alert.id).values(**row)
        if expect_state is not None:
            stmt = stmt.where(s.alerts.c.state == expect_state)
        if if_mark is not None:
            # Checked again in the statement itself: SQLite runs it atomically.
            stmt = stmt.where(_mark_is(alert.enterprise_id, alert.key, if_mark).exists())
        async with self.engine.begin() as conn:
            if if_mark is not None:
                query = _mark_is(alert.enterprise_id, alert.key, if_mark)
                if self.dialect == "postgresql":
                    query = query.with_for_update()
                if (await conn.execute(query)).first() is None:
                    return False
            result = await conn.execute(stmt)
            if (expect_state is not None or if_mark is not None) and not result.rowcount:
                raise ConflictError(f"alert {alert.id} is no longer {expect_state or 'there'}")
            if event is not None:
                await conn.execute(_event_insert(alert.id, event))
        return True

    async def get_alert(self, alert_id: str, *, enterprise_ids: Scope = None) -> Alert | None:
        """One alert with its full event history, or ``None`` if missing or outside the scope."""
        query = scoped(
            select(s.alerts).where(s.alerts.c.id == alert_id),
            s.alerts.c.enterprise_id,
            enterprise_ids,
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            events = await conn.execute(
                select(s.alert_events)
                .where(s.alert_events.c.alert_id == alert_id)
                .order_by(s.alert_events.c.id)
            )
            return alert_from_row(row._mapping, [e._mapping for e in events])

    async def open_alert(self, enterprise_id: str, key: str) -> Alert | None:
        """The alert of condition ``key`` that is not closed (open or acknowledged), if any."""
        c = s.alerts.c
        query = select(c.id).where(
            c.enterprise_id == enterprise_id, c.key == key, c.state != "closed"
        )
        async with self.engine.connect() as conn:
            alert_id = await conn.scalar(query)
        return None if alert_id is None else await self.get_alert(alert_id)

    async def alert_opened_at(self, enterprise_id: str, key: str, opened_ms: int) -> Alert | None:
        """The alert of condition ``key`` that opened at ``opened_ms`` (in any state), if any."""
        c = s.alerts.c
        query = (
            select(c.id)
            .where(c.enterprise_id == enterprise_id, c.key == key, c.opened_ms == opened_ms)
            .order_by(c.state == "closed")  # the one not closed first
            .limit(1)
        )
        async with self.engine.connect() as conn:
            alert_id = await conn.scalar(query)
        return None if alert_id is None else await self.get_alert(alert_id)

    async def alert_covering(self, enterprise_id: str, key: str, ts_ms: int) -> Alert | None:
        """The alert of condition ``key`` whose episode covers ``ts_ms``: opened at or before
        it and not closed by the rules before or at it (alerts closed by a person, at their wall
        time, say nothing of the condition's episodes)."""
        c = s.alerts.c
        query = (
            select(c.id)
            .where(
                c.enterprise_id == enterprise_id,
                c.key == key,
                c.opened_ms <= ts_ms,
                or_(c.closed_ms.is_(None), and_(c.closed_by == "system", c.closed_ms > ts_ms)),
            )
            .order_by(c.opened_ms.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            alert_id = await conn.scalar(query)
        return None if alert_id is None else await self.get_alert(alert_id)

    async def advance_alarm_mark(
        self, enterprise_id: str, key: str, mark: AlarmMark, *, same_again: bool = False
    ) -> bool:
        """Record ``mark`` as the newest edge alarm applied to condition ``key`` if it is newer
        than the one recorded; return whether it was (atomic across workers: of two alarms
        advancing at once, the older one never wins).

        Newer means a higher ``seq`` when both came from the same gateway: its seq is the order
        it produced them in, while its clock may have been reset or corrected in between (a
        gas alarm after an RTC reset to 2000 must not be taken as stale). Between gateways it
        means a later ``(ts_ms, seq)``. The same alarm again is a duplicate and not newer,
        except a ``clear`` after a ``raise`` with equal time and seq: the clear is the later.
        With ``same_again`` the very alarm recorded counts as newest once more: ingest applies
        an alarm again when its earlier application failed after the mark had moved (its seq
        was then never admitted to the de-duplication ledger, so the gateway sends it again).
        """
        c = s.alarm_marks.c
        row = {
            "enterprise_id": enterprise_id,
            "key": key,
            "ts_ms": mark.ts_ms,
            "seq": mark.seq,
            "state": mark.state,
            "gateway_id": mark.gateway_id,
        }
        # In ON CONFLICT ... DO UPDATE ... WHERE the table's columns are the stored row's.
        same_gateway = c.gateway_id == mark.gateway_id
        later = or_(c.ts_ms < mark.ts_ms, and_(c.ts_ms == mark.ts_ms, c.seq < mark.seq))
        newer = or_(and_(same_gateway, c.seq < mark.seq), and_(~same_gateway, later))
        if mark.state == "clear":
            # A raise and a clear with equal time and seq (one gateway never numbers two items
            # alike, but hand-made or relayed alarms may): the clear is taken as the later.
            same = and_(c.ts_ms == mark.ts_ms, c.seq == mark.seq, c.state == "raise")
            newer = or_(newer, same)
        if same_again:
            again = and_(
                same_gateway, c.seq == mark.seq, c.ts_ms == mark.ts_ms, c.state == mark.state
            )
            newer = or_(newer, again)
        stmt = upsert(self.dialect, s.alarm_marks, row, ("enterprise_id", "key"), where=newer)
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt.returning(c.ts_ms))).first() is not None

    async def alarm_mark(self, enterprise_id: str, key: str) -> AlarmMark | None:
        """The newest edge alarm applied to condition ``key``, if any."""
        c = s.alarm_marks.c
        query = select(c.ts_ms, c.seq, c.state, c.gateway_id).where(
            c.enterprise_id == enterprise_id, c.key == key
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return AlarmMark(ts_ms=row.ts_ms, seq=row.seq, state=row.state, gateway_id=row.gateway_id)

    async def list_alerts(
        self,
        enterprise_ids: Scope = None,
        *,
        state: str | Collection[str] | None = None,
        kind: str | None = None,
        asset_id: str | None = None,
        site_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
    ) -> list[Alert]:
        """Alerts in scope, newest first, without events (use :meth:`get_alert` for those).

        Args:
            state: one state or several (``("open", "acknowledged")``).
            since_ms: opened at or after; ``until_ms``: opened before.
        """
        c = s.alerts.c
        query = scoped(select(s.alerts), c.enterprise_id, enterprise_ids)
        if state is not None:
            query = query.where(c.state.in_([state] if isinstance(state, str) else list(state)))
        for column, value in ((c.kind, kind), (c.asset_id, asset_id), (c.site_id, site_id)):
            if value is not None:
                query = query.where(column == value)
        if since_ms is not None:
            query = query.where(c.opened_ms >= since_ms)
        if until_ms is not None:
            query = query.where(c.opened_ms < until_ms)
        query = query.order_by(c.opened_ms.desc(), c.id).limit(limit)
        async with self.engine.connect() as conn:
            return [alert_from_row(r._mapping, []) for r in await conn.execute(query)]

    # -- API keys ---------------------------------------------------------------------------

    async def put_api_key(self, key: ApiKey) -> None:
        """Create or replace an API key record (by hash)."""
        await self._upsert(s.api_keys, msgspec.structs.asdict(key), ("hash",))

    async def api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash (revoked ones too: check ``revoked_ms``)."""
        rows = await self._select(s.api_keys, None, None, hash=key_hash)
        return ApiKey(**rows[0]) if rows else None

    async def list_api_keys(self) -> list[ApiKey]:
        """Every API key record, by name."""
        rows = await self._select(s.api_keys, None, None)
        return sorted((ApiKey(**r) for r in rows), key=lambda k: (k.name, k.hash))

    async def revoke_api_key(self, key_hash: str, *, now_ms: int) -> bool:
        """Mark a key revoked; ``False`` if unknown."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(s.api_keys).where(s.api_keys.c.hash == key_hash).values(revoked_ms=now_ms)
            )
        return bool(result.rowcount)

    # -- ingest bookkeeping -----------------------------------------------------------------

    async def seen_seqs(self, gateway_id: str, seqs: Sequence[int]) -> list[int]:
        """Those of ``seqs`` admitted before, sorted (reads only)."""
        unique = sorted(set(seqs))
        if not unique:
            return []
        if self.dialect == "postgresql":
            among = "seq = ANY(CAST(:seqs AS BIGINT[]))"
            seqs_param: Any = unique
        else:
            among = "seq IN (SELECT value FROM json_each(:seqs))"
            seqs_param = json.dumps(unique)
        stmt = text(f"SELECT seq FROM seen_seqs WHERE gateway_id = :gw AND {among}")
        async with self.engine.connect() as conn:
            result = await conn.execute(stmt, {"gw": gateway_id, "seqs": seqs_param})
            return sorted(int(q) for q in result.scalars())

    async def admit_seqs(self, gateway_id: str, seqs: Sequence[int], *, now_ms: int) -> list[int]:
        """Record ``seqs`` as received; return those never seen before (atomic across workers)."""
        unique = sorted(set(seqs))
        if not unique:
            return []
        # One statement with the seqs as a single array parameter: compiling a multi-row
        # VALUES per batch costs more than the insert itself.
        if self.dialect == "postgresql":
            source = "SELECT :gw, q, :now FROM unnest(CAST(:seqs AS BIGINT[])) AS q"
            seqs_param: Any = unique
        else:
            source = "SELECT :gw, value, :now FROM json_each(:seqs) WHERE true"
            seqs_param = json.dumps(unique)
        stmt = text(
            f"INSERT INTO seen_seqs (gateway_id, seq, recv_ms) {source} "
            "ON CONFLICT DO NOTHING RETURNING seq"
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt, {"gw": gateway_id, "now": now_ms, "seqs": seqs_param})
            return sorted(int(q) for q in result.scalars())

    async def high_water(self, gateway_id: str, seq: int) -> int | None:
        """Raise the gateway's highest data ``seq`` to ``seq``; return the previous one."""
        c = s.seq_high.c
        query = select(c.seq).where(c.gateway_id == gateway_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = {"gateway_id": gateway_id, "seq": seq}
        async with self.engine.begin() as conn:
            old = await conn.scalar(query)
            await conn.execute(
                upsert(self.dialect, s.seq_high, row, ("gateway_id",), where=c.seq < seq)
            )
        return None if old is None else int(old)

    async def missing_seqs(self, gateway_id: str, first_seq: int, last_seq: int) -> int:
        """How many of ``first_seq .. last_seq`` (inclusive) were never admitted."""
        if last_seq < first_seq:
            return 0
        c = s.seen_seqs.c
        query = select(func.count()).where(
            c.gateway_id == gateway_id, c.seq >= first_seq, c.seq <= last_seq
        )
        async with self.engine.connect() as conn:
            seen = int(await conn.scalar(query) or 0)
        return last_seq - first_seq + 1 - seen

    async def insert_gaps(self, gaps: Sequence[Gap]) -> None:
        """Record detected sequence gaps."""
        await self._insert_many(s.gaps, [msgspec.structs.asdict(g) for g in gaps])

    async def fill_gaps(self, gateway_id: str, seqs: Sequence[int]) -> None:
        """Count ``seqs`` (admitted for the first time, late) off the recorded gaps they lie in;
        a gap with nothing missing any more is removed."""
        if not seqs:
            return
        ordered = sorted(set(seqs))
        c = s.gaps.c
        query = select(c.id, c.first_seq, c.last_seq).where(
            c.gateway_id == gateway_id, c.first_seq <= ordered[-1], c.last_seq >= ordered[0]
        )
        async with self.engine.begin() as conn:
            for gap_id, first, last in (await conn.execute(query)).all():
                arrived = bisect.bisect_right(ordered, last) - bisect.bisect_left(ordered, first)
                if arrived:
                    # Relative updates: several workers may fill the same gap at once.
                    await conn.execute(
                        update(s.gaps).where(c.id == gap_id).values(missing=c.missing - arrived)
                    )
                    await conn.execute(delete(s.gaps).where(c.id == gap_id, c.missing <= 0))

    async def list_gaps(
        self, enterprise_ids: Scope = None, *, gateway_id: str | None = None, limit: int = 1000
    ) -> list[Gap]:
        """Recorded gaps in scope, newest first."""
        filters = {} if gateway_id is None else {"gateway_id": gateway_id}
        rows = await self._select(s.gaps, s.gaps.c.enterprise_id, enterprise_ids, **filters)
        rows.sort(key=lambda r: (-r["detected_ms"], -r["id"]))
        return [Gap(**{k: v for k, v in r.items() if k != "id"}) for r in rows[:limit]]

    async def insert_rejected(self, items: Sequence[Rejected]) -> None:
        """Keep refused messages/items for inspection (payloads as given, already truncated)."""
        await self._insert_many(s.rejected, [msgspec.structs.asdict(r) for r in items])

    async def list_rejected(self, *, limit: int = 100) -> list[Rejected]:
        """The most recent refused messages/items (admin only: not scoped)."""
        query = select(s.rejected).order_by(s.rejected.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = [{str(k): v for k, v in r._mapping.items()} for r in await conn.execute(query)]
        return [Rejected(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    # -- retention --------------------------------------------------------------------------

    async def apply_retention(
        self,
        now_ms: int,
        *,
        positions_days: float = 183,
        alerts_days: float = 1096,
        readings_days: float = 30,
    ) -> dict[str, int]:
        """Delete what is older than each retention period; return rows deleted per table.

        Positions, the de-duplication ledger and gap records follow ``positions_days``;
        closed alerts (closed before the cutoff) and their events, and notifications finished
        before it (with their attempts), ``alerts_days``; readings and
        rejected messages ``readings_days``. On PostgreSQL whole monthly fix partitions are
        dropped (counted as -1 when the row count is not known).
        """
        cut_pos = now_ms - int(positions_days * DAY_MS)
        cut_alerts = now_ms - int(alerts_days * DAY_MS)
        cut_read = now_ms - int(readings_days * DAY_MS)
        done: dict[str, int] = {}
        if self.dialect == "postgresql":
            done["fix_partitions"] = await prune_fix_partitions(
                self.engine, self._partitions, cut_pos
            )
        old_alerts = select(s.alerts.c.id).where(
            s.alerts.c.state == "closed", s.alerts.c.closed_ms < cut_alerts
        )
        old_notifications = select(s.notifications.c.id).where(
            s.notifications.c.done_ms < cut_alerts
        )
        async with self.engine.begin() as conn:
            for name, stmt in (
                ("fixes", delete(s.fixes).where(s.fixes.c.ts_ms < cut_pos)),
                ("seen_seqs", delete(s.seen_seqs).where(s.seen_seqs.c.recv_ms < cut_pos)),
                ("gaps", delete(s.gaps).where(s.gaps.c.detected_ms < cut_pos)),
                ("readings", delete(s.readings).where(s.readings.c.ts_ms < cut_read)),
                ("rejected", delete(s.rejected).where(s.rejected.c.ts_ms < cut_read)),
                (
                    "alert_events",
                    delete(s.alert_events).where(s.alert_events.c.alert_id.in_(old_alerts)),
                ),
                ("alerts", delete(s.alerts).where(s.alerts.c.id.in_(old_alerts))),
                (
                    "notify_attempts",
                    delete(s.notify_attempts).where(
                        s.notify_attempts.c.notification_id.in_(old_notifications)
                    ),
                ),
                (
                    "notifications",
                    delete(s.notifications).where(s.notifications.c.done_ms < cut_alerts),
                ),
            ):
                done[name] = int((await conn.execute(stmt)).rowcount or 0)
        log.info("retention applied: %s", done)
        return done


def _event_insert(alert_id: str, event: AlertEvent) -> Any:
    return s.alert_events.insert().values(
        alert_id=alert_id,
        ts_ms=event.ts_ms,
        action=event.action,
        by=event.by,
        comment=event.comment,
        data=event.data,
    )


def _mark_is(enterprise_id: str, key: str, mark: AlarmMark) -> Select[Any]:
    """The alarm mark row of condition ``key`` if it is exactly ``mark``."""
    c = s.alarm_marks.c
    return select(c.ts_ms).where(
        c.enterprise_id == enterprise_id,
        c.key == key,
        c.ts_ms == mark.ts_ms,
        c.seq == mark.seq,
        c.state == mark.state,
        c.gateway_id == mark.gateway_id,
    )
