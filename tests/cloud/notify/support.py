"""Helpers of the notification tests: a settable clock, a seeded tenant, recipients."""

from __future__ import annotations

from dataclasses import dataclass

from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.models import Alert, Enterprise
from cloud.notify.records import Endpoint, Recipient

#: 2026-06-01 02:00 UTC = 10:00 Beijing time (outside everyone's quiet hours).
T0 = 1_780_279_200_000


@dataclass
class Clock:
    """A clock the test moves (UTC epoch ms)."""

    now_ms: int = T0

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


async def seed(store: Store, *, enterprise: str = "e1", region: str = "320281") -> None:
    """One enterprise in Jiangyin (Wuxi city)."""
    await store.put_enterprise(Enterprise(id=enterprise, name=enterprise, region=region))


def webhook_recipient(
    recipient_id: str, url: str, *, enterprise: str | None = "e1", tier: str = "enterprise",
    region: str | None = None, secret: str = "s3cret", notify_close: bool = False,
) -> Recipient:  # fmt: skip
    """A recipient reached by one signed webhook."""
    return Recipient(
        id=recipient_id, tier=tier, enterprise_id=enterprise, region=region,  # type: ignore[arg-type]
        channels=(Endpoint(channel="webhook", address=url, secret=secret),),
        notify_close=notify_close,
    )  # fmt: skip


async def site_alert(
    store: Store, *, level: str = "H", key: str = "sensor:s1:LT01:H", now_ms: int = T0
) -> Alert:
    """Open (or raise) a site alert of ``e1`` through the alert service (its point is the one
    ``key`` names)."""
    point = key.split(":")[2]
    return await AlertService(store).raise_condition(
        enterprise_id="e1", key=key, kind="sensor", level=level, now_ms=now_ms,
        site_id="s1", point=point, value=9.5, message="液位高",
    )  # fmt: skip
