"""Delivery channels behind one interface: webhook, SMS gateway, e-mail.

A channel sends one message and says what happened as an :class:`Outcome`: ``sent``,
``retry`` (a 5xx, 408 or 429, a timeout, a refused connection) or ``failed`` (any other 4xx:
sending it again would be refused again). Channels never raise for a delivery problem.
The live stream is not a channel here: every alert change is published to it already
(:meth:`cloud.alerts.AlertService._publish`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import smtplib
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import httpx
import msgspec

from cloud.notify.config import NotifySettings

__all__ = [
    "SIGNATURE_HEADER",
    "Channel",
    "EmailChannel",
    "Message",
    "Outcome",
    "SmsChannel",
    "WebhookChannel",
    "channels_from_settings",
    "segments",
    "sign",
]

#: The webhook's signature: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.
SIGNATURE_HEADER = "X-Hazwatch-Signature"
#: The notification's stable id: the same on every retry (receivers de-duplicate on it).
ID_HEADER = "X-Hazwatch-Notification"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification to deliver: where, with what (``payload["text"]`` is the short text)."""

    id: str
    address: str
    payload: dict[str, Any]
    secret: str | None = None

    @property
    def text(self) -> str:
        """The short human text (SMS, e-mail)."""
        return str(self.payload.get("text", ""))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt came to."""

    status: Literal["sent", "retry", "failed"]
    code: int | None = None
    error: str = ""


class Channel(Protocol):
    """Sends messages of one kind."""

    async def send(self, message: Message) -> Outcome:
        """Deliver ``message``; never raise for a delivery problem."""
        ...

    async def aclose(self) -> None:
        """Release what the channel holds."""
        ...


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _http_outcome(response: httpx.Response) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Outcome("sent", code)
    detail = response.text[:200]
    if code >= 500 or code in (408, 429):
        return Outcome("retry", code, f"HTTP {code} {detail}".strip())
    return Outcome("failed", code, f"HTTP {code} {detail}".strip())


async def _post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Outcome:
    try:
        response = await client.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        return Outcome("retry", None, f"timeout: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return Outcome("retry", None, f"{type(exc).__name__}: {exc}")
    return _http_outcome(response)


class WebhookChannel:
    """POSTs the payload as JSON, signed with the recipient's secret.

    A dispatcher sets its own webhook URLs, so a URL whose host is (or resolves to) a loopback,
    private, link-local or otherwise internal address is refused (``failed``, never retried)
    unless ``allow_private``: no tenant can make the cloud call services inside its network.

    Args:
        timeout_s: timeout of the whole exchange.
        clock_s: the clock of the signature's timestamp (unix seconds).
        allow_private: send to internal addresses too (a deployment whose enterprise systems
            sit on the intranet; ``[notify] webhook_private_ok``).
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        clock_s: Callable[[], float] = time.time,
        allow_private: bool = False,
    ) -> None:
        self.client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self.clock_s = clock_s
        self.allow_private = allow_private

    async def send(self, message: Message) -> Outcome:
        if not self.allow_private:
            refused = await _internal_address(message.address)
            if refused is not None:
                return Outcome("failed", None, refused)
        body = msgspec.json.encode({"id": message.id, **message.payload})
        headers = {"Content-Type": "application/json", ID_HEADER: message.id}
        if message.secret:
            headers[SIGNATURE_HEADER] = sign(message.secret, int(self.clock_s()), body)
        return await _post(self.client, message.address, content=body, headers=headers)

    async def aclose(self) -> None:
        await self.client.aclose()


async def _internal_address(url: str) -> str | None:
    """Why a webhook URL may not be called (an internal address), or ``None``."""
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as exc:
        return f"refused: not a URL ({exc})"
    if not host:
        return "refused: the URL names no host"
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return None  # not resolvable now: the POST fails and is retried like any outage
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if not address.is_global or address.is_multicast:
            return f"refused: {host} is an internal address ({address})"
    return None


