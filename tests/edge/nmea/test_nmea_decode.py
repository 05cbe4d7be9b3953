"""GNSS decoding: talkers, epoch merging in any order, receivers without RMC, quality flags."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

import wire
from edge.decode.framing import LineFramer
from edge.decode.nmea import NmeaDecoder
from simulators.nmea import GnssVehicle, Route, nmea

DATA = Path(__file__).parent / "data"
T0 = int(datetime(2026, 11, 23, 2, 15, tzinfo=UTC).timestamp() * 1000)
NOW = T0 + 60_000
ROUTE = Route([(31.2304, 121.4737), (31.2354, 121.4787)], loop=False)


def decode_file(
    name: str, *, now_ms: int = NOW, **options: object
) -> tuple[list[wire.Fix], NmeaDecoder]:
    framer = LineFramer()
    decoder = NmeaDecoder(asset="truck-1", **options)  # type: ignore[arg-type]
    fixes: list[wire.Fix] = []
    for sentence in framer.feed((DATA / name).read_bytes()) + framer.flush():
        fix = decoder.feed(sentence, now_ms=now_ms)
        if fix is not None:
            fixes.append(fix)
    last = decoder.flush(now_ms=now_ms)
    if last is not None:
        fixes.append(last)
    for key, value in framer.errors.items():
        decoder.errors[key] = decoder.errors.get(key, 0) + value
    return fixes, decoder


def check_sane(fix: wire.Fix) -> None:
    """The invariant every decoded fix must satisfy."""
    wire.encode_item(fix)  # validates ranges as the cloud would
    assert fix.seq == 0
    assert abs(fix.ts - NOW) < 86_400_000


def test_beidou_bd_gb_and_combined_gn_talkers() -> None:
    fixes, decoder = decode_file("gnss_beidou.nmea")
    assert len(fixes) == 9
    assert [f.ts for f in fixes] == [T0 + i * 1000 for i in range(9)]
    for fix in fixes:
        check_sane(fix)
        assert fix.quality == "good"
        assert fix.flags == ()
        assert fix.sats == 14
        assert fix.hdop == pytest.approx(0.8)
        assert fix.pdop == pytest.approx(1.3)
        assert fix.vdop == pytest.approx(1.0)
        assert fix.fix_type == 3
        assert fix.alt_m == pytest.approx(12.0)
        assert fix.speed_kmh == pytest.approx(54.0, abs=0.01)
        assert fix.course == pytest.approx(40.7, abs=0.1)
        assert fix.source == "gnss"
    assert fixes[0].lat == pytest.approx(31.2304)
    assert fixes[0].lon == pytest.approx(121.4737)
    assert decoder.errors == {}
    assert decoder.counters["ignored_sentences"] == 7  # GSV and TXT


def test_receiver_without_rmc_takes_date_from_clock_and_flags() -> None:
    fixes, decoder = decode_file("gnss_no_rmc.nmea")
    assert [f.ts for f in fixes] == [T0 + i * 1000 for i in range(4)]
    for fix in fixes:
        check_sane(fix)
        assert fix.flags == ("no_rmc_date",)
        assert fix.quality == "good"
        assert fix.speed_kmh == pytest.approx(36.0)  # from VTG km/h
        assert fix.course == pytest.approx(40.7, abs=0.1)
    assert decoder.errors == {}


def test_no_rmc_date_across_midnight_uses_nearest_day() -> None:
    decoder = NmeaDecoder(asset="bus")
    now = int(datetime(2026, 11, 24, 0, 0, 5, tzinfo=UTC).timestamp() * 1000)
    decoder.feed(
        nmea("GPGGA,235959.00,3113.8240,N,12128.4220,E,1,10,0.9,5.0,M,,M,,").encode(), now_ms=now
    )
    fix = decoder.flush(now_ms=now)
    assert fix is not None
    assert fix.ts == now - 6000


def test_questionable_fixes_kept_flagged_and_impossible_values_dropped() -> None:
    fixes, decoder = decode_file("gnss_questionable.nmea")
    summary = [(f.quality, f.flags) for f in fixes]
    assert summary == [
        ("questionable", ("status_v", "no_fix")),
        ("dead_reckoning", ("dead_reckoning",)),
        ("questionable", ("high_hdop",)),
        ("questionable", ("low_sats",)),
        ("good", ()),
        ("good", ()),  # RMC only, speed impossible: value dropped, fix kept
    ]
    assert fixes[-1].speed_kmh is None
    assert fixes[-1].lat == pytest.approx(31.233333, abs=1e-6)
    assert decoder.errors == {"impossible_position": 1, "impossible_speed": 1}
    for fix in fixes:
        check_sane(fix)


def test_hdop_limit_and_min_sats_are_options() -> None:
    fixes, _ = decode_file("gnss_questionable.nmea", hdop_limit=10.0, min_sats=2)
    assert fixes[2].flags == ()
    assert fixes[3].flags == ()


def test_noisy_feed_decodes_good_sentences_and_counts_the_rest() -> None:
    fixes, decoder = decode_file("gnss_noisy.nmea")
    assert [f.ts for f in fixes] == [T0, T0 + 1000, T0 + 2000]
    assert decoder.errors == {
        "bad_checksum": 1,
        "binary_noise": 1,
        "garbage": 1,
        "no_checksum": 1,
        "too_long": 1,
        "trailing_garbage": 1,
        "truncated": 1,
    }


@pytest.mark.parametrize(
    "order",
    [
        *itertools.islice(itertools.permutations(("RMC", "VTG", "GGA", "GSA")), 24),
        ("GGA", "GSA", "GSA", "RMC", "VTG"),
        ("GSA", "GSA", "VTG", "GGA"),
    ],
)
def test_one_fix_per_epoch_whatever_the_order(order: tuple[str, ...]) -> None:
    vehicle = GnssVehicle(ROUTE, speed_kmh=50, start_ms=T0, talker="GN", sentences=order, hdop=1.1)
    decoder = NmeaDecoder(asset="truck-1")
    fixes = []
    for second in range(5):
        for sentence in vehicle.epoch(T0 + second * 1000):
            fix = decoder.feed(sentence.encode(), now_ms=NOW)
            if fix is not None:
                fixes.append(fix)
    last = decoder.flush(now_ms=NOW)
    if last is not None:  # not when the learned cycle already ended the last epoch
        fixes.append(last)
    assert [f.ts for f in fixes] == [T0 + s * 1000 for s in range(5)]
    for second, fix in enumerate(fixes):
        lat, lon, course = vehicle.state(T0 + second * 1000)
        assert fix.lat == pytest.approx(lat, abs=1e-6)
        assert fix.lon == pytest.approx(lon, abs=1e-6)
        assert fix.speed_kmh == pytest.approx(50.0, abs=0.01)
        assert fix.course == pytest.approx(course, abs=0.1)
        assert fix.hdop == pytest.approx(1.1)
        assert fix.quality == "good"
        assert fix.flags == (() if "RMC" in order else ("no_rmc_date",))


def test_gns_and_gll_only_receiver() -> None:
    vehicle = GnssVehicle(ROUTE, start_ms=T0, talker="GB", sentences=("GNS", "GLL"))
    decoder = NmeaDecoder(asset="bus-7")
    for second in range(2):
        for sentence in vehicle.epoch(T0 + second * 1000):
            decoder.feed(sentence.encode(), now_ms=NOW)
    fix = decoder.flush(now_ms=NOW)
    assert fix is not None
    assert fix.ts == T0 + 1000
    assert fix.sats == 14
    assert fix.quality == "good"
    assert fix.flags == ("no_rmc_date",)


def test_rejections_are_counted_by_reason() -> None:
    decoder = NmeaDecoder(asset="truck-1")
    inputs = [
        b"$GPGGA,021500.00,3113.8240,N,12128.4220,E,1,10,0.9,5.0,M,,M,,*00",  # bad checksum
        b"$GPGGA,021500.00,3113.8240,N,12128.4220,E,1,10,0.9,5.0,M,,M,,",  # no checksum
        # no talker: lower case (any two upper-case letters or digits would be one)
        nmea("gpGGA,021500.00,3113.8240,N,12128.4220,E,1,10,0.9,5.0,M,,M,,").encode(),
        nmea("GPGGA,9915xx.00,3113.8240,N,12128.4220,E,1,10,0.9,5.0,M,,M,,").encode(),
        nmea("GPRMC,021500.00,A,31xx.8240,N,12128.4220,E,1.0,2.0,231126,,,A").encode(),
        b"!AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*24",
        b"$",
        nmea("GPGSV,1,1,00").encode(),
    ]
    for sentence in inputs:
        assert decoder.feed(sentence, now_ms=NOW) is None
    assert decoder.flush(now_ms=NOW) is None
    assert decoder.errors == {
        "bad_checksum": 1,
        "no_checksum": 1,
        "unsupported_talker": 1,
        "bad_field": 2,
        "not_nmea": 1,
        "malformed": 1,
    }
    assert decoder.counters["ignored_sentences"] == 1


def test_epoch_without_position_is_counted_not_emitted() -> None:
    decoder = NmeaDecoder(asset="truck-1")
    decoder.feed(nmea("GPGGA,021500.00,,,,,0,00,99.99,,,,,,").encode(), now_ms=NOW)
    decoder.feed(nmea("GPRMC,021500.00,V,,,,,,,231126,,,N").encode(), now_ms=NOW)
    assert decoder.flush(now_ms=NOW) is None
    assert decoder.counters["epochs_without_position"] == 1
    assert decoder.errors == {}


def test_a_bad_field_costs_its_sentence_not_the_epoch_it_completes() -> None:
    # A receiver that sends RMC with a date it does not know yet ("000000") opens every epoch
    # with that RMC: the previous epoch's fix must still come out (and this epoch's too).
    decoder = NmeaDecoder(asset="truck-1")
    fixes: list[wire.Fix] = []
    for second in range(3):
        tod = f"0215{second:02d}.00"
        date = "231126" if second == 0 else "000000"
        for body in (
            f"GNRMC,{tod},A,3113.8240,N,12128.4220,E,10.0,90.0,{date},,,A",
            f"GNGGA,{tod},3113.8240,N,12128.4220,E,1,10,0.9,5.0,M,8.6,M,,",
        ):
            fix = decoder.feed(nmea(body).encode(), now_ms=NOW)
            if fix is not None:
                fixes.append(fix)
    last = decoder.flush(now_ms=NOW)
    assert last is not None
    fixes.append(last)
    assert [(f.ts - T0) // 1000 for f in fixes] == [0, 1, 2]
    assert all(f.sats == 10 for f in fixes)
    assert decoder.errors == {"bad_field": 2}
    assert decoder.counters["fixes"] == 3


def feed_epoch(decoder: NmeaDecoder, sentences: list[str]) -> list[tuple[int, wire.Fix]]:
    """Feed sentences; return (index of the sentence that returned it, fix) for each fix."""
    out = []
    for index, sentence in enumerate(sentences):
        fix = decoder.feed(sentence.encode(), now_ms=NOW)
        if fix is not None:
            out.append((index, fix))
    return out


def test_once_the_cycle_is_known_a_fix_leaves_at_its_epochs_last_sentence() -> None:
    order = ("GGA", "GSA", "GSA", "RMC", "VTG")
    vehicle = GnssVehicle(ROUTE, speed_kmh=50, start_ms=T0, talker="GN", sentences=order)
    decoder = NmeaDecoder(asset="truck-1")
    returned = [feed_epoch(decoder, vehicle.epoch(T0 + s * 1000)) for s in range(6)]
    # epochs 0..2 end when the next one starts (one epoch late), which teaches the cycle;
    # epoch 3 and later leave with their own VTG (index 4), not a second later
    assert [[(i, f.ts) for i, f in r] for r in returned] == [
        [],
        [(0, T0)],
        [(0, T0 + 1000)],
        [(0, T0 + 2000), (4, T0 + 3000)],
        [(4, T0 + 4000)],
        [(4, T0 + 5000)],
    ]
    assert decoder.flush(now_ms=NOW) is None
    assert decoder.counters["epochs_closed_early"] == 3
    early = returned[4][0][1]
    lat, lon, _ = vehicle.state(T0 + 4000)
    assert early.lat == pytest.approx(lat, abs=1e-6)
    assert early.lon == pytest.approx(lon, abs=1e-6)
    assert early.pdop is not None
    assert early.speed_kmh == pytest.approx(50.0, abs=0.01)


def test_a_receiver_that_changes_its_cycle_loses_no_fix_and_makes_no_duplicate() -> None:
    full = GnssVehicle(ROUTE, start_ms=T0, talker="GP", sentences=("GGA", "RMC", "GSA"))
    short = GnssVehicle(ROUTE, start_ms=T0, talker="GP", sentences=("GGA", "RMC"))
    decoder = NmeaDecoder(asset="truck-1")
    fixes: list[wire.Fix] = []
    for s in range(5):  # learned: the epoch ends with GSA
        fixes += [f for _, f in feed_epoch(decoder, full.epoch(T0 + s * 1000))]
    # the receiver now sends its GSA first, then the timed sentences: the GSA closes nothing
    # (the epoch it joins has no position yet), GGA and RMC complete the old shape too late
    for s in range(5, 8):
        sentences = short.epoch(T0 + s * 1000)
        gsa = [x for x in full.epoch(T0 + s * 1000) if "GSA" in x]
        fixes += [f for _, f in feed_epoch(decoder, gsa + sentences)]
    # a straggler: a GGA of the last emitted epoch again
    emitted = fixes[-1].ts
    straggler = [x for x in short.epoch(emitted) if "GGA" in x]
    fixes += [f for _, f in feed_epoch(decoder, straggler)]
    last = decoder.flush(now_ms=NOW)
    if last is not None:
        fixes.append(last)
    assert [f.ts for f in fixes] == [T0 + s * 1000 for s in range(8)]
    assert decoder.counters["late_sentences"] == 1
