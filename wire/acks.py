"""Acknowledgements from the cloud to a gateway: the seqs the cloud has made durable.

The broker's PUBACK only says the broker has a message, not that the cloud archived it: a broker
restart that loses the cloud's shared subscription, a second subscriber that makes the broker
accept messages the cloud's group never gets, or a worker killed between receipt and archive
would all lose data the edge had already deleted. So the edge deletes a row only when the cloud
says so, on the gateway's own retained topic ``hz/v1/<gateway_id>/ack`` (the broker ACL lets a
gateway read only its own)::

    {"v": 1, "gw": "jy-gw-01", "ts": 1764806400000, "seqs": [[100, 149], [151, 200]]}

``seqs`` are inclusive ranges of the gateway's seqs, sorted and disjoint, each one archived (or
spilled to the cloud's fsynced spill file), or kept for inspection as rejected, or known from
before (a duplicate of something archived). A range covers exactly the acknowledged seqs: an
alarm sent on the other lane between two data seqs is not covered by a data batch's ack. A
message carries the seqs of one ingest round; it is retained so that a gateway that subscribes
later still learns the newest acknowledgement (and that its cloud acknowledges at all).

An edge resends what stays unacknowledged past its timeout; the cloud de-duplicates on
``(gateway, seq)`` and acknowledges the duplicate again, so resends are harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from wire.errors import WireError
from wire.topics import PREFIX, check_gateway_id

__all__ = ["MAX_ACK_RANGES", "Ack", "ack_topic", "decode_ack", "encode_ack", "seq_ranges"]

#: Most ranges in one acknowledgement (a round of a few thousand items needs a handful).
MAX_ACK_RANGES: Final = 100_000
_MAX_SEQ: Final = 2**63 - 1


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    """One acknowledgement: ``seqs`` of gateway ``gw`` are safe in the cloud."""

    gw: str
    ts: int
    seqs: list[tuple[int, int]]
    v: int = 1


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(Ack)


def ack_topic(gateway_id: str) -> str:
    """The retained topic on which the cloud acknowledges ``gateway_id``'s seqs."""
    return f"{PREFIX}/{check_gateway_id(gateway_id)}/ack"


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, disjoint, inclusive ranges covering exactly ``seqs`` (duplicates allowed)."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def encode_ack(ack: Ack) -> bytes:
    """Serialize an acknowledgement (checks the gateway id)."""
    check_gateway_id(ack.gw)
    return _ENCODER.encode(ack)


def decode_ack(payload: bytes) -> Ack:
    """Parse and check an acknowledgement.

    Raises:
        WireError: not an acknowledgement of this version, or ranges that are not sorted,
            disjoint, inclusive ranges of valid seqs.
    """
    try:
        ack = _DECODER.decode(payload)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise WireError("malformed", f"not an acknowledgement: {exc}", field="seqs") from exc
    if ack.v != 1:
        raise WireError("unknown_version", f"acknowledgement version {ack.v}", field="v")
    check_gateway_id(ack.gw)
    if len(ack.seqs) > MAX_ACK_RANGES:
        raise WireError("invalid_value", f"{len(ack.seqs)} ranges", field="seqs")
    above = -1
    for index, (first, last) in enumerate(ack.seqs):
        if not above < first <= last <= _MAX_SEQ:
            raise WireError(
                "invalid_value", f"range [{first}, {last}] after {above}", field=f"seqs[{index}]"
            )
        above = last
    return ack
