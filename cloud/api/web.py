"""The map page: static files of ``cloud/web`` served at ``/map/`` (``/``, ``/map`` redirect).

The page needs no server-side rendering: it calls the API with the token the user enters.
Files are served only from inside the web folder; anything else is a 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

__all__ = ["WEB_DIR", "web_router"]

#: Where the page's files live (``index.html``, scripts, styles, vendored Leaflet).
WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"
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
