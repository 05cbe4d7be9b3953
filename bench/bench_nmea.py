"""GNSS decoding throughput: sentences/s through decode + epoch merge vs bare ``pynmea2.parse``.

Input: a simulated combined GN/BD receiver at 1 Hz (RMC, VTG, GGA, GSA, GSA, GSV per epoch).
Prints the median of several runs for the bare library, for ``NmeaDecoder.feed`` (decode and
merge into fixes) and for framer + decoder from raw bytes, with cost ratios against the bare
library (the goal is <= 2x).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pynmea2

from edge.decode.framing import LineFramer
from edge.decode.nmea import NmeaDecoder
from simulators.nmea import GnssVehicle, Route, nmea

EPOCHS = 4000
RUNS = 7
T0 = int(datetime(2026, 11, 23, 2, 15, tzinfo=UTC).timestamp() * 1000)


def sentences() -> list[str]:
    route = Route([(31.2304, 121.4737), (31.2354, 121.4787), (31.2404, 121.4737)])
    vehicle = GnssVehicle(
        route, speed_kmh=60, start_ms=T0, talker="GN", sentences=("RMC", "VTG", "GGA", "GSA", "GSA")
    )
    gsv = nmea("GBGSV,1,1,04,201,45,120,40,202,38,200,38,203,60,080,42,206,20,310,30")
    out: list[str] = []
    for second in range(EPOCHS):
        out += vehicle.epoch(T0 + second * 1000)
        out.append(gsv)
    return out


def medians_s(*runs: Callable[[], object]) -> list[float]:
    """Median time of each function; runs interleaved so machine load hits all alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(RUNS):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            run()
            times[index].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def main() -> None:
    lines = sentences()
    raw = [line.encode() for line in lines]
    stream = b"".join(line + b"\r\n" for line in raw)

    def bare() -> None:
        for line in lines:
            pynmea2.parse(line)

    def decode_merge() -> int:
        decoder = NmeaDecoder(asset="bench")
        fixes = sum(decoder.feed(line, now_ms=T0) is not None for line in raw)
        return fixes + (decoder.flush(now_ms=T0) is not None)

    def framed() -> int:
        framer = LineFramer()
        decoder = NmeaDecoder(asset="bench")
        fixes = 0
        for start in range(0, len(stream), 4096):
            for line in framer.feed(stream[start : start + 4096]):
                fixes += decoder.feed(line, now_ms=T0) is not None
        return fixes

    assert decode_merge() == EPOCHS
    assert framed() == EPOCHS  # the last epoch leaves at its last sentence (cycle learned)
    base, ours, full = medians_s(bare, decode_merge, framed)
    n = len(lines)
    print(f"sentences: {n} ({EPOCHS} epochs), median of {RUNS} runs")
    print(f"pynmea2.parse (bare)          {n / base:>10,.0f} sentences/s")
    print(
        f"NmeaDecoder.feed (merge)      {n / ours:>10,.0f} sentences/s  cost ratio {ours / base:.2f}x"
    )
    print(
        f"LineFramer + NmeaDecoder      {n / full:>10,.0f} sentences/s  cost ratio {full / base:.2f}x"
    )
    print(f"fixes/s through framer+merge  {EPOCHS / full:>10,.0f}")


if __name__ == "__main__":
    main()
