"""The edge <-> cloud contract: topics, envelope, item kinds, encode/decode, versions.

``edge`` and ``cloud`` never import each other; this package is all they share.
"""

from wire.acks import MAX_ACK_RANGES, Ack, ack_topic, decode_ack, encode_ack, seq_ranges
from wire.codec import (
    MAX_PAYLOAD_BYTES,
    DecodedBatch,
    assemble_batch,
    decode_batch,
    decode_item,
    decode_status,
    encode_batch,
    encode_item,
    encode_status,
)
from wire.errors import REASONS, WireError
from wire.items import (
    VERSION,
    Alarm,
    AlarmLevel,
    Batch,
    Fix,
    FixQuality,
    Health,
    Item,
    Quality,
    Reading,
    Status,
    Vessel,
)
from wire.topics import (
    alarm_topic,
    check_gateway_id,
    data_topic,
    parse_topic,
    status_topic,
    subscription,
)

__all__ = [
    "MAX_ACK_RANGES",
    "MAX_PAYLOAD_BYTES",
    "REASONS",
    "VERSION",
    "Ack",
    "Alarm",
    "AlarmLevel",
    "Batch",
    "DecodedBatch",
    "Fix",
    "FixQuality",
    "Health",
    "Item",
    "Quality",
    "Reading",
    "Status",
    "Vessel",
    "WireError",
    "ack_topic",
    "alarm_topic",
    "assemble_batch",
    "check_gateway_id",
    "data_topic",
    "decode_ack",
    "decode_batch",
    "decode_item",
    "decode_status",
    "encode_ack",
    "encode_batch",
    "encode_item",
    "encode_status",
    "parse_topic",
    "seq_ranges",
    "status_topic",
    "subscription",
]
