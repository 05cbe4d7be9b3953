"""Encode and decode the wire contract.

Decoding is lenient by default: a batch whose envelope is sound is returned with its good items,
and each bad item becomes a :class:`~wire.errors.WireError` in ``DecodedBatch.errors`` (nothing
already accepted is lost because a neighbour was bad). ``strict=True`` raises on the first bad item.

Every decoder raises :class:`~wire.errors.WireError` and nothing else, whatever the bytes: JSON
that is not JSON (``malformed``, ``truncated``), strings that break :mod:`wire.text`
(``bad_string``, ``too_long``), and JSON nested deeper than the decoder can follow
(``too_deep``). The contract's own structures nest four levels (envelope, items, item, a list or
map field); unknown fields are ignored whatever they hold, but they must be decodable, and
msgspec follows nesting only as deep as Python's recursion limit lets it (about 1000 levels
less the caller's stack; 100 are always fine).

For the hot paths the edge stores items already encoded (:func:`encode_item`) and assembles a
batch from those bytes with :func:`assemble_batch`, without decoding them again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import msgspec

from wire.errors import WireError
from wire.items import VERSION, Batch, Item, Status
from wire.text import check_strings, may_hold_controls
from wire.topics import check_gateway_id

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "DecodedBatch",
    "assemble_batch",
    "decode_batch",
    "decode_item",
    "decode_status",
    "encode_batch",
    "encode_item",
    "encode_status",
]

#: Largest payload the cloud accepts; the forwarder keeps batches well below it.
MAX_PAYLOAD_BYTES: Final = 4 * 1024 * 1024


class _Head(msgspec.Struct):
    """Just enough of the envelope to check the version before decoding the rest."""

    v: int
    gw: str
    items: list[msgspec.Raw]
    sent: int | None = None


_ENCODER: Final = msgspec.json.Encoder()
_HEAD_DECODER: Final = msgspec.json.Decoder(_Head)
_ITEM_DECODER: Final[msgspec.json.Decoder[Item]] = msgspec.json.Decoder(Item)
_STATUS_DECODER: Final = msgspec.json.Decoder(Status)

_T = TypeVar("_T")

_AT_RE: Final = re.compile(r" - at (?:`key` in )?`([^`]*)`$")
_MISSING_RE: Final = re.compile(r"missing required field `([^`]*)`")
_BYTE_RE: Final = re.compile(r"\(byte (\d+)\)")
_BOUND_RE: Final = re.compile(r"Expected `\w+` [<>]=? ")


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A decoded envelope: its good items, and one error per rejected item."""

    gw: str
    items: list[Item]
    v: int = VERSION
    sent: int | None = None
    errors: list[WireError] = field(default_factory=list)


def _validation_reason(message: str) -> str:
    if "missing required field" in message:
        return "missing_field"
    if _BOUND_RE.match(message) or message.startswith("Number out of range"):
        return "out_of_range"
    if message.startswith("Expected `") and "of length <=" in message:
        return "too_long"
    if message.startswith("Expected `") and ("length" in message):
        return "invalid_value"
    if message.startswith("Expected `"):
        return "wrong_type"
    if message.startswith("Invalid value") and "kind" in message:
        return "unknown_kind"
    return "invalid_value"


def _from_validation(exc: msgspec.ValidationError, prefix: str) -> WireError:
    message = str(exc)
    match = _AT_RE.search(message)
    path = match.group(1) if match else "$"
    missing = _MISSING_RE.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}"
    detail = _AT_RE.sub("", message)
    return WireError(_validation_reason(message), detail, field=prefix + path.removeprefix("$"))


def _from_decode(exc: msgspec.DecodeError, payload: bytes, field: str | None) -> WireError:
    message = str(exc)
    if "truncated" in message:
        return WireError("truncated", message, field=field)
    if "surrogate" in message or "UTF-8" in message:
        return WireError("bad_string", message, field=field)
    match = _BYTE_RE.search(message)
    if match:
        at = int(match.group(1))
        window = payload[max(0, at - 1) : at + 9]
        if b"NaN" in window or b"Infinity" in window:
            return WireError("not_finite", f"NaN or Infinity in payload ({message})", field=field)
    return WireError("malformed", message, field=field)


def _decode(decoder: msgspec.json.Decoder[_T], payload: bytes | msgspec.Raw, path: str) -> _T:
    """Run ``decoder``; translate every way it can fail into a :class:`WireError`."""
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc, path) from exc
    except msgspec.DecodeError as exc:
        raise _from_decode(exc, bytes(payload), None if path == "$" else path) from exc
    except RecursionError as exc:
        # msgspec follows nesting (into unknown fields too) on the interpreter's stack.
        detail = "JSON nested deeper than the decoder can follow"
        raise WireError("too_deep", detail, field=None if path == "$" else path) from exc


