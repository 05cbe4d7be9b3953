"""Any valid talker (marine instruments), GLL-only receivers, and how an epoch gets its date."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wire
from edge.decode.nmea import TALKERS, NmeaDecoder
from edge.pipeline import CollectingSink
from edge.sources.streams import FileStream
from simulators.nmea import nmea
from tests.edge.nmea.test_nmea_decode import DATA, NOW, T0, check_sane, decode_file
from tests.edge.nmea.test_sources import gnss_source

#: Off Zhoushan, where the sample vessel fishes.
LAT0, LON0 = 29 + 56.1234 / 60, 122 + 18.5 / 60
#: The decoder's default tolerance for a fix dated from the clock.
TOLERANCE_MS = 60_000
DAY_MS = 86_400_000


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def feed_all(decoder: NmeaDecoder, bodies: list[str], *, now_ms: int) -> list[wire.Fix]:
    fixes = [decoder.feed(nmea(body).encode(), now_ms=now_ms) for body in bodies]
    fixes.append(decoder.flush(now_ms=now_ms))
    return [fix for fix in fixes if fix is not None]


def test_chartplotter_in_talker_decodes_and_is_counted_per_talker() -> None:
    fixes, decoder = decode_file("marine_chartplotter.nmea")
    assert [f.ts for f in fixes] == [T0 + i * 1000 for i in range(5)]
    for fix in fixes:
        check_sane(fix)
        assert (fix.quality, fix.flags) == ("good", ())
        assert fix.speed_kmh == pytest.approx(8.5 * 1.852)
        assert fix.course == pytest.approx(45.0)
        assert fix.sats == 9
        assert (fix.hdop, fix.alt_m) == pytest.approx((1.0, 3.0))
    assert (fixes[0].lat, fixes[0].lon) == pytest.approx((LAT0, LON0))
    assert fixes[4].lat == pytest.approx(29 + 56.1498 / 60)
    assert fixes[4].lon == pytest.approx(122 + 18.528 / 60)
    counters = decoder.counters
    # IN: 7 RMC, 8 GGA, 6 VTG, 1 HDT; the depth sounder and one GPS GSV; PGRMZ has no talker
    talkers = {k: v for k, v in counters.items() if k.startswith("talker.")}
    assert talkers == {"talker.IN": 22, "talker.SD": 1, "talker.GP": 1}
    assert decoder.errors == {}


def test_ecdis_sending_only_gll_yields_fixes() -> None:
    fixes, decoder = decode_file("ecdis_gll.nmea")
    assert [(f.ts - T0) // 1000 for f in fixes] == [0, 1, 2, 4]
    assert [(f.quality, f.flags) for f in fixes] == [
        ("good", ("no_rmc_date",)),
        ("good", ("no_rmc_date",)),  # mode D (differential)
        ("dead_reckoning", ("no_rmc_date", "dead_reckoning")),  # status V, mode E
        ("good", ("no_rmc_date",)),
    ]
    assert (fixes[0].lat, fixes[0].lon) == pytest.approx((LAT0, LON0))
    assert fixes[3].lat == pytest.approx(29 + 56.1498 / 60)
    for fix in fixes:
        check_sane(fix)
    assert decoder.counters["talker.EC"] == 5
    assert decoder.counters["talker.II"] == 1  # the wind instrument's MWV, skipped
    assert decoder.counters["epochs_without_position"] == 1
    assert decoder.no_position == {"gll_status_v": 2}
    assert decoder.skipped == {"MWV": 1}
    assert decoder.errors == {}


@pytest.mark.parametrize("talker", ["IN", "EC", "II", "GQ", "GI", "QZ", "A1", "BD", "GB", "GN"])
@pytest.mark.parametrize("kind", ["GGA", "RMC", "GLL"])
def test_position_sentences_of_any_valid_talker_make_fixes(talker: str, kind: str) -> None:
    body = {
        "GGA": "GGA,021500.00,2956.1234,N,12218.5000,E,1,09,1.0,3.0,M,10.2,M,,",
        "RMC": "RMC,021500.00,A,2956.1234,N,12218.5000,E,8.5,45.0,231126,,,A",
        "GLL": "GLL,2956.1234,N,12218.5000,E,021500.00,A,A",
    }[kind]
    decoder = NmeaDecoder(asset="vessel")
    fixes = feed_all(decoder, [talker + body], now_ms=NOW)
    [fix] = fixes
    assert fix.ts == T0
    assert (fix.lat, fix.lon) == pytest.approx((LAT0, LON0))
    assert decoder.counters[f"talker.{talker}"] == 1
    assert decoder.errors == {}


def test_invalid_talkers_and_proprietary_sentences_make_no_fix() -> None:
    gga = "GGA,021500.00,2956.1234,N,12218.5000,E,1,09,1.0,3.0,M,10.2,M,,"
    decoder = NmeaDecoder(asset="vessel")
    # lower case and punctuation are no talker; $P... is proprietary (manufacturer XGG)
    assert feed_all(decoder, ["in" + gga, "I_" + gga, "PX" + gga], now_ms=NOW) == []
    assert decoder.errors == {"unsupported_talker": 2}
    assert decoder.skipped == {"PXGGA": 1}
    assert not any(k.startswith("talker.") for k in decoder.counters)
    # a gateway may still restrict the talkers, e.g. to satellite receivers
    only_gnss = NmeaDecoder(asset="vessel", talkers=TALKERS)
    assert feed_all(only_gnss, ["IN" + gga], now_ms=NOW) == []
    assert only_gnss.errors == {"unsupported_talker": 1}


def test_skipped_types_are_counted_by_type_when_their_checksum_holds() -> None:
    decoder = NmeaDecoder(asset="vessel")
    for sentence in [
        nmea("GPGSV,1,1,00").encode(),
        nmea("BDGSV,1,1,00").encode(),
        nmea("GPTXT,01,01,02,ANTENNA OK").encode(),
        nmea("PGRMZ,10,f,3").encode(),
        b"$GPGSV,1,1,00*00",  # bad checksum
        b"$GPGSV,1,1,00",  # no checksum
    ]:
        assert decoder.feed(sentence, now_ms=NOW) is None
    assert decoder.skipped == {"GSV": 2, "TXT": 1, "PGRMZ": 1}
    assert decoder.counters["ignored_sentences"] == 4
    assert decoder.errors == {"bad_checksum": 1, "no_checksum": 1}


async def test_health_reports_a_counter_per_talker() -> None:
    source = gnss_source(FileStream("file", path=DATA / "marine_chartplotter.nmea", pacing="fast"))
    await asyncio.wait_for(source.run(CollectingSink()), 10)
    counters = source.health().counters
    assert (counters["talker.IN"], counters["talker.SD"], counters["talker.GP"]) == (22, 1, 1)


# -- dates -----------------------------------------------------------------------------------


def test_an_epoch_after_midnight_takes_the_receivers_last_date_rolled_over() -> None:
    clock = ms(2026, 11, 24, 14, 0)
    gga = "GPGGA,{},2956.1234,N,12218.5000,E,1,09,1.0,3.0,M,10.2,M,,"
    # the RMC of 23:59:59 has the date but no fix yet (receiver starting), or a fix
    for rmc in (
        "GPRMC,235959.00,V,,,,,,,231126,,,N",
        "GPRMC,235959.00,A,2956.1234,N,12218.5000,E,8.5,45.0,231126,,,A",
    ):
        decoder = NmeaDecoder(asset="vessel")
        fixes = feed_all(
            decoder, [rmc, gga.format("000000.00"), gga.format("000001.00")], now_ms=clock
        )
        after = [(f.ts, f.flags) for f in fixes if f.ts >= ms(2026, 11, 24)]
        assert after == [(ms(2026, 11, 24), ()), (ms(2026, 11, 24, 0, 0, 1), ())]


def test_a_late_epoch_of_the_day_before_keeps_its_day() -> None:
    decoder = NmeaDecoder(asset="vessel")
    bodies = [
        "GPRMC,000001.00,A,2956.1234,N,12218.5000,E,8.5,45.0,241126,,,A",
        "GPGGA,235958.00,2956.1234,N,12218.5000,E,1,09,1.0,3.0,M,10.2,M,,",
    ]
    fixes = feed_all(decoder, bodies, now_ms=ms(2026, 11, 24, 14, 0))
    assert [f.ts for f in fixes] == [ms(2026, 11, 24, 0, 0, 1), ms(2026, 11, 23, 23, 59, 58)]


def test_without_any_receiver_date_midnight_at_14h_is_today_not_tomorrow() -> None:
    decoder = NmeaDecoder(asset="vessel")
    gga = "GPGGA,000000.00,2956.1234,N,12218.5000,E,1,09,1.0,3.0,M,10.2,M,,"
    [fix] = feed_all(decoder, [gga], now_ms=ms(2026, 11, 24, 14, 0))
    assert (fix.ts, fix.flags) == (ms(2026, 11, 24), ("no_rmc_date",))


def test_the_tolerance_for_a_clock_dated_fix_is_an_option() -> None:
    gga = "GPGGA,140500.00,2956.1234,N,12218.5000,E,1,09,1.0,3.0,M,10.2,M,,"
    clock = ms(2026, 11, 24, 14, 0)
    [strict] = feed_all(NmeaDecoder(asset="v"), [gga], now_ms=clock)  # 5 min ahead
    assert strict.ts == ms(2026, 11, 23, 14, 5)
    skewed = NmeaDecoder(asset="v", future_tolerance_ms=600_000)
    [lenient] = feed_all(skewed, [gga], now_ms=clock)
    assert lenient.ts == ms(2026, 11, 24, 14, 5)


@settings(max_examples=300, deadline=None)
@given(
    now_ms=st.integers(min_value=ms(2000, 1, 2), max_value=ms(2099, 12, 30)),
    tods_cs=st.lists(st.integers(min_value=0, max_value=8_639_999), min_size=1, max_size=5),
)
def test_without_a_receiver_date_no_fix_is_ahead_of_the_clock(
    now_ms: int, tods_cs: list[int]
) -> None:
    decoder = NmeaDecoder(asset="vessel")
    bodies = []
    for cs in tods_cs:
        hours, rest = divmod(cs, 360_000)
        minutes, rest = divmod(rest, 6_000)
        tod = f"{hours:02d}{minutes:02d}{rest // 100:02d}.{rest % 100:02d}"
        bodies.append(f"GPGGA,{tod},2956.1234,N,12218.5000,E,1,09,1.0,3.0,M,10.2,M,,")
    fixes = feed_all(decoder, bodies, now_ms=now_ms)
    assert fixes
    for fix in fixes:
        assert fix.flags == ("no_rmc_date",)
        # never ahead of the clock beyond the tolerance, and the latest such day
        assert now_ms + TOLERANCE_MS - DAY_MS < fix.ts <= now_ms + TOLERANCE_MS
        assert fix.ts % DAY_MS in {cs * 10 for cs in tods_cs}
