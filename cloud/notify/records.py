"""Typed records of notifications: recipients, outbox rows and their delivery attempts."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from cloud.models import Alert

__all__ = [
    "CHANNELS",
    "SEVERITIES",
    "Attempt",
    "Change",
    "ChannelName",
    "Claimed",
    "Endpoint",
    "Finished",
    "MaintenanceWindow",
    "Notification",
    "NotifyEvent",
    "NotifyStatus",
    "Outgoing",
    "QuietHours",
    "Recipient",
    "Severity",
    "Tier",
]

#: Who a recipient is: a dispatcher of an enterprise, its safety manager (told on escalation),
#: or a regulator of a region.
Tier = Literal["enterprise", "safety_manager", "regulator"]
ChannelName = Literal["webhook", "sms", "email"]
CHANNELS: Final[tuple[str, ...]] = ("webhook", "sms", "email")
Severity = Literal["info", "warning", "critical"]
SEVERITIES: Final[tuple[str, ...]] = ("info", "warning", "critical")
#: What a notification tells: an alert opened, escalated (a higher level) or closed.
#: A ``digest`` tells at once what flood control held back.
NotifyEvent = Literal["open", "escalate", "close", "digest"]
#: ``pending`` (due at ``next_ms``, or being sent under a lease), ``sent``, ``failed`` (refused
#: for good: a 4xx), ``expired`` (retried until its expiry), ``skipped`` (quiet hours),
#: ``suppressed`` (a maintenance window), ``held`` (flood control: sent in a digest),
#: ``digested`` (a held one the digest told).
NotifyStatus = Literal[
    "pending", "sent", "failed", "expired", "skipped", "suppressed", "held", "digested"
]
HhMm = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Endpoint(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One way to reach a recipient: a webhook URL, a mobile number or an e-mail address.

    Attributes:
        secret: a webhook's signing secret (HMAC-SHA256); unused by other channels.
    """

    channel: ChannelName
    address: str
    secret: str | None = None


class QuietHours(msgspec.Struct, frozen=True, kw_only=True):
    """Beijing-time hours ``start`` to ``end`` (``HH:MM``; may span midnight) without messages."""

    start: HhMm
    end: HhMm


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    """Someone told of alerts, with how and when.

    ``enterprise`` and ``safety_manager`` recipients belong to one enterprise
    (``enterprise_id``), ``regulator`` ones to a region (GB/T 2260 ``region``: every enterprise
    within it). Quiet hours are per severity; ``critical`` ignores them.
    """

    id: str
    tier: Tier
    enterprise_id: str | None = None
    region: str | None = None
    name: str = ""
    channels: tuple[Endpoint, ...] = ()
    severities: tuple[Severity, ...] = ("warning", "critical")
    quiet: dict[Severity, QuietHours] = {}
    notify_close: bool = False
    updated_ms: int = 0


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """A notification to enqueue (what routing decides), before it has an outbox id."""

    dedupe: str
    alert_id: str
    enterprise_id: str
    event: NotifyEvent
    recipient_id: str
    channel: ChannelName
    address: str
    secret: str | None = None
    payload: dict[str, Any]
    status: Literal["pending", "skipped", "suppressed"] = "pending"
    reason: str = ""


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery attempt: ``sent``, ``retry`` (5xx, timeout), ``failed`` (4xx) or
    ``expired``."""

    ts_ms: int
    worker: str
    outcome: str
    code: int | None = None
    error: str = ""
    duration_ms: int = 0


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """An outbox row and its attempts, as the API shows it (never the webhook secret)."""

    id: int
    alert_id: str
    enterprise_id: str
    event: str
    recipient_id: str
    channel: str
    address: str
    status: str
    attempts: int
    next_ms: int
    created_ms: int
    expires_ms: int
    done_ms: int | None = None
    last_error: str = ""
    history: tuple[Attempt, ...] = ()


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A notification a worker holds a lease on: what it needs to send it.

    ``attempt`` is the attempt number the claim made (the fencing token: the worker records its
    outcome only while the row still carries it).
    """

    id: int
    dedupe: str
    alert_id: str
    event: str
    recipient_id: str
    channel: str
    address: str
    secret: str | None
    payload: dict[str, Any]
    attempt: int
    expires_ms: int


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an alert's history as the outbox reads it.

    Attributes:
        event_id: the history entry's id (what the outbox's cursor counts).
        action: the entry's action (``open``, ``update``, ``close``...).
        data: the entry's data (an ``update``'s new ``level``...).
        prev_level: the alert's level before this entry (``None`` for its ``open``).
        alert: the alert as it is now (without history).
        region: the region of the alert's enterprise.
    """

    event_id: int
    action: str
    ts_ms: int
    data: dict[str, Any] = {}
    prev_level: str | None = None
    alert: Alert
    region: str | None = None


class MaintenanceWindow(msgspec.Struct, frozen=True, kw_only=True):
    """A time when alerts of a site (all its points, or one ``point``) or of a vehicle
    (``asset_id``) are recorded but nobody is told (``start_ms <= t < end_ms``)."""

    id: str
    enterprise_id: str
    site_id: str | None = None
    point: str | None = None
    asset_id: str | None = None
    start_ms: int
    end_ms: int
    reason: str = ""
    created_ms: int = 0

    def covers(self, alert: Alert, ts_ms: int) -> bool:
        """Whether ``alert`` at ``ts_ms`` falls in this window."""
        if alert.enterprise_id != self.enterprise_id or not self.start_ms <= ts_ms < self.end_ms:
            return False
        if self.asset_id is not None:
            return alert.asset_id == self.asset_id
        if self.site_id is None or alert.site_id != self.site_id:
            return False
        return self.point is None or alert.point == self.point


class Finished(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one claimed notification, to record: the attempt and the row's new
    ``status`` and due time; a digest's final status settles the held ones it told."""

    claimed: Claimed
    attempt: Attempt
    status: str
    next_ms: int
    now_ms: int
    settles: tuple[int, ...] = ()
