"""Settings of notifications (``[notify]`` in the cloud config; every key flat, with its unit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_SMS_TEMPLATE", "NUMBER_CHECKS", "NotifySettings"]

#: The SMS gateway's request body: JSON with ``$phone``, ``$text``, ``$username``,
#: ``$password``, ``$part`` and ``$parts`` substituted (each JSON-escaped).
DEFAULT_SMS_TEMPLATE: Final = (
    '{"username": "$username", "password": "$password", "phone": "$phone", "text": "$text"}'
)


@dataclass(frozen=True, kw_only=True)
class NotifySettings:
    """How alerts reach people.

    Attributes:
        enabled: run the outbox dispatcher in this worker (several workers may).
        poll_s: pause of the dispatcher when nothing was due.
        batch: notifications claimed per round.
        concurrency: notifications sent at once per worker.
        lease_s: how long a claimed notification is held; a worker that dies releases it then
            (longer than a send can take: ``timeout_s`` times the SMS segments).
        timeout_s: timeout of one webhook, SMS gateway or SMTP exchange.
        backoff_base_s: first retry delay; each retry doubles it...
        backoff_max_s: ... up to this; each delay is jittered to 50-100 % of itself.
        expiry_s: a notification not delivered this long after it was enqueued expires.
        sweep_overlap: alert history ids below the outbox's cursor looked at again on
            PostgreSQL (ids of concurrent transactions can commit out of order); entries swept
            already are noted and skipped.
        escalate_info_s: an ``info`` alert nobody acknowledged this long is escalated to the
            enterprise's safety managers, twice this long to the regulators (0: never).
        escalate_warning_s: the same for ``warning`` alerts (0, off: each deployment sets its
            handling policy; 1800 is common practice, unverified).
        escalate_critical_s: the same for ``critical`` alerts (0, off; 300 is common practice,
            unverified).
        escalate_period_s: how often unacknowledged alerts are looked for.
        flood_max: flood control: an endpoint (a recipient's webhook, phone or address) gets at
            most this many notifications per ``flood_window_s``; the rest of the window's are
            held and sent as one digest at its end (critical ones are never held; 0: off).
        flood_window_s: the flood control's window.
        critical_levels: alert levels of severity ``critical`` (space-separated).
        info_levels: alert levels of severity ``info``; every other level is ``warning``.
        sms_url: the SMS gateway (HTTP POST); empty: no SMS channel.
        sms_username: credentials put into the template.
        sms_password: credentials put into the template.
        sms_template: the gateway's JSON body (see :data:`DEFAULT_SMS_TEMPLATE`).
        sms_segment_chars: characters per message; longer text is cut into several.
        smtp_host: the mail server; empty: no e-mail channel.
        smtp_port: its port.
        smtp_sender: the ``From`` address.
        smtp_username: login (empty: none).
        smtp_password: password.
        smtp_starttls: upgrade the connection with STARTTLS.
        webhook_private_ok: webhooks may call loopback, private and link-local addresses (off:
            a tenant's webhook must not reach services inside the cloud's own network; on for
            a deployment whose enterprise systems are on the intranet).
    """

    enabled: bool = True
    poll_s: float = 0.5
    batch: int = 100
    concurrency: int = 16
    lease_s: float = 120.0
    timeout_s: float = 10.0
    backoff_base_s: float = 2.0
    backoff_max_s: float = 600.0
    expiry_s: float = 86_400.0
    sweep_overlap: int = 100
    escalate_info_s: float = 0.0
    escalate_warning_s: float = 0.0
    escalate_critical_s: float = 0.0
    escalate_period_s: float = 10.0
    flood_max: int = 10
    flood_window_s: float = 300.0
    critical_levels: str = "critical HH LL"
    info_levels: str = "info"
    sms_url: str = ""
    sms_username: str = ""
    sms_password: str = ""
    sms_template: str = DEFAULT_SMS_TEMPLATE
    sms_segment_chars: int = 70
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_sender: str = "hazwatch@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    webhook_private_ok: bool = False


#: Allowed ranges of the numeric keys (``notify.<key>``), checked by :mod:`cloud.config`.
NUMBER_CHECKS: Final[dict[str, tuple[float, float]]] = {
    "notify.poll_s": (0.01, 3600),
    "notify.batch": (1, 10_000),
    "notify.concurrency": (1, 1000),
    "notify.lease_s": (1, 86_400),
    "notify.timeout_s": (0.1, 600),
    "notify.backoff_base_s": (0.01, 86_400),
    "notify.backoff_max_s": (0.01, 86_400 * 7),
    "notify.expiry_s": (1, 86_400 * 30),
    "notify.sweep_overlap": (0, 100_000),
    "notify.escalate_info_s": (0, 86_400 * 30),
    "notify.escalate_warning_s": (0, 86_400 * 30),
    "notify.escalate_critical_s": (0, 86_400 * 30),
    "notify.escalate_period_s": (0.1, 3600),
    "notify.flood_max": (0, 100_000),
    "notify.flood_window_s": (1, 86_400),
    "notify.sms_segment_chars": (1, 1000),
    "notify.smtp_port": (1, 65535),
}
