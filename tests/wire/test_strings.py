"""Strings at the wire boundary: no control characters, no lone surrogates, bounded lengths.

Every string field of every item kind is covered (a field added later fails
``test_every_string_field_is_bounded_and_covered`` until it is added to ``FIELDS``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wire

BASE: dict[str, wire.Item] = {
    "reading": wire.Reading(seq=1, ts=1, site="tank-farm-1", point="T101.LT01", value=1.5),
    "fix": wire.Fix(seq=1, ts=1, asset="苏B12345", lat=31.5, lon=120.3),
    "vessel": wire.Vessel(seq=1, ts=1, mmsi=412345678),
    "alarm": wire.Alarm(seq=1, ts=1, state="raise", level="H", point="T101.LT01"),
    "health": wire.Health(seq=1, ts=1, buffer_depth=0),
}
#: (kind, field, maximum length, free text): every string-holding field of every item kind.
FIELDS: list[tuple[str, str, int, bool]] = [
    ("reading", "site", 128, False),
    ("reading", "point", 128, False),
    ("reading", "unit", 32, False),
    ("fix", "asset", 128, False),
    ("fix", "flags", 128, False),
    ("vessel", "name", 128, False),
    ("vessel", "callsign", 128, False),
    ("vessel", "destination", 128, False),
    ("alarm", "site", 128, False),
    ("alarm", "point", 128, False),
    ("alarm", "asset", 128, False),
    ("alarm", "device", 128, False),
    ("alarm", "code", 64, False),
    ("alarm", "message", 1024, True),
    ("health", "drops", 128, False),
    ("health", "devices", 128, False),
    ("health", "parse_errors", 128, False),
    ("health", "counters", 128, False),
]
CLASSES = {"reading": wire.Reading, "fix": wire.Fix, "vessel": wire.Vessel}
CLASSES |= {"alarm": wire.Alarm, "health": wire.Health}
REFUSED = ["\x00", "\x01", "\t", "\n", "\r", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]


def with_string(kind: str, name: str, text: str) -> wire.Item:
    """The base item of ``kind`` with ``text`` in field ``name`` (as an element or a key)."""
    item = BASE[kind]
    if name == "flags":
        value: Any = (text,)
    elif kind == "health":
        value = {text: "online" if name == "devices" else 1}
    else:
        value = text
    return msgspec.structs.replace(item, **{name: value})


def path_of(name: str) -> str:
    return f"{name}[0]" if name == "flags" else name


def envelope(*raw_items: bytes) -> bytes:
    return b'{"v":1,"gw":"gw-1","items":[%s]}' % b",".join(raw_items)


def _strs(t: msgspec.inspect.Type) -> Iterator[msgspec.inspect.StrType]:
    if isinstance(t, msgspec.inspect.StrType):
        yield t
    elif isinstance(t, msgspec.inspect.UnionType):
        for member in t.types:
            yield from _strs(member)
    elif isinstance(t, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
        yield from _strs(t.item_type)
    elif isinstance(t, msgspec.inspect.DictType):
        yield from _strs(t.key_type)
        yield from _strs(t.value_type)


def test_every_string_field_is_bounded_and_covered() -> None:
    found = []
    for kind, cls in CLASSES.items():
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        for f in info.fields:
            for st_type in _strs(f.type):
                found.append((kind, f.name, st_type.max_length))
    assert sorted(found) == sorted((kind, name, most) for kind, name, most, _ in FIELDS)
    status = msgspec.inspect.type_info(wire.Status)
    assert isinstance(status, msgspec.inspect.StructType)
    assert all(t.max_length for f in status.fields for t in _strs(f.type))


@pytest.mark.parametrize(("kind", "name", "most", "free"), FIELDS)
@pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
def test_control_characters_are_refused_at_both_ends(
    kind: str, name: str, most: int, free: bool, char: str
) -> None:
    bad = with_string(kind, name, f"x{char}y")
    if free and char in "\t\n":
        # Free text may hold TAB and LF (an alarm quoting a multi-line error).
        assert wire.decode_item(wire.encode_item(bad)) == bad
        return
    with pytest.raises(wire.WireError) as caught:
        wire.encode_item(bad)  # the edge: never enters the buffer
    assert (caught.value.reason, caught.value.field) == ("bad_string", f"$.{path_of(name)}")
    assert f"U+{ord(char):04X}" in caught.value.detail
    # The cloud, with a payload built around the edge's check: the neighbours are kept.
    good = wire.encode_item(msgspec.structs.replace(BASE[kind], seq=2))
    decoded = wire.decode_batch(envelope(good, msgspec.json.encode(bad), good))
    assert len(decoded.items) == 2
    assert [(e.reason, e.field) for e in decoded.errors] == [
        ("bad_string", f"$.items[1].{path_of(name)}")
    ]
    with pytest.raises(wire.WireError, match="bad_string"):
        wire.decode_item(msgspec.json.encode(bad))


@pytest.mark.parametrize(("kind", "name", "most", "free"), FIELDS)
def test_lone_surrogates_are_refused(kind: str, name: str, most: int, free: bool) -> None:
    bad = with_string(kind, name, "x\ud800")
    with pytest.raises(wire.WireError) as caught:
        wire.encode_item(bad)
    assert (caught.value.reason, caught.value.field) == ("bad_string", f"$.{path_of(name)}")
    with pytest.raises(wire.WireError) as caught:
        wire.encode_item(bad, validate=False)
    assert caught.value.reason == "bad_string"
    # JSON can spell one as an escape; the decoder refuses the message.
    spelled = json.dumps(msgspec.to_builtins(bad)).encode()
    with pytest.raises(wire.WireError) as caught:
        wire.decode_batch(envelope(spelled))
    assert caught.value.reason in {"bad_string", "malformed", "truncated"}


@pytest.mark.parametrize(("kind", "name", "most", "free"), FIELDS)
def test_every_string_is_bounded(kind: str, name: str, most: int, free: bool) -> None:
    assert wire.encode_item(with_string(kind, name, "é" * most))
    long = with_string(kind, name, "é" * (most + 1))
    with pytest.raises(wire.WireError) as caught:
        wire.encode_item(long)
    assert (caught.value.reason, caught.value.field) == ("too_long", f"$.{path_of(name)}")
    decoded = wire.decode_batch(envelope(msgspec.json.encode(long)))
    assert [(e.reason, e.field) for e in decoded.errors] == [
        ("too_long", f"$.items[0].{path_of(name)}")
    ]


def test_ids_are_not_empty_and_flags_are_few() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.encode_item(with_string("fix", "asset", ""))
    assert (caught.value.reason, caught.value.field) == ("invalid_value", "$.asset")
    many = msgspec.structs.replace(BASE["fix"], flags=("f",) * 17)
    with pytest.raises(wire.WireError) as caught:
        wire.encode_item(many)
    assert (caught.value.reason, caught.value.field) == ("too_long", "$.flags")


def test_the_nul_cases_that_reached_postgresql() -> None:
    items = [
        wire.Reading(seq=1, ts=1, site="tank\x00farm", point="p", value=1.0),
        wire.Reading(seq=2, ts=1, site="s", point="p", value=1.0, unit="%\x00"),
        wire.Fix(seq=3, ts=1, asset="\x00", lat=1.0, lon=2.0),
        wire.Alarm(seq=4, ts=1, state="raise", level="H", point="p", message="high\x00"),
    ]
    payload = envelope(*(msgspec.json.encode(i) for i in items))
    decoded = wire.decode_batch(payload)
    assert decoded.items == []
    assert [(e.reason, e.field) for e in decoded.errors] == [
        ("bad_string", "$.items[0].site"),
        ("bad_string", "$.items[1].unit"),
        ("bad_string", "$.items[2].asset"),
        ("bad_string", "$.items[3].message"),
    ]
    with pytest.raises(wire.WireError) as caught:
        wire.decode_batch(payload.replace(b'"gw-1"', b'"gw\\u0000"'))
    assert (caught.value.reason, caught.value.field) == ("invalid_value", "gw")


def test_status_strings() -> None:
    status = wire.Status(gw="gw-1", state="online", ts=5, agent="hazwatch-edge 0.1")
    assert wire.decode_status(wire.encode_status(status)) == status
    for agent, reason in (
        ("edge\x00", "bad_string"),
        ("x\ud800", "bad_string"),
        ("a" * 129, "too_long"),
    ):
        bad = msgspec.structs.replace(status, agent=agent)
        with pytest.raises(wire.WireError) as caught:
            wire.encode_status(bad)
        assert (caught.value.reason, caught.value.field) == (reason, "$.agent")
    raw = msgspec.json.encode(msgspec.structs.replace(status, agent="edge\x85"))
    with pytest.raises(wire.WireError) as caught:
        wire.decode_status(raw)
    assert (caught.value.reason, caught.value.field) == ("bad_string", "$.agent")
    with pytest.raises(wire.WireError) as caught:
        wire.decode_status(msgspec.json.encode(msgspec.structs.replace(status, gw="gw\x00")))
    assert (caught.value.reason, caught.value.field) == ("invalid_value", "gw")


@settings(max_examples=300)
@given(
    text=st.text(st.characters(codec="utf-8"), max_size=12),
    name=st.sampled_from([f for f in FIELDS if f[0] in {"fix", "alarm", "health"}]),
    escaped=st.booleans(),
)
def test_the_fast_path_never_lets_a_refused_character_through(
    text: str, name: tuple[str, str, int, bool], escaped: bool
) -> None:
    # The decoder only looks at strings when the bytes could hold a refused character: check
    # that whichever way JSON spells the string (raw UTF-8 or escapes), it decides as the rule.
    kind, field, _, free = name
    item = with_string(kind, field, text or "x")
    raw = json.dumps(msgspec.to_builtins(item)).encode() if escaped else msgspec.json.encode(item)
    allowed = {"\t", "\n"} if free else set()
    refused = any(
        (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) and c not in allowed for c in text or "x"
    )
    decoded = wire.decode_batch(envelope(raw))
    assert [e.reason for e in decoded.errors] == (["bad_string"] if refused else [])
    assert decoded.items == ([] if refused else [item])


def test_errors_quote_the_payload_safely() -> None:
    # msgspec quotes a bad tag as it is: the error must not carry the NUL into a log or a table.
    payload = envelope(b'{"kind":"fi\\u0000x","seq":1,"ts":1}')
    [error] = wire.decode_batch(payload).errors
    assert (error.reason, error.field) == ("unknown_kind", "$.items[0].kind")
    assert "\x00" not in str(error)
    assert "fi\\x00x" in error.detail
