"""What every router shares: the services, the caller's scope, errors, query parameters."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, NoReturn

import msgspec
from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.auth import Scope, authenticate
from cloud.config import CloudSettings
from cloud.coords import Crs
from cloud.ingest import Ingest
from cloud.live import LiveState
from cloud.sites import SiteWatch
from cloud.watch import RuleService

__all__ = [
    "FREE_JSON_MAX_BYTES",
    "FREE_JSON_MAX_DEPTH",
    "FREE_TEXT",
    "INT64",
    "LINE_BAD",
    "MAX_EPOCH_MS",
    "MAX_TEXT_CHARS",
    "TEXT_BAD",
    "AdminScope",
    "Body",
    "CallerScope",
    "CrsParam",
    "IdPath",
    "JsonResponse",
    "Line",
    "Services",
    "ServicesDep",
    "Text",
    "bad_request",
    "escaped",
    "free_json_issue",
    "get_services",
    "not_found",
    "owned_by",
    "text_issue",
    "wall_clock_ms",
]


#: The latest time the API takes: the archive stores epoch ms as signed 64-bit integers.
MAX_EPOCH_MS = 2**63 - 1
#: Integers free-form JSON may hold: 64 bits, like the archives' own integers.
INT64: Final = (-(2**63), 2**63 - 1)
#: The longest string of a body unless its field says otherwise (the wire's free-text limit).
MAX_TEXT_CHARS: Final = 1024
#: Free-form JSON (a geo object's own properties): nesting and size as JSON.
FREE_JSON_MAX_DEPTH: Final = 8
FREE_JSON_MAX_BYTES: Final = 65_536

#: What no text of a request may hold (the rule of :mod:`wire.text`): C0 and C1 control
#: characters, DEL, and lone surrogates (no UTF-8 form: nothing could encode them again).
LINE_BAD: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: Free text (comments, free-form properties) may also hold TAB and LF; CR stays refused (a bare
#: CR rewrites a terminal line).
TEXT_BAD: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class _FreeText:
    """Marks a field as free text (``Annotated[str, FREE_TEXT]``): TAB and LF allowed."""

    def __repr__(self) -> str:
        return "FREE_TEXT"


#: Field marker of free text (see :data:`Text`), read by :class:`Body`.
FREE_TEXT: Final = _FreeText()
#: One line of text: ids, names, units (no control characters; the schema says so).
Line = Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]
#: Free text: comments, notes (TAB and LF allowed).
Text = Annotated[str, FREE_TEXT, Field(pattern=r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
#: An id in a path (ids are 1 to 128 characters).
IdPath = Annotated[str, Path(min_length=1, max_length=128, description="1 to 128 characters")]


class Body(BaseModel):
    """A request body, read strictly: no field the model does not name, no ``false`` for 0 or
    ``"12"`` for 12 (numbers are JSON numbers, integers have no fraction), finite numbers, strings
    of at most 1024 characters unless a field says otherwise, and text of one line (no control
    characters) except in free-text fields, which may also hold TAB and LF."""

    model_config = ConfigDict(
        strict=True, allow_inf_nan=False, extra="forbid", str_max_length=MAX_TEXT_CHARS
    )

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                free = field is not None and any(m is FREE_TEXT for m in field.metadata)
                found = text_issue(value, str(name), free=free)
                if found is not None:
                    raise ValueError(found)
        return data


def text_issue(value: Any, path: str, *, free: bool = False, depth: int = 0) -> str | None:
    """What is wrong with the text in JSON ``value`` (keys are always one line), or ``None``."""
    if isinstance(value, str):
        return _bad_char(value, TEXT_BAD if free else LINE_BAD, path, "the string")
    if depth > 64:  # the boundary allows far less; this guards bodies built in Python
        return f"{path}: nested too deep"
    items: Any = ()
    if isinstance(value, dict):
        for key in value:
            found = _bad_char(key, LINE_BAD, path, "a key") if isinstance(key, str) else None
            if found is not None:
                return found
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    for where, inner in items:
        found = text_issue(inner, where, free=free, depth=depth + 1)
        if found is not None:
            return found
    return None


def _bad_char(text: str, bad: re.Pattern[str], path: str, what: str) -> str | None:
    found = bad.search(text)
    if found is None:
        return None
    char = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= char <= 0xDFFF else "a control character"
    return f"{path}: {what} holds {kind} (U+{char:04X}) at index {found.start()}"


def free_json_issue(value: Any, path: str) -> tuple[str, str] | None:
    """Where free-form JSON would not read back as given, and why; or ``None``.

    Refused: NaN and infinities (JSON has none), integers beyond 64 bits, nesting deeper than
    :data:`FREE_JSON_MAX_DEPTH`, more than :data:`FREE_JSON_MAX_BYTES` as JSON. Text is the
    boundary's and :class:`Body`'s.
    """
    found = _free_issue(value, path, 0)
    if found is None:
        try:
            size = len(msgspec.json.encode(value))
        except (TypeError, ValueError, OverflowError) as exc:
            return path, f"not storable as JSON: {exc}"
        if size > FREE_JSON_MAX_BYTES:
            return path, f"{size} bytes as JSON: at most {FREE_JSON_MAX_BYTES}"
    return found


def _free_issue(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path, "numbers must be finite (no NaN, Infinity)"
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64[0] <= value <= INT64[1]:
            return path, "integers must fit in 64 bits"
        return None
    items: Any = ()
    if isinstance(value, dict):
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    if depth >= FREE_JSON_MAX_DEPTH:
        return path, f"nested deeper than {FREE_JSON_MAX_DEPTH} levels"
    for where, inner in items:
        found = _free_issue(inner, where, depth + 1)
        if found is not None:
            return found
    return None


def wall_clock_ms() -> int:
    """The current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass
