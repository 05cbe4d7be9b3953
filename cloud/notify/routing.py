"""Who is told what (pure): severities, quiet hours, tiers, and the text of a message.

An alert's ``open`` goes to its enterprise's ``enterprise`` recipients and, for a site alert (one
with a ``site_id``: a major hazard source), at the same moment to the regulators of the
enterprise's region. An ``escalate`` (a higher level) goes to all three tiers; a ``close`` to
the same people as the open or escalation, to those who want closes. A recipient gets only the
severities it chose; outside ``critical``, its quiet hours (Beijing time) turn a message into a
``skipped`` record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

import msgspec

from cloud.models import Alert, region_contains
from cloud.notify.config import NotifySettings
from cloud.notify.records import (
    Change,
    MaintenanceWindow,
    NotifyEvent,
    Outgoing,
    QuietHours,
    Recipient,
    Severity,
)

__all__ = [
    "BEIJING_OFFSET_MS",
    "escalation_step",
    "in_quiet_hours",
    "message_text",
    "notify_event",
    "route",
    "severity_of",
]

#: Beijing time is UTC+8 all year (no daylight saving).
BEIJING_OFFSET_MS: Final = 8 * 3_600_000
_RANK: Final = {"info": 0, "warning": 1, "critical": 2}
_SEVERITY_ZH: Final = {"info": "提示", "warning": "预警", "critical": "严重告警"}
_EVENT_ZH: Final = {"open": "发生", "escalate": "升级", "close": "解除"}


def severity_of(level: str, settings: NotifySettings) -> Severity:
    """The severity of an alert level (``critical_levels`` / ``info_levels``, else warning)."""
    if level in settings.critical_levels.split():
        return "critical"
    if level in settings.info_levels.split():
        return "info"
    return "warning"


def escalation_step(change: Change) -> int:
    """The escalation step an ``update`` entry made (an alert nobody acknowledged in time:
    1 tells the safety managers, 2 the regulators), or 0."""
    nested = change.data.get("data")
    if not isinstance(nested, dict) or nested.get("escalation_ms") != change.ts_ms:
        return 0
    step = nested.get("escalation")
    return step if isinstance(step, int) else 0


def notify_event(change: Change, settings: NotifySettings) -> NotifyEvent | None:
    """What a history entry tells people, if anything: an open; an escalation (an update to a
    higher severity, the rules' escalation, or an alert nobody acknowledged in time); a close
    (a withdrawal too). Later updates that merely carry an earlier escalation's marks are not
    escalations again."""
    if change.action == "open":
        return "open"
    if change.action in ("close", "withdraw"):
        return "close"
    if change.action != "update":
        return None
    nested = change.data.get("data")
    if isinstance(nested, dict) and nested.get("escalated_ms") == change.ts_ms:
        return "escalate"
    if escalation_step(change):
        return "escalate"
    level = change.data.get("level")
    if not isinstance(level, str) or change.prev_level is None:
        return None
    before = _RANK[severity_of(change.prev_level, settings)]
    return "escalate" if _RANK[severity_of(level, settings)] > before else None


def _minutes(hh_mm: str) -> int:
    hours, minutes = hh_mm.split(":")
    return int(hours) * 60 + int(minutes)


def in_quiet_hours(quiet: QuietHours, now_ms: int) -> bool:
    """Whether ``now_ms`` lies in the quiet hours (Beijing time; ``start`` included, ``end``
    not; a span past midnight such as 22:00-07:00 works)."""
    minute = ((now_ms + BEIJING_OFFSET_MS) // 60_000) % 1440
    start, end = _minutes(quiet.start), _minutes(quiet.end)
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end


def _tiers(change: Change, event: NotifyEvent) -> tuple[str, ...]:
    """Who is told: the enterprise always; a site alert's regulators at once; on escalation
    the next level (or everyone, when the alert itself became more severe); a close goes to
    everyone the alert reached."""
    alert = change.alert
    step = escalation_step(change) if event == "escalate" else 0
    if step:
        return ("safety_manager",) if step == 1 else ("regulator",)
    reached = int(alert.data.get("escalation", 0) or 0)
    if event == "escalate" or "escalated_ms" in alert.data:
        return ("enterprise", "safety_manager", "regulator")
    tiers = ["enterprise"]
    if event == "close" and reached >= 1:
        tiers.append("safety_manager")
    if alert.site_id is not None or (event == "close" and reached >= 2):
        tiers.append("regulator")
    return tuple(tiers)


def _addressed(recipient: Recipient, alert: Alert, region: str | None) -> bool:
    if recipient.tier == "regulator":
        return (
            recipient.region is not None
            and region is not None
            and region_contains(recipient.region, region)
        )
    return recipient.enterprise_id == alert.enterprise_id


def message_text(alert: Alert, event: NotifyEvent, severity: Severity) -> str:
    """The short Chinese text of SMS and e-mail (the webhook carries it too)."""
    where = alert.site_id or alert.asset_id or alert.enterprise_id
    if alert.point:
        where = f"{where}/{alert.point}"
    value = "" if alert.value is None else f" 值{alert.value:g}"
    text = f"【hazwatch】{_SEVERITY_ZH[severity]}{_EVENT_ZH[event]}：{where} {alert.kind} {alert.level}"
    return f"{text}{value} {alert.message}".rstrip()


def payload_of(change: Change, event: NotifyEvent, severity: Severity) -> dict[str, Any]:
    """The JSON a webhook receives (SMS and e-mail send its ``text``)."""
    alert = change.alert
    fields = msgspec.to_builtins(msgspec.structs.replace(alert, events=()))
    fields.pop("events", None)
    return {
        "event": event,
        "ts_ms": change.ts_ms,
        "severity": severity,
        "alert": fields,
        "text": message_text(alert, event, severity),
    }


def route(
    change: Change,
    recipients: Iterable[Recipient],
    *,
    now_ms: int,
    settings: NotifySettings,
    windows: Iterable[MaintenanceWindow] = (),
) -> list[Outgoing]:
    """The notifications one history entry makes: one per (recipient, channel); those of an
    alert in a maintenance window are recorded as ``suppressed``."""
    event = notify_event(change, settings)
    if event is None:
        return []
    alert = change.alert
    level = change.data.get("level") if event == "escalate" else None
    severity = severity_of(level if isinstance(level, str) else alert.level, settings)
    payload = payload_of(change, event, severity)
    tiers = _tiers(change, event)
    window = next((w for w in windows if w.covers(alert, change.ts_ms)), None)
    found: list[Outgoing] = []
    for recipient in recipients:
        if recipient.tier not in tiers or not _addressed(recipient, alert, change.region):
            continue
        if severity not in recipient.severities or (
            event == "close" and not recipient.notify_close
        ):
            continue
        quiet = recipient.quiet.get(severity)
        status: Literal["pending", "skipped", "suppressed"]
        if window is not None:
            status, reason = "suppressed", f"maintenance window {window.id}"
        elif severity != "critical" and quiet is not None and in_quiet_hours(quiet, now_ms):
            status, reason = "skipped", "quiet hours"
        else:
            status, reason = "pending", ""
        found.extend(_outgoing(change, event, recipient, payload, status, reason))
    return found


def _digest(address: str) -> str:
    return hashlib.sha256(address.encode("utf-8")).hexdigest()[:16]


def _outgoing(
    change: Change,
    event: NotifyEvent,
    recipient: Recipient,
    payload: dict[str, Any],
    status: Literal["pending", "skipped", "suppressed"],
    reason: str,
) -> Sequence[Outgoing]:
    return [
        Outgoing(
            dedupe=f"{change.event_id}:{recipient.id}:{endpoint.channel}:{_digest(endpoint.address)}",
            alert_id=change.alert.id,
            enterprise_id=change.alert.enterprise_id,
            event=event,
            recipient_id=recipient.id,
            channel=endpoint.channel,
            address=endpoint.address,
            secret=endpoint.secret,
            payload=payload,
            status=status,
            reason=reason,
        )
        for endpoint in recipient.channels
    ]
