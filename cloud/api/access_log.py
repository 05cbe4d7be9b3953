"""Server logs without query strings: nothing secret a client put in a URL reaches a log.

The map page opens its live stream with a single-use ticket, never its key; still, a client may
put a key in a query (an old page, a hand-written script), and a log kept for months must not
hold it. :func:`install` filters uvicorn's loggers (its access log, and the one that logs each
WebSocket it accepts or refuses) so that they log a request's path and ``?…`` for its query.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["QueryStripper", "install"]

_LOGGERS: Final = ("uvicorn.access", "uvicorn.error")


def _stripped(arg: object) -> object:
    if isinstance(arg, str) and arg.startswith("/") and "?" in arg:
        return arg.partition("?")[0] + "?…"
    return arg


class QueryStripper(logging.Filter):
    """Cuts the query off every request target among a record's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_stripped(arg) for arg in record.args)
        return True


def install() -> None:
    """Add the filter to uvicorn's loggers (once)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryStripper) for f in logger.filters):
            logger.addFilter(QueryStripper())