def segments(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters (a Chinese character is one)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class SmsChannel:
    """Sends text through an HTTP SMS gateway, one request per segment.

    The body is ``template`` with ``$phone``, ``$text``, ``$username``, ``$password``, ``$part``
    and ``$parts`` substituted, each JSON-escaped. A retry sends every segment again (the
    gateway may deliver the first segments twice: at least once, as everywhere).
    """

    def __init__(
        self,
        *,
        url: str,
        username: str,
        password: str,
        template: str,
        segment_chars: int,
        timeout_s: float,
    ) -> None:
        self.url = url
        self.template = string.Template(template)
        self.credentials = {"username": username, "password": password}
        self.segment_chars = segment_chars
        self.client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    def body(self, phone: str, text: str, part: int, parts: int) -> bytes:
        """The gateway request of one segment."""
        values = {**self.credentials, "phone": phone, "text": text}
        escaped = {k: json.dumps(v, ensure_ascii=False)[1:-1] for k, v in values.items()}
        filled = self.template.safe_substitute(escaped, part=part, parts=parts)
        return filled.encode("utf-8")

    async def send(self, message: Message) -> Outcome:
        pieces = segments(message.text, self.segment_chars)
        outcome = Outcome("sent")
        for number, piece in enumerate(pieces, start=1):
            body = self.body(message.address, piece, number, len(pieces))
            headers = {"Content-Type": "application/json", ID_HEADER: f"{message.id}#{number}"}
            outcome = await _post(self.client, self.url, content=body, headers=headers)
            if outcome.status != "sent":
                return outcome
        return outcome

    async def aclose(self) -> None:
        await self.client.aclose()


class EmailChannel:
    """Sends the text (and the payload as JSON) over SMTP, in a thread (smtplib blocks).

    A 4xx SMTP reply is retried, a 5xx recorded as failed (SMTP's own meaning of the classes).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        timeout_s: float,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls
        self.timeout_s = timeout_s

    def _compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        mail["Subject"] = message.text[:80]
        mail["Message-ID"] = f"<{message.id}@hazwatch>"
        details = json.dumps(message.payload, ensure_ascii=False, indent=2)
        mail.set_content(f"{message.text}\n\n{details}\n")
        return mail

    def _send_blocking(self, message: Message) -> Outcome:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(self._compose(message))
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return _smtp_outcome(code, reply)
        except smtplib.SMTPResponseException as exc:
            return _smtp_outcome(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome("retry", None, f"{type(exc).__name__}: {exc}")
        return Outcome("sent", 250)

    async def send(self, message: Message) -> Outcome:
        return await asyncio.to_thread(self._send_blocking, message)

    async def aclose(self) -> None:
        return None


def _smtp_outcome(code: int, reply: bytes | str) -> Outcome:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    status: Literal["retry", "failed"] = "retry" if 400 <= code < 500 else "failed"
    return Outcome(status, code, f"SMTP {code} {text}".strip())


def channels_from_settings(settings: NotifySettings) -> dict[str, Channel]:
    """The channels the settings configure (webhook always; SMS and e-mail when set)."""
    found: dict[str, Channel] = {
        "webhook": WebhookChannel(
            timeout_s=settings.timeout_s, allow_private=settings.webhook_private_ok
        )
    }
    if settings.sms_url:
        found["sms"] = SmsChannel(
            url=settings.sms_url, username=settings.sms_username,
            password=settings.sms_password, template=settings.sms_template,
            segment_chars=settings.sms_segment_chars, timeout_s=settings.timeout_s,
        )  # fmt: skip
    if settings.smtp_host:
        found["email"] = EmailChannel(
            host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_sender,
            username=settings.smtp_username, password=settings.smtp_password,
            starttls=settings.smtp_starttls, timeout_s=settings.timeout_s,
        )  # fmt: skip
    return found