def _check_size(payload: bytes) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")


def decode_item(raw: bytes, *, path: str = "$") -> Item:
    """Decode and validate one item; raise :class:`WireError` naming field and reason."""
    item = _decode(_ITEM_DECODER, raw, path)
    if may_hold_controls(raw if isinstance(raw, bytes) else bytes(raw)):
        check_strings(item, path)
    return item


def decode_batch(payload: bytes, *, strict: bool = False) -> DecodedBatch:
    """Decode an envelope.

    Args:
        payload: the MQTT message body.
        strict: raise on the first bad item instead of collecting it in ``errors``.

    Raises:
        WireError: the envelope itself is unusable (size, JSON, version, gateway id), or with
            ``strict`` any item is.
    """
    _check_size(payload)
    head = _decode(_HEAD_DECODER, payload, "$")
    if head.v != VERSION:
        raise WireError(
            "unknown_version", f"envelope version {head.v}, expected {VERSION}", field="$.v"
        )
    check_gateway_id(head.gw)
    items: list[Item] = []
    errors: list[WireError] = []
    # Strings are only looked at when the bytes could hold a refused character (wire.text).
    suspect = may_hold_controls(payload)
    for index, raw in enumerate(head.items):
        path = f"$.items[{index}]"
        try:
            item = _decode(_ITEM_DECODER, raw, path)
            if suspect and may_hold_controls(bytes(raw)):
                check_strings(item, path)
            items.append(item)
        except WireError as exc:
            if strict:
                raise
            errors.append(exc)
    return DecodedBatch(gw=head.gw, items=items, v=head.v, sent=head.sent, errors=errors)


_FLOAT_FIELDS: dict[type, tuple[str, ...]] = {}


def _float_fields(cls: type) -> tuple[str, ...]:
    """Names of the float-typed fields of an item class (cached)."""
    names = _FLOAT_FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in msgspec.structs.fields(cls) if "float" in repr(f.type))
        _FLOAT_FIELDS[cls] = names
    return names


def _check_finite(item: Item) -> None:
    for name in _float_fields(type(item)):
        value = getattr(item, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise WireError("not_finite", f"{name} is {value}", field=f"$.{name}")


def _validate(item: Item) -> bytes:
    raw = _ENCODER.encode(item)
    if b"null" in raw:
        # msgspec writes NaN and +-inf as null, which an optional field would take for "no
        # value": look at the floats themselves (rare: only items that carry a null).
        _check_finite(item)
    decode_item(raw)
    return raw


def encode_item(item: Item, *, validate: bool = True) -> bytes:
    """Encode one item to JSON bytes.

    Args:
        item: the item.
        validate: decode the bytes again so that an item the cloud would reject fails here,
            at the edge, naming the field (costs about a microsecond).

    Raises:
        WireError: the item breaks the contract (a string with a lone surrogate, which has no
            UTF-8 form, even without ``validate``).
    """
    try:
        return _validate(item) if validate else _ENCODER.encode(item)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        if isinstance(exc, UnicodeEncodeError):
            check_strings(item)  # names the field
        raise WireError("invalid_value", str(exc)) from exc


def assemble_batch(
    gateway_id: str, encoded_items: Sequence[bytes], *, sent_ms: int | None = None
) -> bytes:
    """Build an envelope from items already encoded with :func:`encode_item`."""
    check_gateway_id(gateway_id)
    sent = b"" if sent_ms is None else b',"sent":%d' % sent_ms
    return b'{"v":%d,"gw":"%s"%s,"items":[%s]}' % (
        VERSION,
        gateway_id.encode(),
        sent,
        b",".join(encoded_items),
    )


def encode_batch(batch: Batch) -> bytes:
    """Encode a whole envelope (validating each item)."""
    return assemble_batch(batch.gw, [encode_item(i) for i in batch.items], sent_ms=batch.sent)


def encode_status(status: Status) -> bytes:
    """Encode a gateway status message (validated as :func:`decode_status` would)."""
    check_gateway_id(status.gw)
    check_strings(status)
    payload = _ENCODER.encode(status)
    decode_status(payload)
    return payload


def decode_status(payload: bytes) -> Status:
    """Decode a gateway status message; raise :class:`WireError` if it is not one."""
    _check_size(payload)
    status = _decode(_STATUS_DECODER, payload, "$")
    if status.v != VERSION:
        raise WireError(
            "unknown_version", f"status version {status.v}, expected {VERSION}", field="$.v"
        )
    check_gateway_id(status.gw)
    if may_hold_controls(payload):
        check_strings(status)
    return status
