"""Security headers on every HTTP response: the map page, its files, ``/docs``, the API, errors.

The policy allows only what the pages load from the app itself: scripts and styles from its own
files (no inline script anywhere), the API and its live stream (WebSocket) on the same host,
images from the app, ``data:`` URLs (Leaflet's and Swagger UI's icons) and the map tile servers,
and no framing at all (``frame-ancestors 'none'``, ``X-Frame-Options`` for older browsers).

Tiles: the page's presets use OpenStreetMap and AMap; an operator who serves tiles from its own
server (an intranet without Internet access) adds that server's origin to ``tile_sources``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DEFAULT_TILE_SOURCES",
    "SecureFastAPI",
    "SecurityHeaders",
    "checked_tile_sources",
    "content_security_policy",
]

#: Origins of the tile servers of the map page's presets (``cloud/web/app.js``).
DEFAULT_TILE_SOURCES: Final = ("https://tile.openstreetmap.org", "https://*.is.autonavi.com")
#: A Host header fit to be repeated in the policy: a DNS name or IP literal and a port.
_HOST: Final = re.compile(
    r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)
#: A tile server's origin: http(s), a host name (``*.`` for any subdomain) or IP, a port.
_SOURCE: Final = re.compile(r"https?://(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::\d{1,5})?")
_FIXED_HEADERS: Final = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


def content_security_policy(*, host: str | None, tile_sources: Sequence[str]) -> str:
    """The ``Content-Security-Policy`` value for a request to ``host`` (its Host header).

    ``'self'`` covers the same-origin WebSocket in current browsers; ``ws://`` and ``wss://``
    of the host are named too for those (older Safari) where it does not.
    """
    sockets = f" ws://{host} wss://{host}" if host and _HOST.fullmatch(host) else ""
    tiles = "".join(f" {source}" for source in tile_sources)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data:{tiles}; connect-src 'self'{sockets}; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """ASGI middleware adding the security headers to every HTTP response that lacks them.

    Args:
        app: the application to wrap.
        tile_sources: origins the map page may load tiles from (``https://tiles.example.cn``;
            ``*.`` matches any subdomain).

    Raises:
        ValueError: a tile source that is not a ``scheme://host[:port]`` origin.
    """

    def __init__(self, app: ASGIApp, *, tile_sources: Sequence[str] = DEFAULT_TILE_SOURCES) -> None:
        self.app = app
        self.tile_sources = checked_tile_sources(tile_sources)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                policy = content_security_policy(host=_host(scope), tile_sources=self.tile_sources)
                for name, value in (("Content-Security-Policy", policy), *_FIXED_HEADERS):
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def checked_tile_sources(sources: Sequence[str]) -> tuple[str, ...]:
    """``sources`` as a tuple, each checked to be an origin (``https://host[:port]``).

    Raises:
        ValueError: a source that is not one (it could otherwise widen or break the policy).
    """
    for source in sources:
        if not _SOURCE.fullmatch(source):
            raise ValueError(
                f"tile source {source!r}: use an origin such as https://tiles.example.cn"
            )
    return tuple(sources)


def _host(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"host":
            return str(value.decode("latin-1"))
    return None


class SecureFastAPI(FastAPI):
    """A FastAPI app whose responses all carry the security headers.

    :class:`SecurityHeaders` wraps the whole middleware stack, Starlette's
    ``ServerErrorMiddleware`` included: a 500 is answered there, outside the middleware that
    ``add_middleware`` adds.

    Args:
        tile_sources: see :class:`SecurityHeaders`.
        **kwargs: passed to :class:`fastapi.FastAPI`.
    """

    def __init__(
        self, *, tile_sources: Sequence[str] = DEFAULT_TILE_SOURCES, **kwargs: Any
    ) -> None:
        self.tile_sources = checked_tile_sources(tile_sources)
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), tile_sources=self.tile_sources)
