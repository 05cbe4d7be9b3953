"""Alert lifecycle: open -> acknowledged -> closed, one open alert per condition, event history.

The transitions are pure (:func:`transition`, :func:`new_alert`); :class:`AlertService` is the
thin async shell that loads and saves through the store and publishes each change to the live
feed. Rules (and the edge's own threshold alarms, see :meth:`AlertService.on_alarm`) call
:meth:`AlertService.raise_condition` every time their condition holds and
:meth:`AlertService.clear_condition` when it ends; repeated raises never open a second alert.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from typing import Any, Final

import msgspec

import wire
from cloud.archive import AlarmMark, ConflictError, Store
from cloud.live import LiveState
from cloud.models import Alert, AlertAction, AlertEvent, LiveEvent
from cloud.rules.events import CONDITIONS

__all__ = [
    "AlertService",
    "InvalidTransitionError",
    "alarm_key",
    "new_alert",
    "sensor_key",
    "transition",
]

log = logging.getLogger(__name__)
#: Who the system acts as in alert history.
SYSTEM: Final = "system"


class InvalidTransitionError(ValueError):
    """The action is not allowed in the alert's state (closing a closed alert...)."""


def sensor_key(site: str, point: str, condition: str) -> str:
    """The condition key of a site point: ``sensor:<site>:<point>:<condition>``.

    The edge's threshold alarms and the cloud's own checks of readings (:mod:`cloud.sites`)
    share it: a level (``H``...) raised by either is one alert, never two.
    """
    return f"sensor:{site}:{point}:{condition}"


def alarm_key(alarm: wire.Alarm, gateway_id: str) -> str:
    """The condition key of an edge alarm.

    One per point and level, per asset and code, or per gateway, code and device (each device of a
    gateway that goes offline is its own condition: one returning must not close the others).
    """
    if alarm.point is not None:
        return sensor_key(alarm.site or gateway_id, alarm.point, alarm.level)
    if alarm.asset is not None:
        return f"asset:{alarm.asset}:{alarm.code or alarm.level}"
    if alarm.device is not None:
        return f"gateway:{gateway_id}:{alarm.code}:{alarm.device}"
    return f"gateway:{gateway_id}:{alarm.code}"


