"""AIS decoding: fragments, A/B duplicates, tag blocks, static merge, sentinels, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyais import encode_dict

import wire
from edge.decode.ais import AisDecoder, AisItem
from edge.decode.framing import LineFramer
from simulators.nmea import AisVessel, Route, tag_block

DATA = Path(__file__).parent.parent / "nmea" / "data"
NOW_S = 1_795_400_160.0
ROUTE = Route([(30.0, 122.0), (30.1, 122.1)])


def feed_all(decoder: AisDecoder, lines: list[str], *, now_s: float = NOW_S) -> list[AisItem]:
    items: list[AisItem] = []
    for line in lines:
        items += decoder.feed(line.encode(), now_s=now_s)
    return items


def test_recorded_mixed_feed() -> None:
    framer = LineFramer()
    decoder = AisDecoder()
    items: list[AisItem] = []
    for sentence in framer.feed((DATA / "ais_mixed.nmea").read_bytes()):
        items += decoder.feed(sentence, now_s=NOW_S)
    decoder.flush()
    fixes = {i.asset: i for i in items if isinstance(i, wire.Fix)}
    vessels = {i.mmsi: i for i in items if isinstance(i, wire.Vessel)}
    for item in items:
        wire.encode_item(item)
    # Class A: type 1 heard on A and B counts once; type 5 (two fragments) on A and B once.
    class_a = fixes["412345678"]
    assert class_a.source == "ais"
    assert class_a.nav_status == 7
    assert class_a.speed_kmh == pytest.approx(8.0 * 1.852)
    assert class_a.heading == 41.0
    assert vessels[412345678] == wire.Vessel(
        seq=0,
        ts=int(NOW_S * 1000),
        mmsi=412345678,
        ais_class="A",
        name="MIN YU 123",
        callsign="BXYZ",
        ship_type=30,
        to_bow_m=20,
        to_stern_m=10,
        to_port_m=3,
        to_starboard_m=3,
        destination="ZHOUSHAN",
    )
    # Class B position with tag block time; type 24 A+B merged.
    assert fixes["412440001"].ts == 1_795_400_101_000
    assert vessels[412440001].name == "ZHE DAI YU 02"
    assert vessels[412440001].callsign == "BZD2"
    assert vessels[412440001].ais_class == "B"
    # Type 27 long range, type 19 fix + static, sentinels, own ship.
    assert fixes["412440002"].flags == ("long_range",)
    assert fixes["412440002"].heading is None
    assert fixes["412440003"].course == 181.5
    assert vessels[412440003].name == "ZHE PU YU 88"
    assert "412440004" not in fixes  # lat 91 / lon 181: no position
    own = fixes["412440005"]
    assert (own.speed_kmh, own.course, own.heading, own.nav_status) == (None, None, None, None)
    assert own.flags == ("own_ship",)
    # The same type 5 again within the duplicate window (new sequence id) is a duplicate too.
    assert len([i for i in items if isinstance(i, wire.Vessel) and i.mmsi == 412345678]) == 1
    assert decoder.counters["duplicates"] == 3
    assert decoder.counters["no_position"] == 1
    assert decoder.errors == {"bad_checksum": 1, "malformed": 1, "fragment_lost": 1}
    assert framer.errors == {"garbage": 1}


def test_type5_in_two_fragments_any_order_and_interleaved() -> None:
    a = AisVessel(412000001, ROUTE, ais_class="A", name="MIN YU 7")
    b = AisVessel(412000002, ROUTE, ais_class="A", name="MIN YU 8")
    first, second = a.static(channel="A"), b.static(channel="B")
    items = feed_all(AisDecoder(), [second[1], first[0], second[0], first[1]])
    assert sorted(str(i.name) for i in items if isinstance(i, wire.Vessel)) == [
        "MIN YU 7",
        "MIN YU 8",
    ]


def test_lost_fragment_times_out_with_the_clock() -> None:
    vessel = AisVessel(412000003, ROUTE, ais_class="A")
    decoder = AisDecoder(fragment_timeout_s=10)
    assert feed_all(decoder, vessel.static()[:1], now_s=100.0) == []
    assert decoder.errors == {}
    later = vessel.position(0)
    assert len(feed_all(decoder, later, now_s=111.0)) == 1
    assert decoder.errors == {"fragment_lost": 1}


def test_sequence_id_reused_before_completion_counts_a_loss() -> None:
    vessel = AisVessel(412000004, ROUTE, ais_class="A")
    one = vessel.static()
    decoder = AisDecoder()
    items = feed_all(decoder, [one[0], one[0], one[1]])
    assert len(items) == 1
    assert decoder.errors == {"fragment_lost": 1}


def test_type24_parts_merge_in_either_order_and_only_when_both_known() -> None:
    vessel = AisVessel(412000005, ROUTE, ais_class="B", name="ZHE LING YU 3", callsign="BZL3")
    part_a, part_b = vessel.static()
    decoder = AisDecoder(duplicate_window_s=0)
    assert feed_all(decoder, [part_b]) == []
    (merged,) = feed_all(decoder, [part_a])
    assert isinstance(merged, wire.Vessel)
    assert (merged.name, merged.callsign, merged.ship_type, merged.to_bow_m) == (
        "ZHE LING YU 3",
        "BZL3",
        30,
        20,
    )


def test_tag_block_time_in_seconds_or_milliseconds_and_bad_tag_block() -> None:
    vessel = AisVessel(412000006, ROUTE)
    (line,) = vessel.position(0)
    decoder = AisDecoder(duplicate_window_s=0)
    (fix,) = feed_all(decoder, [tag_block(line, station="rx", t_ms=1_700_000_000_000)])
    assert fix.ts == 1_700_000_000_000
    millis = "\\c:1700000000123*" + f"{_xor('c:1700000000123'):02X}" + "\\" + line
    (fix,) = feed_all(decoder, [millis])
    assert fix.ts == 1_700_000_000_123
    (fix,) = feed_all(decoder, ["\\c:1700000000*00\\" + line])
    assert fix.ts == int(NOW_S * 1000)
    assert decoder.errors == {"bad_tag_block": 1}
    assert decoder.stations == {"rx": 1}


def _xor(text: str) -> int:
    value = 0
    for char in text:
        value ^= ord(char)
    return value


def test_own_ship_only_keeps_vdo() -> None:
    vessel = AisVessel(412000007, ROUTE)
    decoder = AisDecoder(own_ship_only=True)
    assert feed_all(decoder, vessel.position(0)) == []
    assert len(feed_all(decoder, vessel.position(0, own=True))) == 1
    assert decoder.counters["ignored_vdm"] == 1


def test_type27_sentinels_and_other_types() -> None:
    lines = encode_dict(
        {"type": 27, "mmsi": 412000008, "lon": 122.0, "lat": 30.0, "speed": 63, "course": 511}
    )
    lines += encode_dict({"type": 4, "mmsi": 412000009, "lon": 122.0, "lat": 30.0})
    decoder = AisDecoder()
    (fix,) = feed_all(decoder, lines)
    assert isinstance(fix, wire.Fix)
    assert (fix.speed_kmh, fix.course) == (None, None)
    assert decoder.counters["other_types"] == 1


def test_impossible_position_dropped_and_counted() -> None:
    lines = encode_dict({"type": 1, "mmsi": 412000010, "lon": 185.0, "lat": 30.0})
    decoder = AisDecoder()
    assert feed_all(decoder, lines) == []
    assert decoder.errors == {"impossible_position": 1}


def test_garbage_is_counted_not_raised() -> None:
    decoder = AisDecoder()
    for junk in [
        b"!",
        b"!AIVDM",
        b"!AIVDM,x,y,z",
        b"$GPGGA,1*00",
        b"!AIVDM,1,1,,A,,0*26",
        b"\\\\!",
    ]:
        assert decoder.feed(junk, now_s=NOW_S) == ()
    assert sum(decoder.errors.values()) == 6


def test_type24_cut_before_its_part_number_is_counted_not_raised() -> None:
    decoder = AisDecoder()
    for payload in ("H0", "H0000", "H00000"):
        body = f"AIVDM,1,1,,A,{payload},0"
        assert decoder.feed(f"!{body}*{_xor(body):02X}".encode(), now_s=NOW_S) == ()
    assert decoder.errors == {"invalid_value": 3}
    assert decoder.counters.get("vessels", 0) == 0


def _tagged(fields: str, sentence: str) -> str:
    return f"\\{fields}*{_xor(fields):02X}\\{sentence}"


def test_fragments_of_two_stations_reusing_a_sequence_id_are_not_mixed() -> None:
    # A shore network merges receivers; each numbers its multi-sentence messages 0-9 itself,
    # so two stations' messages on one channel can share a sequence id and interleave.
    x = AisVessel(412000011, ROUTE, ais_class="A", name="MIN YU 11", callsign="BX11")
    y = AisVessel(412000012, ROUTE, ais_class="A", name="MIN YU 12", callsign="BY12")
    x1, x2 = x.static(channel="A")
    y1, y2 = y.static(channel="A")
    assert x1.split(",")[3] == y1.split(",")[3]  # the same sequence id
    lines = [_tagged("s:st1", x1), _tagged("s:st2", y1), _tagged("s:st1", x2),
             _tagged("s:st2", y2)]  # fmt: skip
    decoder = AisDecoder()
    vessels = {i.mmsi: i for i in feed_all(decoder, lines) if isinstance(i, wire.Vessel)}
    assert {m: (v.name, v.callsign) for m, v in vessels.items()} == {
        412000011: ("MIN YU 11", "BX11"),
        412000012: ("MIN YU 12", "BY12"),
    }
    assert decoder.errors == {}
    # NMEA 4 groups: only the first sentence of a group names its station, the rest `g:`.
    lines = [_tagged("g:1-2-101,s:st1", x1), _tagged("g:1-2-202,s:st2", y1),
             _tagged("g:2-2-101", x2), _tagged("g:2-2-202", y2)]  # fmt: skip
    decoder = AisDecoder(duplicate_window_s=0)
    vessels = {i.mmsi: i for i in feed_all(decoder, lines) if isinstance(i, wire.Vessel)}
    assert {m: v.name for m, v in vessels.items()} == {
        412000011: "MIN YU 11",
        412000012: "MIN YU 12",
    }
    assert decoder.errors == {}
    # A feed that tags only the first sentence of a message still assembles it.
    decoder = AisDecoder(duplicate_window_s=0)
    (vessel,) = feed_all(decoder, [_tagged("s:st1,c:1700000000", x1), x2])
    assert isinstance(vessel, wire.Vessel)
    assert (vessel.name, vessel.ts) == ("MIN YU 11", 1_700_000_000_000)
    assert decoder.errors == {}
