"""Round-trips of every item kind and every rejection reason of the decoder."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wire
from tests.wire import strategies as s

FIX = {
    "kind": "fix",
    "seq": 7,
    "ts": 1_700_000_000_000,
    "asset": "苏B12345",
    "lat": 31.5,
    "lon": 120.3,
}


def envelope(*items: object, v: object = 1, gw: object = "gw-1") -> bytes:
    return json.dumps({"v": v, "gw": gw, "items": list(items)}, ensure_ascii=False).encode()


@pytest.mark.parametrize("strategy", [s.readings, s.fixes, s.vessels, s.alarms, s.healths])
@given(data=st.data())
def test_every_kind_round_trips(
    strategy: st.SearchStrategy[wire.Item], data: st.DataObject
) -> None:
    item = data.draw(strategy)
    assert wire.decode_item(wire.encode_item(item)) == item


@given(gw=s.gateway_ids, items=st.lists(s.items, max_size=20), sent=st.none() | s.timestamps)
def test_batch_round_trips(gw: str, items: list[wire.Item], sent: int | None) -> None:
    payload = wire.encode_batch(wire.Batch(gw=gw, items=items, sent=sent))
    decoded = wire.decode_batch(payload, strict=True)
    assert (decoded.gw, decoded.items, decoded.sent, decoded.errors) == (gw, items, sent, [])


def test_assembled_batch_equals_encoded_batch() -> None:
    fix = wire.Fix(seq=1, ts=2, asset="a", lat=1.0, lon=2.0)
    parts = [wire.encode_item(fix)]
    assert wire.assemble_batch("g", parts) == wire.encode_batch(wire.Batch(gw="g", items=[fix]))


def test_unknown_extra_fields_are_ignored() -> None:
    payload = envelope({**FIX, "future_field": [1, 2]}, gw="gw-1") + b""
    payload = payload.replace(b'"v": 1', b'"v": 1, "also_new": {"x": 1}')
    decoded = wire.decode_batch(payload, strict=True)
    assert decoded.items[0] == wire.Fix(
        seq=7, ts=1_700_000_000_000, asset="苏B12345", lat=31.5, lon=120.3
    )


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (envelope(FIX, v=2), "unknown_version", "$.v"),
        (envelope(FIX, v="1"), "wrong_type", "$.v"),
        (b'{"gw": "g", "items": []}', "missing_field", "$.v"),
        (envelope({k: v for k, v in FIX.items() if k != "lat"}), "missing_field", "$.items[0].lat"),
        (envelope({**FIX, "lat": "31.5"}), "wrong_type", "$.items[0].lat"),
        (envelope({**FIX, "lat": 95}), "out_of_range", "$.items[0].lat"),
        (envelope({**FIX, "lon": -180.5}), "out_of_range", "$.items[0].lon"),
        (envelope({**FIX, "seq": -1}), "out_of_range", "$.items[0].seq"),
        (envelope({**FIX, "lat": math.nan}), "not_finite", None),
        (envelope({**FIX, "speed_kmh": math.inf}), "not_finite", None),
        (
            envelope({**FIX, "kind": "reading", "site": "s", "point": "p", "value": 7.25}).replace(
                b"7.25", b"1e999"
            ),
            "out_of_range",
            "$.items[0].value",
        ),
        (envelope({**FIX, "kind": "teleport"}), "unknown_kind", "$.items[0].kind"),
        (envelope({**FIX, "asset": ""}), "invalid_value", "$.items[0].asset"),
        (envelope(FIX, gw="a/+/b"), "invalid_value", "gw"),
        (envelope(FIX)[:-9], "truncated", None),
        (b"\x00\x01garbage", "malformed", None),
        (b"[" * 10 + b"]" * 10, "wrong_type", "$"),
        (b" " * (wire.MAX_PAYLOAD_BYTES + 1), "too_large", None),
    ],
)
def test_rejections_name_reason_and_field(payload: bytes, reason: str, field: str | None) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.decode_batch(payload, strict=True)
    assert caught.value.reason == reason
    assert caught.value.field == field
    assert reason in str(caught.value)


def test_alarm_without_subject_is_rejected() -> None:
    alarm = {"kind": "alarm", "seq": 1, "ts": 1, "state": "raise", "level": "H"}
    with pytest.raises(wire.WireError) as caught:
        wire.decode_batch(envelope(alarm), strict=True)
    assert caught.value.reason == "invalid_value"


def test_lenient_decode_keeps_good_items_and_reports_bad_ones() -> None:
    bad = {**FIX, "seq": 8, "lat": 95}
    good2 = {**FIX, "seq": 9}
    decoded = wire.decode_batch(envelope(FIX, bad, good2))
    assert [i.seq for i in decoded.items] == [7, 9]
    assert [(e.reason, e.field) for e in decoded.errors] == [("out_of_range", "$.items[1].lat")]


def test_encode_refuses_what_the_cloud_would_reject() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.encode_item(wire.Fix(seq=1, ts=1, asset="a", lat=95.0, lon=1.0))
    assert (caught.value.reason, caught.value.field) == ("out_of_range", "$.lat")
    fixes = {
        "lat": wire.Fix(seq=1, ts=1, asset="a", lat=math.nan, lon=1.0),
        "speed_kmh": wire.Fix(seq=1, ts=1, asset="a", lat=1.0, lon=1.0, speed_kmh=math.inf),
        "alt_m": wire.Fix(seq=1, ts=1, asset="a", lat=1.0, lon=1.0, alt_m=-math.inf),
    }
    for name, fix in fixes.items():
        with pytest.raises(wire.WireError) as caught:
            wire.encode_item(fix)
        assert (caught.value.reason, caught.value.field) == ("not_finite", f"$.{name}")
    reading = wire.Reading(seq=1, ts=1, site="s", point="p", value=math.nan)
    with pytest.raises(wire.WireError, match="not_finite at"):
        wire.encode_item(reading)
    assert wire.encode_item(wire.Reading(seq=1, ts=1, site="s", point="p", value=None))


@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_anything_but_wire_error(payload: bytes) -> None:
    reason = None
    try:
        wire.decode_batch(payload)
    except wire.WireError as exc:
        reason = exc.reason
    assert reason is None or reason in wire.REASONS


def test_status_round_trip_and_rejection() -> None:
    status = wire.Status(gw="gw-1", state="online", ts=5, agent="0.1.0")
    assert wire.decode_status(wire.encode_status(status)) == status
    with pytest.raises(wire.WireError) as caught:
        wire.decode_status(b'{"v":1,"gw":"gw-1","state":"sleeping","ts":5}')
    assert caught.value.field == "$.state"
