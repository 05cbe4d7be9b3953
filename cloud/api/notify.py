"""Notification recipients (who is told of alerts, how and when) and the notifications of an
alert with every delivery attempt.

Who may configure whom: an admin anyone; a regulator the enterprise recipients of enterprises
in its region and the regulator recipients of regions within its own; a dispatcher its own
enterprise's recipients. A recipient outside the caller's scope is a 404, like a missing one.
Webhook secrets are write-only: answers say ``signed`` instead.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, model_validator

from cloud.api import schemas as out
from cloud.api.deps import (
    Body,
    CallerScope,
    IdPath,
    JsonResponse,
    Line,
    ServicesDep,
    bad_request,
    not_found,
    owned_by,
)
from cloud.auth import Scope
from cloud.models import region_contains
from cloud.notify.records import Endpoint, QuietHours, Recipient

__all__ = ["router"]

router = APIRouter(default_response_class=JsonResponse, tags=["notifications"])

Severity = Literal["info", "warning", "critical"]
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _default_severities() -> list[Severity]:
    return ["warning", "critical"]


class EndpointIn(Body):
    """How to reach a recipient: a webhook URL (with its signing secret), a mobile number or
    an e-mail address."""

    channel: Literal["webhook", "sms", "email"]
    address: Annotated[Line, Field(min_length=1, max_length=1024)]
    secret: Annotated[Line, Field(min_length=16, max_length=256)] | None = Field(
        default=None, description="webhooks: the HMAC-SHA256 key (write-only)"
    )

    @model_validator(mode="after")
    def _address(self) -> EndpointIn:
        if self.channel == "webhook":
            if not self.address.startswith(("http://", "https://")) or self.secret is None:
                raise ValueError("a webhook needs an http(s) URL and a secret")
        elif self.channel == "sms" and not self.address.lstrip("+").isdigit():
            raise ValueError("an SMS address is a phone number (digits, optional +)")
        elif self.channel == "email" and "@" not in self.address:
            raise ValueError("an e-mail address needs an @")
        return self


class QuietIn(Body):
    """Quiet hours in Beijing time (``HH:MM``; ``22:00`` to ``07:00`` spans midnight)."""

    start: Annotated[str, Field(pattern=_HHMM)]
    end: Annotated[str, Field(pattern=_HHMM)]


class RecipientIn(Body):
    """A recipient: ``enterprise`` (dispatchers) or ``safety_manager`` of one enterprise
    (told on escalation), or ``regulator`` of a GB/T 2260 region."""

    tier: Literal["enterprise", "safety_manager", "regulator"]
    enterprise_id: Annotated[Line, Field(min_length=1, max_length=128)] | None = None
    region: Annotated[str, Field(pattern=r"^[1-9][0-9]{5}$")] | None = None
    name: Annotated[Line, Field(max_length=256)] = ""
    channels: Annotated[list[EndpointIn], Field(min_length=1, max_length=10)]
    severities: Annotated[list[Severity], Field(min_length=1, max_length=3)] = Field(
        default_factory=_default_severities
    )
    quiet: dict[Severity, QuietIn] = Field(
        default_factory=dict, description="quiet hours per severity (critical ignores them)"
    )
    notify_close: bool = False


class EndpointOut(BaseModel):
    """An endpoint as answered (never its secret)."""

    channel: str
    address: str
    signed: bool


class RecipientOut(BaseModel):
    """A recipient as answered."""

    id: str
    tier: str
    enterprise_id: str | None
    region: str | None
    name: str
    channels: list[EndpointOut]
    severities: list[str]
    quiet: dict[str, dict[str, str]]
    notify_close: bool
    updated_ms: int


class AttemptOut(BaseModel):
    """One delivery attempt: ``sent``, ``retry`` (5xx, timeout), ``failed`` (4xx), ``expired``."""

    ts_ms: int
    worker: str
    outcome: str
    code: int | None
    error: str
    duration_ms: int


class NotificationOut(BaseModel):
    """A notification of an alert: ``pending`` (due at ``next_ms``), ``sent``, ``failed`` (a
    4xx), ``expired`` (retried until its expiry), ``skipped`` (quiet hours), ``suppressed`` (a
    maintenance window), ``held`` / ``digested`` (flood control), with its attempts."""

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
    done_ms: int | None
    last_error: str
    history: list[AttemptOut]


def _view(recipient: Recipient) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(recipient)
    view["channels"] = [
        {"channel": e.channel, "address": e.address, "signed": e.secret is not None}
        for e in recipient.channels
    ]
    view.setdefault("enterprise_id", None)
    view.setdefault("region", None)
    return view


def visible(scope: Scope, recipient: Recipient) -> bool:
    """Whether the caller may see and change ``recipient``."""
    if scope.is_admin:
        return True
    if recipient.tier == "regulator":
        return (
            scope.role == "regulator"
            and scope.region is not None
            and recipient.region is not None
            and region_contains(scope.region, recipient.region)
        )
    return recipient.enterprise_id is not None and scope.allows(recipient.enterprise_id)


async def _target(
    body: RecipientIn, services: ServicesDep, scope: Scope
) -> tuple[str | None, str | None]:
    """The recipient's enterprise or region after the caller's rights are checked."""
    if body.tier == "regulator":
        if body.region is None or body.enterprise_id is not None:
            bad_request("a regulator recipient names a region (and no enterprise)")
        if scope.role == "dispatcher":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "dispatchers configure their own")
        if not scope.is_admin and not region_contains(scope.region or "", body.region):
            not_found("region", body.region)
        return None, body.region
    if body.region is not None:
        bad_request(f"a {body.tier} recipient names an enterprise (and no region)")
    enterprise_id = owned_by(scope, body.enterprise_id, "a recipient")
    if await services.store.get_enterprise(enterprise_id) is None:
        not_found("enterprise", enterprise_id)
    return enterprise_id, None


async def _recipient(services: ServicesDep, scope: Scope, recipient_id: str) -> Recipient:
    found = await services.store.get_recipient(recipient_id)
    if found is None or not visible(scope, found):
        not_found("recipient", recipient_id)
    return found


@router.get("/notify/recipients", response_model=list[RecipientOut], responses=out.errors())
async def list_recipients(services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """Recipients the caller may see and change, by id."""
    found = await services.store.list_recipients(scope.enterprise_ids)
    return JsonResponse([_view(r) for r in found if visible(scope, r)])


@router.get(
    "/notify/recipients/{recipient_id}", response_model=RecipientOut, responses=out.errors(404)
)
async def get_recipient(
    recipient_id: IdPath, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """One recipient in scope."""
    return JsonResponse(_view(await _recipient(services, scope, recipient_id)))


@router.put(
    "/notify/recipients/{recipient_id}",
    response_model=RecipientOut,
    responses=out.errors(403, 404),
)
async def put_recipient(
    recipient_id: IdPath, body: RecipientIn, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """Create or replace a recipient within the caller's scope."""
    if await services.store.get_recipient(recipient_id) is not None:
        await _recipient(services, scope, recipient_id)  # another tenant's: 404
    enterprise_id, region = await _target(body, services, scope)
    recipient = Recipient(
        id=recipient_id, tier=body.tier, enterprise_id=enterprise_id, region=region,
        name=body.name,
        channels=tuple(
            Endpoint(channel=e.channel, address=e.address, secret=e.secret) for e in body.channels
        ),
        severities=tuple(dict.fromkeys(body.severities)),
        quiet={k: QuietHours(start=v.start, end=v.end) for k, v in body.quiet.items()},
        notify_close=body.notify_close, updated_ms=services.clock_ms(),
    )  # fmt: skip
    await services.store.put_recipient(recipient)
    return JsonResponse(_view(recipient))


@router.delete("/notify/recipients/{recipient_id}", status_code=204, responses=out.errors(404))
async def delete_recipient(recipient_id: IdPath, services: ServicesDep, scope: CallerScope) -> None:
    """Remove a recipient in scope (notifications already made stay)."""
    await _recipient(services, scope, recipient_id)
    await services.store.delete_recipient(recipient_id)


@router.get(
    "/alerts/{alert_id}/notifications",
    response_model=list[NotificationOut],
    responses=out.errors(404),
)
async def alert_notifications(
    alert_id: IdPath, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """The notifications of an alert in scope, with every delivery attempt (oldest first)."""
    if await services.store.get_alert(alert_id, enterprise_ids=scope.enterprise_ids) is None:
        not_found("alert", alert_id)
    return JsonResponse(await services.store.list_notifications(alert_id))
