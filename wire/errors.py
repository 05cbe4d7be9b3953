"""The single exception of the wire package."""

from __future__ import annotations

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
    "too_large",  # payload over the size limit
    "bad_topic",
    "gateway_mismatch",  # envelope gateway differs from the topic's
)


class WireError(ValueError):
    """A payload, item or topic that breaks the contract.

    Attributes:
        reason: one of :data:`REASONS`, stable, used as a counter key.
        detail: human-readable explanation.
        field: JSON path of the offending field (``$.items[3].lat``) when known.
    """

    def __init__(self, reason: str, detail: str, *, field: str | None = None) -> None:
        if reason not in REASONS:
            raise AssertionError(f"unregistered wire error reason {reason!r}")
        self.reason = reason
        self.detail = detail
        self.field = field
        where = f" at {field}" if field else ""
        super().__init__(f"{reason}{where}: {detail}")
