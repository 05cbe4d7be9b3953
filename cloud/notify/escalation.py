"""Escalation of alerts nobody acknowledged in time, and maintenance-window suppression.

An ``open`` alert (not acknowledged) of severity ``s`` escalates to step 1 after
``escalate_<s>_s`` (the enterprise's safety managers are told) and to step 2 after twice that
(the regulators). Steps are taken one at a time, each claimed by one worker with a lease in the
archive and applied through :meth:`cloud.alerts.AlertService.escalate_unacknowledged` (only
while the alert is still open). An alert in a maintenance window does not escalate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.models import Alert
from cloud.notify.config import NotifySettings
from cloud.notify.routing import severity_of

__all__ = ["MAX_STEP", "Escalator", "due_step"]

log = logging.getLogger(__name__)
#: Step 1: safety managers; step 2: regulators.
MAX_STEP: Final = 2
_LEASE_MS: Final = 60_000


def _after_s(alert: Alert, settings: NotifySettings) -> float:
    severity = severity_of(alert.level, settings)
    return {
        "info": settings.escalate_info_s,
        "warning": settings.escalate_warning_s,
        "critical": settings.escalate_critical_s,
    }[severity]


def due_step(alert: Alert, now_ms: int, settings: NotifySettings) -> int:
    """The next escalation step ``alert`` is due for at ``now_ms``, or 0."""
    after_s = _after_s(alert, settings)
    if alert.state != "open" or after_s <= 0:
        return 0
    reached = int(alert.data.get("escalation", 0) or 0)
    due = min(MAX_STEP, int((now_ms - alert.opened_ms) // int(after_s * 1000)))
    return reached + 1 if due > reached else 0


class Escalator:
    """Looks for unacknowledged alerts and escalates them one step at a time."""

    def __init__(
        self,
        *,
        store: Store,
        alerts: AlertService,
        settings: NotifySettings,
        clock_ms: Callable[[], int],
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.settings = settings
        self.clock_ms = clock_ms

    async def run_once(self) -> int:
        """Escalate every alert due for a step; return how many were escalated."""
        settings = self.settings
        afters = [
            a
            for a in (
                settings.escalate_info_s,
                settings.escalate_warning_s,
                settings.escalate_critical_s,
            )
            if a > 0
        ]
        if not afters:
            return 0
        now_ms = self.clock_ms()
        escalated = 0
        candidates = await self.store.unacknowledged_alerts(now_ms - int(min(afters) * 1000))
        for alert in candidates:
            step = due_step(alert, now_ms, settings)
            if not step or await self._in_maintenance(alert, now_ms):
                continue
            claimed = await self.store.claim_escalation(
                alert.id, step, now_ms=now_ms, lease_ms=_LEASE_MS
            )
            if not claimed:
                continue
            if await self.alerts.escalate_unacknowledged(alert.id, step=step, now_ms=now_ms):
                escalated += 1
                log.info("alert %s not acknowledged in time: escalated to step %d", alert.id, step)
            await self.store.escalation_done(alert.id, step)
        return escalated

    async def _in_maintenance(self, alert: Alert, now_ms: int) -> bool:
        windows = await self.store.list_windows([alert.enterprise_id], active_at_ms=now_ms)
        return any(w.covers(alert, now_ms) for w in windows)