def new_alert(
    *,
    alert_id: str,
    enterprise_id: str,
    key: str,
    kind: str,
    level: str,
    now_ms: int,
    asset_id: str | None = None,
    site_id: str | None = None,
    point: str | None = None,
    value: float | None = None,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> Alert:
    """A freshly opened alert with its ``open`` event."""
    opened = AlertEvent(ts_ms=now_ms, action="open", by=SYSTEM, data={"level": level})
    return Alert(
        id=alert_id,
        enterprise_id=enterprise_id,
        kind=kind,
        key=key,
        level=level,
        state="open",
        opened_ms=now_ms,
        asset_id=asset_id,
        site_id=site_id,
        point=point,
        value=value,
        message=message,
        updated_ms=now_ms,
        data=data or {},
        events=(opened,),
    )


def transition(
    alert: Alert,
    action: AlertAction,
    *,
    by: str,
    now_ms: int,
    comment: str = "",
    changes: dict[str, Any] | None = None,
) -> tuple[Alert, AlertEvent]:
    """Apply ``action`` to ``alert``; return the new alert and the event to record.

    Allowed: ``acknowledge`` an open alert; ``close`` an open or acknowledged one; ``comment``
    or ``update`` (new level or value, given in ``changes``) one that is not closed.

    Raises:
        InvalidTransitionError: the action is not allowed in the alert's state.
    """
    allowed = {
        "acknowledge": ("open",),
        "close": ("open", "acknowledged"),
        "comment": ("open", "acknowledged"),
        "update": ("open", "acknowledged"),
        "revise": ("open", "acknowledged", "closed"),
        "withdraw": ("open", "acknowledged", "closed"),
    }.get(action, ())
    if alert.state not in allowed:
        raise InvalidTransitionError(f"cannot {action} alert {alert.id} in state {alert.state}")
    fields: dict[str, Any] = {"updated_ms": now_ms, **(changes or {})}
    if action == "acknowledge":
        fields.update(state="acknowledged", acked_ms=now_ms, acked_by=by)
    elif action == "close" or (action == "withdraw" and alert.state != "closed"):
        fields.update(state="closed", closed_ms=now_ms, closed_by=by)
    if comment:
        fields["comment"] = comment
    event = AlertEvent(ts_ms=now_ms, action=action, by=by, comment=comment, data=changes or {})
    updated = msgspec.structs.replace(alert, **fields)
    return msgspec.structs.replace(updated, events=(*alert.events, event)), event


#: What every finding's data carries about itself rather than about the condition.
_FINDING_KEYS: Final = frozenset({"rule", "ref", "lat", "lon", "flags"})
#: What a correction (``update``) says of the alert's own start, end and escalation.
_CORRECTION_KEYS: Final = frozenset({"was_ms", "end_ms", "escalated"})


def _details(data: dict[str, Any]) -> dict[str, Any]:
    """A finding's details (an overspeed's ``max_kmh``...), without its bookkeeping."""
    return {k: v for k, v in data.items() if k not in _FINDING_KEYS}


def _new_id() -> str:
    return uuid.uuid4().hex


class AlertService:
    """Opens, updates, acknowledges and closes alerts in the store; publishes each change.

    Args:
        store: the archive.
        live: where changes are published (``kind="alert"`` events), if any.
        id_factory: makes alert ids (random hex by default).
    """

    def __init__(
        self,
        store: Store,
        live: LiveState | None = None,
        *,
        id_factory: Callable[[], str] = _new_id,
    ) -> None:
        self.store = store
        self.live = live
        self.id_factory = id_factory
        #: Edge alarms ignored because a newer one of their condition was already applied.
        self.stale_alarms = 0

    async def raise_condition(
        self,
        *,
        enterprise_id: str,
        key: str,
        kind: str,
        level: str,
        now_ms: int,
        asset_id: str | None = None,
        site_id: str | None = None,
        point: str | None = None,
        value: float | None = None,
        message: str = "",
        data: dict[str, Any] | None = None,
    ) -> Alert:
        """Open an alert for condition ``key``, or return the one already open.

        A raise with another level updates the open alert (an ``update`` event); the same
        level again changes nothing (alarm hygiene: one alert per condition).
        """
        current = await self.store.open_alert(enterprise_id, key)
        if current is None:
            alert = new_alert(
                alert_id=self.id_factory(),
                enterprise_id=enterprise_id,
                key=key,
                kind=kind,
                level=level,
                now_ms=now_ms,
                asset_id=asset_id,
                site_id=site_id,
                point=point,
                value=value,
                message=message,
                data=data,
            )
            try:
                await self.store.insert_alert(alert)
            except ConflictError:
                # Another worker opened it a moment ago: that one is the alert.
                current = await self.store.open_alert(enterprise_id, key)
                if current is None:
                    raise
                return current
            await self._publish(alert)
            return alert
        if current.level == level:
            return current
        changes = {"level": level, "value": value, "message": message or current.message}
        try:
            return await self._apply(
                current, "update", by=SYSTEM, comment="", now_ms=now_ms, changes=changes
            )
        except InvalidTransitionError:
            # Closed meanwhile (a clear or a dispatcher): the condition holds, so open anew.
            return await self.raise_condition(
                enterprise_id=enterprise_id,
                key=key,
                kind=kind,
                level=level,
                now_ms=now_ms,
                asset_id=asset_id,
                site_id=site_id,
                point=point,
                value=value,
                message=message,
                data=data,
            )

    async def on_finding(
        self,
        *,
        enterprise_id: str,
        key: str,
        kind: str,
        action: str,
        ts_ms: int,
        level: str,
        asset_id: str | None,
        message: str,
        data: dict[str, Any],
    ) -> Alert | None:
        """Apply what a rule found (:mod:`cloud.rules.events`) to the alert of its condition.

        Idempotent: the rule service applies a finding at least once (a worker that dies after
        raising it and before noting so leaves it to the next), so the same finding again
        changes nothing, and a stale one (a close or escalation older than the open alert)
        does not touch a newer alert.

        ``open`` opens an alert at the observation time ``ts_ms``, or counts a repeat of an
        instantaneous finding on the one still open (``count``, ``last_ms`` and position in its
        data); an ``open`` with ``end_ms`` in ``data`` is a condition late data found over
        already: a closed alert. ``escalate`` raises the open alert to ``critical``; ``close``
        closes it at ``ts_ms``. Late data corrects (cloud.rules.engine.reconcile): ``update``
        revises the alert that opened at ``was_ms`` (or ``start_ms``): its start, its end
        (``end_ms``; ``None`` opens a condition closed by the rules again) or its escalation;
        ``withdraw`` closes the alert that opened at ``ts_ms`` as withdrawn (``withdrawn`` in
        its data; its key gets ``~withdrawn~<id>``, so it no longer stands for the condition):
        it did not happen.
        """
        if action in ("update", "withdraw"):
            return await self._correct(enterprise_id, key, action, ts_ms, level, data)
        current = await self.store.open_alert(enterprise_id, key)
        if action in ("close", "escalate") and (current is None or current.opened_ms > ts_ms):
            return None  # nothing open, or a newer alert: a repeat of one applied before
        if action == "close":
            assert current is not None
            said = _details(data)  # what the close says (an overspeed's maximum and duration)
            return await self._apply(
                current, "close", by=SYSTEM, comment=message, now_ms=ts_ms,
                changes={"data": {**current.data, **said}} if said else None,
            )  # fmt: skip
        if action == "open" and "end_ms" in data:
            return await self._open_closed(
                enterprise_id, key, kind, ts_ms, level, asset_id, message, data, current
            )
        if current is None:
            if action != "open":
                return None
            if await self.store.alert_opened_at(enterprise_id, key, ts_ms) is not None:
                return None  # applied before and closed since: a repeat
            if kind in CONDITIONS and await self.store.alert_covering(enterprise_id, key, ts_ms):
                # A repeat of an opening that a correction since moved earlier (late data
                # found the episode began before): the alert exists, with its new start.
                return None
            alert = new_alert(
                alert_id=self.id_factory(), enterprise_id=enterprise_id, key=key, kind=kind,
                level=level, now_ms=ts_ms, asset_id=asset_id, message=message,
                data={**data, "count": 1, "last_ms": ts_ms},
            )  # fmt: skip
            try:
                await self.store.insert_alert(alert)
            except ConflictError:
                current = await self.store.open_alert(enterprise_id, key)
                if current is None:
                    raise
                return current
            await self._publish(alert)
            return alert
        merged = dict(current.data)
        changes: dict[str, Any]
        if action == "open":
            if ts_ms in (merged.get("last_ms"), current.opened_ms):
                return current  # the same finding again (a repeat): nothing new
            merged.update(data, count=int(merged.get("count", 1)) + 1, last_ms=ts_ms)
            changes = {"data": merged}
        elif action == "escalate":
            if "escalated_ms" in merged:
                return current  # a repeat
            changes = {"level": "critical", "data": {**merged, "escalated_ms": ts_ms}}
        else:
            raise ValueError(f"unknown finding action {action!r}")
        return await self._apply(
            current, "update", by=SYSTEM, comment="", now_ms=ts_ms, changes=changes
        )

    async def _open_closed(
        self,
        enterprise_id: str,
        key: str,
        kind: str,
        ts_ms: int,
        level: str,
        asset_id: str | None,
        message: str,
        data: dict[str, Any],
        current: Alert | None,
    ) -> Alert | None:
        """A condition found over already (late data): a closed alert, once."""
        if current is not None and current.opened_ms == ts_ms:
            return current  # a repeat of an application that failed half-way
        if await self.store.alert_opened_at(enterprise_id, key, ts_ms) is not None:
            return None
        end_ms = int(data["end_ms"])
        escalated = bool(data.get("escalated"))
        alert = new_alert(
            alert_id=self.id_factory(), enterprise_id=enterprise_id, key=key, kind=kind,
            level="critical" if escalated else level, now_ms=ts_ms, asset_id=asset_id,
            message=message, data={**data, "count": 1, "last_ms": ts_ms},
        )  # fmt: skip
        alert, _ = transition(alert, "close", by=SYSTEM, now_ms=end_ms, comment=message)
        try:
            await self.store.insert_alert(alert)
        except ConflictError:
            return None  # applied at the same moment by another worker
        await self._publish(alert)
        return alert

    async def _correct(
        self,
        enterprise_id: str,
        key: str,
        action: str,
        ts_ms: int,
        level: str,
        data: dict[str, Any],
    ) -> Alert | None:
        """Late data corrects an alert (see :meth:`on_finding`)."""
        opened = int(data.get("was_ms", data.get("start_ms", ts_ms)))
        current = await self.store.alert_opened_at(enterprise_id, key, opened)
        if current is None:
            return None
        if action == "withdraw":
            comment = "withdrawn: data that arrived later shows it did not happen"
            # It leaves its condition (the key): should later data bring the condition back
            # from the same start, that is a new alert, not this one reopened.
            withdrawn = {
                "data": {**current.data, "withdrawn": True},
                "key": f"{current.key}~withdrawn~{current.id}",
            }
            return await self._apply(
                current, "withdraw", by=SYSTEM, comment=comment, now_ms=ts_ms, changes=withdrawn
            )
        start = int(data.get("start_ms", current.opened_ms))
        said = {k: v for k, v in _details(data).items() if k not in _CORRECTION_KEYS}
        merged = {**current.data, **said, "start_ms": start}
        changes: dict[str, Any] = {"opened_ms": start, "data": merged}
        if "escalated" in data:
            changes["level"] = "critical" if data["escalated"] else level
            if not data["escalated"]:
                merged.pop("escalated_ms", None)
        if "end_ms" in data and current.closed_by == SYSTEM:
            end = data["end_ms"]
            if end is not None:
                changes["closed_ms"] = int(end)
            elif await self.store.open_alert(enterprise_id, key) is None:
                changes.update(state="open", closed_ms=None, closed_by=None)  # open after all
        return await self._apply(
            current, "revise", by=SYSTEM, comment="", now_ms=ts_ms, changes=changes
        )

    async def clear_condition(
        self, *, enterprise_id: str, key: str, now_ms: int, by: str = SYSTEM, comment: str = ""
    ) -> Alert | None:
        """Close the alert of condition ``key`` if one is not closed; return it (or ``None``)."""
        current = await self.store.open_alert(enterprise_id, key)
        if current is None:
            return None
        return await self._apply(current, "close", by=by, comment=comment, now_ms=now_ms)

    async def acknowledge(
        self,
        alert_id: str,
        *,
        by: str,
        comment: str = "",
        now_ms: int,
        enterprise_ids: Collection[str] | None = None,
    ) -> Alert | None:
        """Acknowledge an open alert in scope; ``None`` if missing or outside the scope.

        Raises:
            InvalidTransitionError: the alert is already acknowledged or closed.
        """
        return await self._act(alert_id, "acknowledge", by, comment, now_ms, enterprise_ids)

    async def close(
        self,
        alert_id: str,
        *,
        by: str,
        comment: str = "",
        now_ms: int,
        enterprise_ids: Collection[str] | None = None,
    ) -> Alert | None:
        """Close an open or acknowledged alert in scope; ``None`` if missing or out of scope.

        Raises:
            InvalidTransitionError: the alert is already closed.
        """
        return await self._act(alert_id, "close", by, comment, now_ms, enterprise_ids)

    async def comment(
        self,
        alert_id: str,
        *,
        by: str,
        comment: str,
        now_ms: int,
        enterprise_ids: Collection[str] | None = None,
    ) -> Alert | None:
        """Add a comment to an alert that is not closed; ``None`` if missing or out of scope."""
        return await self._act(alert_id, "comment", by, comment, now_ms, enterprise_ids)

    async def escalate_unacknowledged(
        self, alert_id: str, *, step: int, now_ms: int
    ) -> Alert | None:
        """Mark an alert nobody acknowledged in time as escalated to ``step`` (an ``update``
        whose data gets ``escalation`` and ``escalation_ms``: the notification outbox tells
        the next level from it); ``None`` if it is no longer open or already at that step.

        Hook of :mod:`cloud.notify.escalation`; the change is conditional on the alert still
        being open, so an acknowledgement that wins the race is never escalated over.
        """
        current = await self.store.get_alert(alert_id)
        if current is None or current.state != "open":
            return None
        if int(current.data.get("escalation", 0) or 0) >= step:
            return None
        data = {**current.data, "escalation": step, "escalation_ms": now_ms}
        updated, event = transition(
            current, "update", by=SYSTEM, now_ms=now_ms, changes={"data": data}
        )
        try:
            await self.store.update_alert(updated, event, expect_state="open")
        except ConflictError:
            return None  # acknowledged or closed meanwhile
        await self._publish(updated)
        return updated

    async def on_alarm(
        self,
        alarm: wire.Alarm,
        *,
        enterprise_id: str,
        gateway_id: str,
        now_ms: int,
        again: bool = False,
    ) -> Alert | None:
        """Apply an edge alarm: ``raise`` opens (or updates) a sensor alert, ``clear`` closes it.

        ``fault`` alarms and alarms with a ``code`` become their own conditions. The alarms of a
        condition are applied in the order they happened (one gateway's by ``seq``, whatever its
        clock did; different gateways' by ``(ts, seq)``), whatever order the workers process
        them in: the newest applied is recorded first (the store's alarm mark, advanced
        atomically), and an alarm not newer than it is ignored (``None``; counted in
        :attr:`stale_alarms`). Then:

        - a ``clear`` closes the open alert only while it is still the newest (the close is
          conditional on the mark, which PostgreSQL keeps locked until it is committed);
        - a ``raise`` opens or updates the alert as before, then reads the mark again: if a
          newer ``clear`` was recorded meanwhile, it closes the alert (conditional on that mark,
          again and again while newer alarms keep coming).

        Interleavings of a raise R and a clear C on two workers (each advances before acting):

        - the older one advances after the newer: it is ignored, the newer acts alone;
        - C newer, R advanced first: if C's close ran before R opened, R reads C's mark after
          opening and closes; if it ran after, C closed R's alert and R finds nothing to close;
        - R newer, C advanced first: if C closes before R advances (the mark is locked while it
          commits), R then opens anew; if R advanced first, C's close is refused (C is no longer
          the newest), so the alert R opened or kept stays open.

        With ``again``, an alarm that is itself the newest recorded is applied once more (ingest
        retrying one whose application failed after its mark was recorded); otherwise it is a
        duplicate and ignored.

        Returns:
            The alert opened, updated or closed (a raise superseded by a newer clear returns
            the alert closed); ``None`` if there was nothing to close or the alarm was stale.
        """
        key = alarm_key(alarm, gateway_id)
        mark = AlarmMark(ts_ms=alarm.ts, seq=alarm.seq, state=alarm.state, gateway_id=gateway_id)
        if not await self.store.advance_alarm_mark(enterprise_id, key, mark, same_again=again):
            self.stale_alarms += 1
            log.debug(
                "ignoring edge alarm %s of %s seq %d ts %d: a newer one was applied",
                alarm.state,
                key,
                alarm.seq,
                alarm.ts,
            )
            return None
        if alarm.state == "clear":
            # A clear names the level it ends; close whatever alert that condition has.
            _, closed = await self._close_if_newest(enterprise_id, key, mark, "", now_ms)
            return closed
        kind = "sensor" if alarm.point is not None else "device"
        alert = await self.raise_condition(
            enterprise_id=enterprise_id,
            key=key,
            kind=kind,
            level=alarm.level,
            now_ms=now_ms,
            asset_id=alarm.asset,
            site_id=alarm.site,
            point=alarm.point,
            value=alarm.value,
            message=alarm.message,
            data={
                "gateway_id": gateway_id,
                "limit": alarm.limit,
                "code": alarm.code,
                "ts": alarm.ts,
            },
        )
        while True:
            newest = await self.store.alarm_mark(enterprise_id, key)
            if newest is None or newest.state == "raise":
                # Still the newest, or a newer raise whose own worker keeps the alert open.
                return alert
            comment = f"cleared by a later edge event (ts {newest.ts_ms}, seq {newest.seq})"
            held, closed = await self._close_if_newest(enterprise_id, key, newest, comment, now_ms)
            if held:
                return closed or await self.store.get_alert(alert.id)

    async def _close_if_newest(
        self, enterprise_id: str, key: str, mark: AlarmMark, comment: str, now_ms: int
    ) -> tuple[bool, Alert | None]:
        """Close the open alert of ``key`` (by the system) while ``mark`` is its newest edge
        alarm; return whether it was (else nothing changed) and the alert closed, if any."""
        while True:
            current = await self.store.open_alert(enterprise_id, key)
            if current is None:
                return True, None
            if current.state == "closed":
                continue  # closed between the store's lookup and its read: look again
            updated, event = transition(current, "close", by=SYSTEM, comment=comment, now_ms=now_ms)
            try:
                written = await self.store.update_alert(
                    updated, event, expect_state=current.state, if_mark=mark
                )
            except ConflictError:
                continue  # acknowledged or closed meanwhile: decide again
            if not written:
                return False, None
            await self._publish(updated)
            return True, updated

    async def _act(
        self,
        alert_id: str,
        action: AlertAction,
        by: str,
        comment: str,
        now_ms: int,
        scope: Collection[str] | None,
    ) -> Alert | None:
        current = await self.store.get_alert(alert_id, enterprise_ids=scope)
        if current is None:
            return None
        return await self._apply(current, action, by=by, comment=comment, now_ms=now_ms)

    async def _apply(
        self,
        alert: Alert,
        action: AlertAction,
        *,
        by: str,
        comment: str,
        now_ms: int,
        changes: dict[str, Any] | None = None,
    ) -> Alert:
        """Apply ``action`` unless another worker or user changed the alert's state meanwhile:
        then decide again on the stored alert (which may make the action invalid)."""
        while True:
            updated, event = transition(
                alert, action, by=by, comment=comment, now_ms=now_ms, changes=changes
            )
            try:
                await self.store.update_alert(updated, event, expect_state=alert.state)
            except ConflictError:
                fresh = await self.store.get_alert(alert.id)
                if fresh is None or fresh.state == alert.state:
                    raise
                if action == "close" and fresh.state == "closed":
                    return fresh  # closed meanwhile (by another worker): done
                alert = fresh
                continue
            await self._publish(updated)
            return updated

    async def _publish(self, alert: Alert) -> None:
        if self.live is None:
            return
        data = msgspec.to_builtins(msgspec.structs.replace(alert, events=()))
        event = LiveEvent(
            kind="alert", enterprise_id=alert.enterprise_id, ts_ms=alert.updated_ms or 0, data=data
        )
        try:
            await self.live.publish(event)
        except Exception:
            log.exception("publishing alert %s to the live feed failed", alert.id)
