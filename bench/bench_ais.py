"""AIS decoding throughput: messages/s through ``AisDecoder`` vs bare ``pyais.decode``.

Input: 2,000 vessels' position reports (types 1 and 18) and static data (type 5 in two
fragments, type 24 A/B). ``AisDecoder.feed`` adds checksum verification, fragment reassembly,
duplicate detection and conversion to wire items. Prints medians of several runs and the cost
ratio (the goal is <= 2x).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pyais

from edge.decode.ais import AisDecoder
from edge.decode.framing import LineFramer
from simulators.nmea import AisVessel, Route

VESSELS = 2000
REPORTS = 4
RUNS = 7
T0_MS = 1_795_400_100_000


def messages() -> list[list[bytes]]:
    route = Route([(30.0, 122.0), (30.2, 122.3)])
    out: list[list[bytes]] = []
    for index in range(VESSELS):
        vessel = AisVessel(
            412_000_000 + index,
            route,
            ais_class="A" if index % 2 == 0 else "B",
            start_ms=T0_MS - index * 7000,
            name=f"ZHE YU {index}",
        )
        for report in range(REPORTS):
            out.append([s.encode() for s in vessel.position(T0_MS + report * 10_000)])
        static = vessel.static()
        if vessel.ais_class == "A":
            out.append([s.encode() for s in static])
        else:
            out += [[s.encode()] for s in static]
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
    msgs = messages()
    lines = [line for message in msgs for line in message]
    stream = b"".join(line + b"\r\n" for line in lines)

    def bare() -> None:
        for message in msgs:
            pyais.decode(*message)

    def ours() -> int:
        decoder = AisDecoder()
        return sum(len(decoder.feed(line, now_s=T0_MS / 1000)) for line in lines)

    def framed() -> int:
        framer = LineFramer()
        decoder = AisDecoder()
        items = 0
        for start in range(0, len(stream), 4096):
            for line in framer.feed(stream[start : start + 4096]):
                items += len(decoder.feed(line, now_s=T0_MS / 1000))
        return items

    expected = VESSELS * REPORTS + VESSELS  # type 24: one merged record per vessel
    assert ours() == expected, ours()
    base, mine, full = medians_s(bare, ours, framed)
    n = len(msgs)
    print(f"messages: {n} ({len(lines)} sentences), median of {RUNS} runs")
    print(f"pyais.decode (bare)           {n / base:>10,.0f} messages/s")
    print(
        f"AisDecoder.feed               {n / mine:>10,.0f} messages/s  cost ratio {mine / base:.2f}x"
    )
    print(
        f"LineFramer + AisDecoder       {n / full:>10,.0f} messages/s  cost ratio {full / base:.2f}x"
    )


if __name__ == "__main__":
    main()