class Services:
    """The resources the lifespan owns, reachable from every request.

    Attributes:
        store: the archive.
        live: the live state.
        settings: the configuration the app was made with.
        alerts: the alert lifecycle (acknowledge, close); made from store and live if None.
        ingest: the MQTT ingest, when this app runs one (its counters).
        rules: the rule service (its world, the rule states it keeps).
        sites: the site watch (told at once when a point changes).
        clock_ms: the clock (a parameter so tests can fix it).
        live_keepalive_s: quiet time after which a live stream sends a keep-alive and checks
            its key again.
        counters: API-level counters by reason (rejected geometries, ...).
    """

    store: Store
    live: LiveState
    settings: CloudSettings
    alerts: AlertService | None = None
    ingest: Ingest | None = None
    rules: RuleService | None = None
    sites: SiteWatch | None = None
    clock_ms: Callable[[], int] = wall_clock_ms
    live_keepalive_s: float = 15.0
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.alerts is None:
            self.alerts = AlertService(self.store, self.live)

    def count(self, reason: str) -> None:
        """Add one to a counter."""
        self.counters[reason] = self.counters.get(reason, 0) + 1


def get_services(request: Request) -> Services:
    """The app's services (set by the lifespan)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer hzk_...`")


def _unauthorized() -> NoReturn:
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API key",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def scope_of_token(services: Services, token: str | None) -> Scope:
    """The scope of a bearer token, or a 401."""
    scope = await authenticate(services.store, token) if token else None
    if scope is None:
        _unauthorized()
    return scope


async def get_scope(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Scope:
    """The caller's scope from the ``Authorization: Bearer`` header."""
    return await scope_of_token(services, credentials.credentials if credentials else None)


async def require_admin(scope: Annotated[Scope, Depends(get_scope)]) -> Scope:
    """The caller's scope, or a 403 unless admin."""
    if not scope.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admin key required")
    return scope


CallerScope = Annotated[Scope, Depends(get_scope)]
AdminScope = Annotated[Scope, Depends(require_admin)]
CrsParam = Annotated[
    Crs, Query(description="coordinate system of coordinates in and out: wgs84, gcj02 or bd09")
]


def not_found(what: str, object_id: str) -> NoReturn:
    """Answer 404 (also for another tenant's object: its existence is not revealed)."""
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} {object_id!r} not found")


def bad_request(detail: Any, *, code: int = status.HTTP_422_UNPROCESSABLE_CONTENT) -> NoReturn:
    """Answer 422 (or ``code``) with a detail that says what is wrong."""
    raise HTTPException(code, detail=detail)


class JsonResponse(JSONResponse):
    """A JSON response encoded with msgspec (structs, dicts and lists of them).

    A ``JSONResponse`` subclass, so that FastAPI writes the routes' ``response_model`` into the
    OpenAPI document (handlers return it directly: the model documents, never serializes).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return msgspec.json.encode(content)
        except UnicodeEncodeError:
            # Text stored before the API refused lone surrogates: answer it escaped, rather
            # than fail every list that holds it (for every tenant, if the object is shared).
            return msgspec.json.encode(_escaped_json(msgspec.to_builtins(content)))


def escaped(text: str) -> str:
    """``text`` with control characters and lone surrogates spelled as escapes (``\\ud800``)."""
    if LINE_BAD.search(text) is None:
        return text
    return LINE_BAD.sub(lambda found: repr(found.group())[1:-1], text)


def _escaped_json(value: Any) -> Any:
    if isinstance(value, str):
        return escaped(value) if TEXT_BAD.search(value) else value
    if isinstance(value, dict):
        return {_escaped_json(k): _escaped_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped_json(v) for v in value]
    return value


def owned_by(scope: Scope, enterprise_id: str | None, what: str) -> str:
    """The enterprise a new object of the caller belongs to, or a 404/403.

    A dispatcher's objects always belong to its enterprise; others must name one in scope.
    """
    target = enterprise_id or scope.enterprise_id
    if target is None:
        bad_request(f"{what} needs an enterprise_id")
    if not scope.allows(target):
        not_found("enterprise", target)
    return target
