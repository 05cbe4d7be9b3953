"""The single exception of the wire package."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["REASONS", "WireError"]

#: Every reason a payload or topic can be rejected for; counters are keyed by these.
REASONS: tuple[str, ...] = (
    "malformed",  # not JSON at all
    "truncated",  # JSON cut short
    "not_finite",  # NaN or +-Infinity
    "unknown_version",  # envelope `v` this build does not speak
    "unknown_kind",  # item `kind` not in the contract
    "missing_field",
    "wrong_type",
    "out_of_range",
    "invalid_value",  # fails a rule of the contract (bad id, empty string, ...)
    "bad_string",  # control character, lone surrogate or invalid UTF-8 in a string (wire.text)
    "too_long",  # a string or list over its field's length limit
    "too_large",  # payload over the size limit
    "too_deep",  # JSON nested deeper than the decoder can follow
    "bad_topic",
    "gateway_mismatch",  # envelope gateway differs from the topic's
)


_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escaped(text: str) -> str:
    """``text`` with control characters and surrogates spelled as escapes (``\\x00``)."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda found: repr(found.group())[1:-1], text)


class WireError(ValueError):
    """A payload, item or topic that breaks the contract.

    Attributes:
        reason: one of :data:`REASONS`, stable, used as a counter key.
        detail: human-readable explanation.
        field: JSON path of the offending field (``$.items[3].lat``) when known.

    ``detail`` and ``field`` quote the payload at times; control characters and surrogates in
    them are escaped, so the error can be logged and archived as text (PostgreSQL refuses NUL).
    """

    def __init__(self, reason: str, detail: str, *, field: str | None = None) -> None:
        if reason not in REASONS:
            raise AssertionError(f"unregistered wire error reason {reason!r}")
        self.reason = reason
        self.detail = detail = _escaped(detail)
        self.field = field = None if field is None else _escaped(field)
        where = f" at {field}" if field else ""
        super().__init__(f"{reason}{where}: {detail}")
