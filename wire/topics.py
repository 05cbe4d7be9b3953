"""MQTT topic names of the contract: ``hz/v1/<gateway_id>/<channel>``."""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

from wire.errors import WireError

__all__ = [
    "CHANNELS",
    "PREFIX",
    "Channel",
    "alarm_topic",
    "check_gateway_id",
    "data_topic",
    "parse_topic",
    "status_topic",
    "subscription",
]

PREFIX: Final = "hz/v1"
Channel = Literal["data", "alarm", "status"]
CHANNELS: Final[tuple[str, ...]] = get_args(Channel)
_GATEWAY_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def check_gateway_id(gateway_id: str) -> str:
    """Return ``gateway_id`` if it is a valid id, else raise :class:`WireError`.

    Ids are 1-64 characters of letters, digits, ``_``, ``.`` and ``-``, starting with a letter
    or digit, so they can never contain MQTT wildcards or level separators.
    """
    if not _GATEWAY_RE.fullmatch(gateway_id):
        raise WireError("invalid_value", f"bad gateway id {gateway_id!r}", field="gw")
    return gateway_id


def _topic(gateway_id: str, channel: Channel) -> str:
    return f"{PREFIX}/{check_gateway_id(gateway_id)}/{channel}"


def data_topic(gateway_id: str) -> str:
    """Topic of batched readings, fixes, vessel data and health."""
    return _topic(gateway_id, "data")


def alarm_topic(gateway_id: str) -> str:
    """Topic of alarm raise/clear batches (sent ahead of any data backlog)."""
    return _topic(gateway_id, "alarm")


def status_topic(gateway_id: str) -> str:
    """Retained online/offline status topic (the MQTT last will says offline)."""
    return _topic(gateway_id, "status")


def subscription(
    channel: Channel | Literal["+", "#"] = "#", *, share_group: str | None = None
) -> str:
    """Topic filter for all gateways, optionally as an MQTT v5 shared subscription."""
    topic = f"{PREFIX}/+/{channel}" if channel != "#" else f"{PREFIX}/#"
    return f"$share/{share_group}/{topic}" if share_group else topic


def parse_topic(topic: str) -> tuple[str, Channel]:
    """Split a topic into ``(gateway_id, channel)``; raise :class:`WireError` if not ours."""
    parts = topic.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[3] not in CHANNELS:
        raise WireError("bad_topic", f"not a hazwatch v1 topic: {topic!r}", field="topic")
    channel: Channel = parts[3]  # type: ignore[assignment]
    return check_gateway_id(parts[2]), channel
