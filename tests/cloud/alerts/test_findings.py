"""What the rules find, applied to alerts: opening, repeats, late corrections, withdrawals.

The rule service applies each finding at least once (cloud/watch/service.py, the outbox), and
two workers may apply the same one at the same moment; so every application is idempotent and
a stale one never touches a newer alert.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.models import Alert

T0 = 1_782_871_200_000
KEY = "rule:zone.forbidden:truck:ban"


async def find(alerts: AlertService, action: str, ts: int, **data: Any) -> Alert | None:
    return await alerts.on_finding(
        enterprise_id="e1", key=KEY, kind="zone.forbidden", action=action, ts_ms=ts,
        level="warning", asset_id="truck", message="truck in a forbidden zone: ban",
        data={"ref": "ban", **data},
    )  # fmt: skip


async def listed(store: Store) -> list[tuple[str, int, int | None, str, bool]]:
    return sorted(
        (a.state, a.opened_ms, a.closed_ms, a.level, bool(a.data.get("withdrawn")))
        for a in await store.list_alerts(None)
    )


async def test_a_condition_opens_escalates_and_closes_once_however_often_applied(
    store: Store,
) -> None:
    alerts = AlertService(store)
    for _ in range(2):
        await find(alerts, "open", T0)
        await find(alerts, "escalate", T0 + 60_000)
        await find(alerts, "close", T0 + 120_000)
    assert await listed(store) == [("closed", T0, T0 + 120_000, "critical", False)]


async def test_an_opening_applied_again_after_late_data_moved_its_start_is_a_repeat(
    store: Store,
) -> None:
    """Worker A opens at T0 + 60 s; worker B, from late data, moves the start to T0 and closes
    it; A's opening applied again (its outbox retried) must not open a second alert, whose
    own correction would then collide with the first."""
    alerts = AlertService(store)
    await find(alerts, "open", T0 + 60_000)
    await find(alerts, "update", T0 + 90_000, was_ms=T0 + 60_000, start_ms=T0)
    await find(alerts, "close", T0 + 120_000)
    await find(alerts, "open", T0 + 60_000)  # the stale repeat
    await find(alerts, "update", T0 + 90_000, was_ms=T0 + 60_000, start_ms=T0)  # and again
    assert await listed(store) == [("closed", T0, T0 + 120_000, "warning", False)]
    # a new episode after the close is a new alert, and one inside a person's close too
    await find(alerts, "open", T0 + 120_000)
    assert len(await listed(store)) == 2


async def test_a_stale_close_or_escalation_leaves_a_newer_alert_alone(store: Store) -> None:
    alerts = AlertService(store)
    await find(alerts, "open", T0)
    await find(alerts, "close", T0 + 100_000)
    await find(alerts, "open", T0 + 500_000)
    await find(alerts, "escalate", T0 + 50_000)  # of the first episode, applied again
    await find(alerts, "close", T0 + 100_000)
    await find(alerts, "open", T0)  # the first open again
    assert await listed(store) == [
        ("closed", T0, T0 + 100_000, "warning", False),
        ("open", T0 + 500_000, None, "warning", False),
    ]


async def test_late_data_moves_a_start_and_an_end_and_reopens(store: Store) -> None:
    alerts = AlertService(store)
    await find(alerts, "open", T0 + 50_000)
    await find(alerts, "update", T0, start_ms=T0, was_ms=T0 + 50_000)  # began earlier
    await find(alerts, "close", T0 + 200_000)
    await find(alerts, "update", T0, start_ms=T0, end_ms=T0 + 150_000)  # ended earlier
    assert await listed(store) == [("closed", T0, T0 + 150_000, "warning", False)]
    await find(alerts, "update", T0, start_ms=T0, end_ms=None)  # not over after all
    assert await listed(store) == [("open", T0, None, "warning", False)]
    await find(alerts, "update", T0, start_ms=T0, escalated=True)
    await find(alerts, "update", T0 + 20_000, start_ms=T0 + 20_000, was_ms=T0, escalated=False)
    assert await listed(store) == [("open", T0 + 20_000, None, "warning", False)]


async def test_a_withdrawn_alert_leaves_its_condition(store: Store) -> None:
    alerts = AlertService(store)
    await find(alerts, "open", T0)
    await find(alerts, "withdraw", T0, start_ms=T0)
    await find(alerts, "withdraw", T0, start_ms=T0)  # again: nothing left to withdraw
    assert await listed(store) == [("closed", T0, T0, "warning", True)]
    (withdrawn,) = await store.list_alerts(None)
    assert withdrawn.comment.startswith("withdrawn")
    await find(alerts, "open", T0)  # later data brings it back: a new alert
    assert await listed(store) == [
        ("closed", T0, T0, "warning", True),
        ("open", T0, None, "warning", False),
    ]


async def test_a_condition_found_over_already_is_one_closed_alert(store: Store) -> None:
    alerts = AlertService(store)
    over: dict[str, Any] = {"start_ms": T0, "end_ms": T0 + 90_000, "escalated": True}
    await asyncio.gather(*(find(alerts, "open", T0, **over) for _ in range(3)))
    await find(alerts, "open", T0, **over)
    assert await listed(store) == [("closed", T0, T0 + 90_000, "critical", False)]
