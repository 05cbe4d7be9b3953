"""Random bytes never crash the framer or the decoders; valid sentences in noise are found."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wire
from edge.decode.ais import AisDecoder
from edge.decode.framing import LineFramer
from edge.decode.nmea import NmeaDecoder
from simulators.nmea import AisVessel, GnssVehicle, Route

T0 = int(datetime(2026, 11, 23, 2, 15, tzinfo=UTC).timestamp() * 1000)
ROUTE = Route([(31.2304, 121.4737), (31.2354, 121.4787)])
VEHICLE = GnssVehicle(ROUTE, start_ms=T0, talker="GB", sentences=("RMC", "GGA"))
SENTENCES = [s.encode() for t in range(3) for s in VEHICLE.epoch(T0 + t * 1000)]
AIS = [s.encode() for s in AisVessel(412000001, ROUTE, ais_class="A").static()]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: bytes that look like NMEA more often than uniform noise does
nmeaish = st.binary(max_size=400) | st.lists(
    st.sampled_from(
        [
            b"$",
            b"!",
            b"*",
            b",",
            b"\\",
            b"\r",
            b"\n",
            b"\x00",
            b"GPGGA",
            b"AIVDM",
            b"1",
            b"A",
            b"12",
            b"*7F",
            b"2,1,3,A,",
            b"s:x,c:1*00",
            *SENTENCES[:2],
        ]
    ),
    max_size=60,
).map(b"".join)


def run_all(data: bytes, cuts: list[int]) -> tuple[list[bytes], list[wire.Item]]:
    framer = LineFramer(max_line_bytes=300)
    gnss = NmeaDecoder(asset="fuzz")
    ais = AisDecoder()
    out: list[bytes] = []
    previous = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out += framer.feed(data[previous:cut])
        previous = cut
    out += framer.flush()
    items: list[wire.Item] = []
    for sentence in out:
        fix = gnss.feed(sentence, now_ms=T0)
        if fix is not None:
            items.append(fix)
        items += ais.feed(sentence, now_s=T0 / 1000)
    last = gnss.flush(now_ms=T0)
    if last is not None:
        items.append(last)
    for item in items:
        wire.encode_item(item)  # every item is valid on the wire
    return out, items


@FAST
@given(data=nmeaish, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    out, _ = run_all(data, cuts)
    for sentence in out:
        assert sentence[:1] in (b"$", b"!", b"\\")
        assert b"\r" not in sentence
        assert b"\n" not in sentence


@FAST
@given(
    noise=st.lists(
        st.binary(max_size=80),
        min_size=len(SENTENCES) + len(AIS) + 1,
        max_size=len(SENTENCES) + len(AIS) + 1,
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
    ending=st.sampled_from([b"\r\n", b"\n", b"\r", b"\n\r"]),
)
def test_valid_sentences_in_noise_are_still_found(
    noise: list[bytes], cuts: list[int], ending: bytes
) -> None:
    wanted = SENTENCES + AIS
    # Noise sits on lines of its own, as between sentences on a real feed.
    data = noise[0] + ending
    for sentence, junk in zip(wanted, noise[1:], strict=True):
        data += sentence + ending + junk + ending
    out, items = run_all(data, cuts)
    found = [s for s in out if s in wanted]
    assert found == wanted
    fixes = [i for i in items if isinstance(i, wire.Fix)]
    assert [f.ts for f in fixes] == [T0, T0 + 1000, T0 + 2000]
    assert [type(i) for i in items if not isinstance(i, wire.Fix)] == [wire.Vessel]


SIXBIT = "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVW`abcdefghijklmnopqrstuvw"


def _checksummed(body: str, start: str) -> bytes:
    value = 0
    for char in body:
        value ^= ord(char)
    return f"{start}{body}*{value:02X}".encode()


@FAST
@given(
    count=st.integers(min_value=0, max_value=10),
    number=st.integers(min_value=0, max_value=10),
    seq=st.sampled_from(["", "0", "1", "9", "x"]),
    channel=st.sampled_from(["A", "B", "", "1", "AB"]),
    payload=st.text(alphabet=SIXBIT, max_size=90),
    fill=st.sampled_from(["0", "2", "5", "6", "", "x"]),
)
def test_checksummed_ais_garbage_never_crashes(
    count: int, number: int, seq: str, channel: str, payload: str, fill: str
) -> None:
    """Sentences with a valid checksum reach pyais' bit decoder with any payload."""
    decoder = AisDecoder()
    body = f"AIVDM,{count},{number},{seq},{channel},{payload},{fill}"
    for item in decoder.feed(_checksummed(body, "!"), now_s=T0 / 1000):
        wire.encode_item(item)
    decoder.flush()


@FAST
@given(
    kind=st.sampled_from(["GGA", "RMC", "VTG", "GSA", "GNS", "GLL"]),
    talker=st.sampled_from(["GP", "GN", "BD", "GB"]),
    fields=st.lists(
        st.sampled_from(
            [
                "",
                "0",
                "1",
                "A",
                "V",
                "E",
                "N",
                "S",
                "W",
                "-1",
                "99.9",
                "3113.8240",
                "12128.4220",
                "021500.00",
                "231126",
                "999999",
                "1e308",
                "nan",
                "x",
            ]
        ),
        max_size=20,
    ),
)
def test_checksummed_nmea_garbage_never_crashes(kind: str, talker: str, fields: list[str]) -> None:
    """Sentences with a valid checksum and odd fields: counted, never raised."""
    decoder = NmeaDecoder(asset="fuzz")
    for tod in ("021500.00", "021501.00"):
        body = ",".join([f"{talker}{kind}", *[tod if f == "021500.00" else f for f in fields]])
        fix = decoder.feed(_checksummed(body, "$"), now_ms=T0)
        if fix is not None:
            wire.encode_item(fix)
    last = decoder.flush(now_ms=T0)
    if last is not None:
        wire.encode_item(last)
