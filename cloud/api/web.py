"""The map page: static files of ``cloud/web`` served at ``/map/`` (``/``, ``/map`` redirect);
the API documentation (Swagger UI) at ``/docs``.

The page needs no server-side rendering: it calls the API with the token the user enters.
Files are served only from inside the web folder; anything else is a 404. Swagger UI comes from
the installed ``fastapi-offline`` package, never from a CDN, so the docs work on an intranet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

__all__ = ["DOCS_DIR", "SWAGGER_UI_DIR", "WEB_DIR", "docs_router", "web_router"]

#: Where the page's files live (``index.html``, scripts, styles, vendored Leaflet).
WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"
#: The docs page and the script that starts Swagger UI (no inline script: see the CSP).
DOCS_DIR: Final = Path(__file__).resolve().parent.parent / "apidocs"
#: Swagger UI's ``swagger-ui-bundle.js`` and ``swagger-ui.css``, as the package installed them.
SWAGGER_UI_DIR: Final = Path(fastapi_offline.__file__).resolve().parent / "static"
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def _file(relative: str, root: Path) -> Path:
    """The file ``relative`` under ``root``, or a 404 (also for ``..`` and unknown types)."""
    try:
        target = (root / relative).resolve()
        found = target.is_relative_to(root) and target.is_file() and target.suffix in _TYPES
    except (OSError, ValueError):  # a name the file system refuses: NUL byte, too long...
        found = False
    if not found:
        raise HTTPException(404, detail="not found")
    return target


def web_router(root: Path = WEB_DIR) -> APIRouter:
    """Routes of the map page: ``/`` and ``/map`` -> ``/map/`` (the page), ``/map/<file>``.

    The page refers to its files and to the API by relative URLs, so it also works behind a
    reverse proxy that adds a path prefix.
    """
    router = APIRouter(include_in_schema=False)
    root = root.resolve()

    @router.api_route("/", methods=["GET", "HEAD"])
    async def home() -> RedirectResponse:
        return RedirectResponse("map/")

    @router.api_route("/map", methods=["GET", "HEAD"])
    async def page() -> RedirectResponse:
        return RedirectResponse("map/")

    @router.api_route("/map/{path:path}", methods=["GET", "HEAD"])
    async def asset(path: str) -> FileResponse:
        return _serve(path or "index.html")

    def _serve(relative: str) -> FileResponse:
        target = _file(relative, root)
        # The page changes with the code: let browsers revalidate rather than keep stale copies.
        headers = {"Cache-Control": "no-cache"}
        return FileResponse(target, media_type=_TYPES[target.suffix], headers=headers)

    return router


def docs_router(root: Path = DOCS_DIR, swagger_ui: Path = SWAGGER_UI_DIR) -> APIRouter:
    """Routes of the API documentation: ``/docs`` (Swagger UI on ``/openapi.json``) and
    ``/docs/<file>``, the page's own script or a Swagger UI file."""
    router = APIRouter(include_in_schema=False)
    root, swagger_ui = root.resolve(), swagger_ui.resolve()
    headers = {"Cache-Control": "no-cache"}

    @router.api_route("/docs", methods=["GET", "HEAD"])
    async def page() -> FileResponse:
        return FileResponse(_file("index.html", root), media_type=_TYPES[".html"], headers=headers)

    @router.api_route("/docs/{name}", methods=["GET", "HEAD"])
    async def asset(name: str) -> FileResponse:
        if name == "index.html":  # the page is at /docs only: its relative URLs fit no other
            raise HTTPException(404, detail="not found")
        try:
            target = _file(name, root)
        except HTTPException:
            target = _file(name, swagger_ui)
        return FileResponse(target, media_type=_TYPES[target.suffix], headers=headers)

    return router
