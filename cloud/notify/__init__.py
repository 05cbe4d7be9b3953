"""Notifications: alerts reach people over webhooks, SMS and e-mail through a durable outbox.

Alert changes are read from the alert history (committed with each change) into the outbox in
the archive (:mod:`cloud.archive._notify`); :class:`cloud.notify.dispatch.Dispatcher` claims
due rows with a lease and sends them through :mod:`cloud.notify.channels`. Who gets what is the
pure :mod:`cloud.notify.routing` (tiers, regions, severities, quiet hours, maintenance windows);
:mod:`cloud.notify.escalation` escalates alerts nobody acknowledged in time; flood control
turns a burst to one endpoint into a digest. This package's ``__init__`` imports only the
records, so the archive can use them without an import circle.
"""

from cloud.notify.records import (
    Attempt,
    Endpoint,
    Notification,
    Outgoing,
    QuietHours,
    Recipient,
)

__all__ = ["Attempt", "Endpoint", "Notification", "Outgoing", "QuietHours", "Recipient"]
