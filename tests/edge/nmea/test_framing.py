"""The line framer: partial lines, line ends, noise, long lines, counted reasons."""

from __future__ import annotations

from edge.decode.framing import LineFramer
from simulators.nmea import nmea

GGA = nmea("GNGGA,021500.00,3113.8240,N,12128.4220,E,1,10,0.9,5.0,M,8.6,M,,").encode()
RMC = nmea("BDRMC,021500.00,A,3113.8240,N,12128.4220,E,10.0,90.0,231126,,,A").encode()
TAGGED = b"\\s:rx1,c:1700000000*5A\\!AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*24"


def test_partial_lines_need_more_and_are_not_errors() -> None:
    framer = LineFramer()
    data = GGA + b"\r\n" + RMC + b"\r\n"
    out: list[bytes] = []
    for index in range(len(data)):
        out += framer.feed(data[index : index + 1])
    assert out == [GGA, RMC]
    assert framer.errors == {}


def test_line_end_variants() -> None:
    framer = LineFramer()
    out = framer.feed(GGA + b"\n" + RMC + b"\r" + GGA + b"\n\r" + RMC + b"\r\n\r\n")
    assert out == [GGA, RMC, GGA, RMC]
    assert framer.errors == {}


def test_last_line_without_terminator_on_flush() -> None:
    framer = LineFramer()
    assert framer.feed(GGA) == []
    assert framer.flush() == [GGA]
    assert framer.flush() == []


def test_tag_block_kept_with_its_sentence() -> None:
    framer = LineFramer()
    assert framer.feed(b"\x00\x00" + TAGGED + b"\r\n") == [TAGGED]
    assert framer.errors == {}


def test_noise_and_cut_sentences_counted_by_reason() -> None:
    framer = LineFramer()
    data = (
        b"\x00\x00\x00" + GGA + b"\r\n"  # NUL padding: not an error
        b"\xff\xfe binary noise\r\n"  # garbage
        b"xx" + RMC + b"\r\n"  # garbage before a sentence
        b"$GNRMC,0215"
        + GGA
        + b"\r\n"  # truncated by the next sentence
        + GGA
        + b"tail\r\n"  # trailing garbage, sentence kept
        b"$GNGGA,02\x01500*00\r\n"  # binary inside a sentence
    )
    assert framer.feed(data) == [GGA, RMC, GGA, GGA]
    assert framer.errors == {
        "garbage": 2,
        "truncated": 1,
        "trailing_garbage": 1,
        "binary_noise": 1,
    }


def test_absurdly_long_line_dropped_once_then_recovers() -> None:
    framer = LineFramer(max_line_bytes=200)
    out = framer.feed(b"$GPGGA," + b"9" * 150)
    out += framer.feed(b"9" * 5000)
    out += framer.feed(b"9" * 5000 + b"\r\n" + GGA + b"\r\n")
    assert out == [GGA]
    assert framer.errors == {"too_long": 1}
    out = framer.feed(b"$" + b"8" * 300 + b"\r\n" + RMC + b"\n")
    assert out == [RMC]
    assert framer.errors == {"too_long": 2}


def test_a_sentence_after_a_long_run_of_noise_on_the_same_line_is_kept() -> None:
    # A receiver read at the wrong baud for a while, then right again: kilobytes of noise
    # without a line end, then sentences. The noise is dropped and counted; the sentence that
    # follows it on the same line is not.
    noise = bytes(range(0x80, 0x100)) * 10
    for chunk in (len(noise) + 400, 64, 1):
        framer = LineFramer(max_line_bytes=200)
        data = noise + RMC + b"\r\n" + GGA + b"\r\n"
        out: list[bytes] = []
        for start in range(0, len(data), chunk):
            out += framer.feed(data[start : start + chunk])
        assert out == [RMC, GGA], chunk
        assert framer.errors == {"too_long": 1}, chunk
    framer = LineFramer(max_line_bytes=200)
    out = framer.feed(b"\x00" * 3000 + TAGGED + b"\r\n")
    assert out == [TAGGED]
