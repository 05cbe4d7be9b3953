"""Whatever arrives, the decoders return a result or raise WireError, never anything else."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wire
from tests.wire import strategies as s

FIX = {"kind": "fix", "seq": 7, "ts": 1_700_000_000_000, "asset": "a", "lat": 31.5, "lon": 120.3}
STATUS = {"v": 1, "gw": "gw-1", "state": "online", "ts": 5}
DECODERS: dict[str, Callable[[bytes], object]] = {
    "batch": wire.decode_batch,
    "strict_batch": lambda payload: wire.decode_batch(payload, strict=True),
    "status": wire.decode_status,
    "item": wire.decode_item,
}


def only_wire_errors(decode: Callable[[bytes], object], payload: bytes) -> str | None:
    """Decode; return the reason of a WireError (any other exception fails the test)."""
    try:
        decode(payload)
    except wire.WireError as exc:
        reason = exc.reason
        text = str(exc)
    else:
        return None
    assert reason in wire.REASONS
    # Safe to log and to archive as text (the ingest keeps refusals in PostgreSQL).
    assert not any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) < 0xE000 for c in text
    )
    return reason


def dumps(value: object, *, ascii_only: bool) -> bytes:
    # Lone surrogates: escaped with ascii_only, else raw (which is not UTF-8 at all).
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def nest(depth: int, inner: str = "1", *, objects: bool = False) -> str:
    if objects:
        return '{"a":' * depth + inner + "}" * depth
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("decoder", DECODERS)
@settings(max_examples=200)
@given(payload=st.binary(max_size=400))
def test_arbitrary_bytes(decoder: str, payload: bytes) -> None:
    only_wire_errors(DECODERS[decoder], payload)


@pytest.mark.parametrize("decoder", DECODERS)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(value=s.json_values, ascii_only=st.booleans())
def test_arbitrary_json_values(decoder: str, value: object, ascii_only: bool) -> None:
    only_wire_errors(DECODERS[decoder], dumps(value, ascii_only=ascii_only))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=s.json_values,
    where=st.sampled_from(["items", "item", "field", "known_field", "envelope", "gw", "sent"]),
    ascii_only=st.booleans(),
)
def test_arbitrary_json_inside_an_envelope(value: object, where: str, ascii_only: bool) -> None:
    envelope: dict[str, object] = {"v": 1, "gw": "gw-1", "items": [FIX]}
    if where == "items":
        envelope["items"] = value
    elif where == "item":
        envelope["items"] = [FIX, value, FIX]
    elif where == "field":
        envelope["items"] = [{**FIX, "future": value}]
    elif where == "known_field":
        envelope["items"] = [{**FIX, "asset": value}]
    else:
        envelope[where] = value
    payload = dumps(envelope, ascii_only=ascii_only)
    only_wire_errors(wire.decode_batch, payload)
    only_wire_errors(DECODERS["strict_batch"], payload)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(value=s.json_values, key=st.sampled_from(["gw", "state", "ts", "v", "agent", "new"]))
def test_arbitrary_json_inside_a_status(value: object, key: str) -> None:
    only_wire_errors(wire.decode_status, dumps({**STATUS, key: value}, ascii_only=False))


DEEP = 5000
ENVELOPE = '{"v":1,"gw":"g","items":%s}'


@pytest.mark.parametrize("objects", [False, True], ids=["arrays", "objects"])
@pytest.mark.parametrize(
    ("decoder", "template"),
    [
        ("batch", ENVELOPE),  # the reported payload: items nested 5000 levels deep
        ("batch", ENVELOPE % "[%s]"),
        ("batch", ENVELOPE % '[{"kind":"fix","future":%s}]'),
        ("batch", ENVELOPE % '[{"kind":"fix","seq":1,"ts":1,"asset":"a","lat":1,"lon":1,"x":%s}]'),
        ("batch", '{"v":1,"gw":"g","future":%s,"items":[]}'),
        ("batch", "%s"),
        ("status", '{"v":1,"gw":"g","state":"online","ts":1,"future":%s}'),
        ("status", "%s"),
        ("item", '{"kind":"fix","future":%s}'),
    ],
)
def test_a_payload_nested_5000_levels_deep(decoder: str, template: str, objects: bool) -> None:
    payload = (template % nest(DEEP, objects=objects)).encode()
    # Where the type already tells (an object for the item list, an array for the envelope),
    # the decoder refuses it before going down.
    shallow = (template, objects) in {(ENVELOPE, True), ("%s", False)}
    for _ in range(2):  # and the decoder is fine afterwards
        reason = only_wire_errors(DECODERS[decoder], payload)
        assert reason == ("wrong_type" if shallow else "too_deep")
    assert wire.decode_batch(ENVELOPE.replace("%s", json.dumps([FIX])).encode()).items


@pytest.mark.parametrize("depth", [1, 10, 100])
def test_unknown_fields_nested_a_while_are_ignored(depth: int) -> None:
    # The contract ignores unknown fields; a hundred levels are always decodable.
    item = json.dumps({**FIX, "future": 0}).replace("0}", nest(depth, objects=True) + "}")
    payload = ENVELOPE.replace("%s", f"[{item}]")
    payload = payload.replace('"items"', f'"also_new":{nest(depth)},"items"')
    decoded = wire.decode_batch(payload.encode(), strict=True)
    assert [i.seq for i in decoded.items] == [7]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.integers(1, 6000),
    pattern=st.lists(st.sampled_from(["[", '{"k":']), min_size=1, max_size=8),
    template=st.sampled_from([ENVELOPE, ENVELOPE % "[%s]", ENVELOPE % '[{"kind":"fix","x":%s}]']),
)
def test_nested_to_any_depth(depth: int, pattern: list[str], template: str) -> None:
    openers = (pattern * depth)[:depth]
    closers = "".join("]" if o == "[" else "}" for o in reversed(openers))
    payload = (template % ("".join(openers) + "0" + closers)).encode()
    only_wire_errors(wire.decode_batch, payload)
