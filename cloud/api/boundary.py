"""The rules every API request follows, checked before a route sees it, and a safe 422 echo.

FastAPI reads a body with Python's ``json`` module, which takes what nothing downstream can keep:
lone surrogates (``"\\ud800"`` has no UTF-8 form, so the answer that echoes or lists it fails),
NUL (PostgreSQL text refuses it), nesting up to a ``RecursionError`` and integers of thousands
of digits; and it answers an undocumented 400 to a body that is not UTF-8. :class:`RequestRules`
holds every API request to these rules first and answers a standard 422 (a list of issues with
``loc``, ``msg`` and ``type``) naming what is wrong:

* **Bodies** (``POST``, ``PUT``, ``PATCH``): ``Content-Type: application/json``, UTF-8 without a
  BOM, valid JSON, at most :data:`MAX_BODY_BYTES`, nested at most :data:`MAX_DEPTH` deep,
  integers of at most 64 digits; strings and keys without lone surrogates and without control
  characters other than TAB and LF (which only free-text fields take: :class:`~cloud.api.deps.Body`).
* **Query parameters and the path**: UTF-8 once percent-decoded, no control characters at all
  (no free text travels in a URL), each value at most :data:`MAX_PARAM_CHARS` characters.

The rules hold for every route, those added later too, so no route can store text it could not
read back. Each route's model then checks its own fields (types, ranges, lengths).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.api.deps import INT64, LINE_BAD, TEXT_BAD, JsonResponse, escaped

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_PARAM_CHARS",
    "RequestRules",
    "allowed_methods",
    "echo_errors",
]

#: The largest body the API reads (a zone of some 100,000 vertices).
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
#: The deepest nesting of a body (a GeoJSON MultiPolygon needs 6).
MAX_DEPTH: Final = 32
#: The longest query parameter value or path, in characters.
MAX_PARAM_CHARS: Final = 1024
_MAX_QUERY_BYTES: Final = 16 * 1024
_MAX_INT_DIGITS: Final = 64
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
#: What the 422 echoes of a refused input: enough to recognise it, never the whole body.
_ECHO_CHARS: Final = 200
_ECHO_ITEMS: Final = 20
_ECHO_DEPTH: Final = 4

Issue = dict[str, Any]


def _issue(kind: str, loc: Sequence[str | int], msg: str) -> Issue:
    return {"type": kind, "loc": [escaped(p) if isinstance(p, str) else p for p in loc], "msg": msg}


class _NumberTooLongError(ValueError):
    """An integer of more digits than any field takes, found while parsing."""


def _bounded_int(text: str) -> int:
    # Checked on the digits, before int() spends time on thousands of them (Python's reader
    # raises past 4300, which FastAPI answered with a 400). Ranges are the fields' concern.
    if len(text) > _MAX_INT_DIGITS:
        raise _NumberTooLongError(f"{text[:12]}... ({len(text)} digits)")
    return int(text)


def body_issue(body: bytes, content_type: str | None) -> Issue | None:
    """What is wrong with a request body, or ``None`` (an empty body is the route's concern)."""
    if not body:
        return None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return _issue(
            "content_type", ["body"], "a body must be JSON (Content-Type: application/json)"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _issue("json_invalid", ["body", exc.start], "the body is not UTF-8")
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except _NumberTooLongError as exc:
        msg = f"integers have at most {_MAX_INT_DIGITS} digits: {exc}"
        return _issue("int_too_long", ["body"], msg)
    except json.JSONDecodeError as exc:
        return _issue("json_invalid", ["body", exc.pos], f"JSON decode error: {exc.msg}")
    except RecursionError:
        return _issue("too_deep", ["body"], f"JSON nested deeper than {MAX_DEPTH} levels")
    return json_issue(value, ["body"], 0)


def json_issue(value: Any, loc: list[str | int], depth: int) -> Issue | None:
    """The first string, key or nesting of parsed JSON that no request may hold, or ``None``."""
    if isinstance(value, str):
        return _text_issue(value, loc, TEXT_BAD)
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        for key in value:
            found = _text_issue(key, loc, TEXT_BAD, "a key")
            if found is not None:
                return found
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    if depth >= MAX_DEPTH:
        return _issue("too_deep", loc, f"JSON nested deeper than {MAX_DEPTH} levels")
    for where, inner in items:
        found = json_issue(inner, [*loc, where], depth + 1)
        if found is not None:
            return found
    return None


def _text_issue(text: str, loc: list[str | int], bad: Any, what: str = "text") -> Issue | None:
    found = bad.search(text)
    if found is None:
        return None
    char = ord(found.group())
    if 0xD800 <= char <= 0xDFFF:
        return _issue("string_unicode", loc, f"{what} holds a lone surrogate (U+{char:04X})")
    return _issue(
        "string_control", loc, f"{what} holds a control character (U+{char:04X}) at {found.start()}"
    )


def _decoded(raw: bytes) -> str | None:
    """Percent-decoded UTF-8, or ``None`` if it is not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def query_issue(raw: bytes) -> Issue | None:
    """What is wrong with a query string, or ``None``."""
    if len(raw) > _MAX_QUERY_BYTES:
        return _issue("too_long", ["query"], f"the query is over {_MAX_QUERY_BYTES} bytes")
    for pair in raw.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        name = _decoded(raw_name.replace(b"+", b" "))  # a space, as in forms
        value = _decoded(raw_value.replace(b"+", b" "))
        loc: list[str | int] = ["query", name if name is not None else "?"]
        if name is None or value is None:
            return _issue("string_unicode", loc, "not UTF-8 once percent-decoded")
        found = _text_issue(name, loc, LINE_BAD, "the name") or _text_issue(value, loc, LINE_BAD)
        if found is not None:
            return found
        if len(value) > MAX_PARAM_CHARS:
            return _issue("too_long", loc, f"at most {MAX_PARAM_CHARS} characters")
    return None


def path_issue(scope: Scope) -> Issue | None:
    """What is wrong with the request's path, or ``None``."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path = _decoded(raw.split(b"?", 1)[0])
    if path is None:
        return _issue("string_unicode", ["path"], "not UTF-8 once percent-decoded")
    if len(path) > MAX_PARAM_CHARS + 64:
        return _issue("too_long", ["path"], f"the path is over {MAX_PARAM_CHARS + 64} characters")
    return _text_issue(path, ["path"], LINE_BAD)


class RequestRules:
    """ASGI middleware holding requests under ``prefix`` to the rules of this module."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        found = path_issue(scope) or query_issue(scope.get("query_string", b""))
        if found is None and kind == "http" and scope["method"] in _BODY_METHODS:
            body = await _read_body(scope, receive)
            if body is None:
                return  # the client left
            found = body if isinstance(body, dict) else body_issue(body, _header(scope))
            if isinstance(body, bytes):
                receive = _replay(body, receive)
        if found is None:
            await self.app(scope, receive, send)
        elif kind == "websocket":  # before accept: the server answers 403
            await send({"type": "websocket.close", "code": 4422, "reason": found["msg"][:120]})
        else:
            await JsonResponse({"detail": [found]}, status_code=422)(scope, receive, send)


def _header(scope: Scope, name: bytes = b"content-type") -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _read_body(scope: Scope, receive: Receive) -> bytes | Issue | None:
    """The whole body, an issue if it is over the limit, or ``None`` if the client left."""
    too_big = _issue("too_large", ["body"], f"the body is over {MAX_BODY_BYTES} bytes")
    length = _header(scope, b"content-length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_BODY_BYTES:
        return too_big
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return too_big
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the client's messages."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# -- answers --------------------------------------------------------------------------------


def echo_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors made fit to send: every string escaped (lone surrogates, control
    characters), bytes decoded, echoed input cut short, exceptions as text, no doc ``url``."""
    return [{key: _echo(value, 0) for key, value in e.items() if key != "url"} for e in errors]


def _echo(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return (
            value if INT64[0] <= value <= INT64[1] else f"an integer of {value.bit_length()} bits"
        )
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray):
        return _echo(bytes(value[: _ECHO_CHARS * 4]).decode("utf-8", "backslashreplace"), depth)
    if isinstance(value, str):
        cut = value[:_ECHO_CHARS] + ("..." if len(value) > _ECHO_CHARS else "")
        return escaped(cut)
    if isinstance(value, Mapping | list | tuple):
        if depth >= _ECHO_DEPTH:
            return "..."
        if isinstance(value, Mapping):
            items = list(value.items())[:_ECHO_ITEMS]
            return {str(_echo(k, depth + 1)): _echo(v, depth + 1) for k, v in items}
        return [_echo(v, depth + 1) for v in list(value)[:_ECHO_ITEMS]]
    return _echo(str(value), depth)


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route takes on the request's path (for a 405's ``Allow``).

    Asked of the routes themselves, one method at a time: included routers keep their routes
    inside, and Starlette's own ``Allow`` names those of the first route of the path only.
    """
    routes = list(routes)
    return [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    ]
