"""GNSS (GPS/BeiDou) receiver sources: stream -> framer -> NMEA decoder -> reporting -> sink.

The agent calls :func:`build_sources` with the ``[gnss]`` section of its TOML::

    [gnss]
    hdop_limit = 5.0              # fixes above are flagged high_hdop (default 5)
    min_sats = 4                  # fixes with fewer satellites are flagged low_sats (default 4)
    max_line_bytes = 1024         # longer lines are dropped as too_long

    [gnss.report]                 # reporting strategy for every receiver (edge.reporting)
    interval_s = 30
    distance_m = 200
    heading_change_deg = 30

    [[gnss.receivers]]
    asset = "HZ-LU-A12345"        # asset id of the vehicle (required)
    name = "gnss-main"            # source name in health (default "gnss:<asset>")
    transport = "serial"          # serial | tcp | udp | file, settings as in edge.sources.streams
    device = "/dev/ttyUSB0"
    baud = 9600
    hdop_limit = 4.0              # per-receiver overrides of the section values
    report = { interval_s = 10 }  # per-receiver override of [gnss.report]

Each receiver becomes one :class:`GnssSource`. Fixes are built with ``seq=0``; the sink numbers
them. A file replay's ``run`` returns at the end of the file (after the last epoch).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import wire
from edge.decode.framing import DEFAULT_MAX_LINE_BYTES, LineFramer
from edge.decode.nmea import NmeaDecoder
from edge.pipeline import Sink, Source, SourceHealth
from edge.reporting import Reporter, ReportPolicy
from edge.sources.streams import ByteStream, Table, stream_from_config

__all__ = ["FramedSource", "GnssSource", "build_sources"]

log = logging.getLogger(__name__)


class FramedSource:
    """Common shell of line-oriented sources: read chunks, frame, decode, report, put.

    Subclasses implement :meth:`_sentence` (decode one sentence, put what is due) and
    :meth:`_end` (flush at the end of a replayed file).
    """

    def __init__(
        self,
        name: str,
        *,
        stream: ByteStream,
        reporter: Reporter,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.stream = stream
        self.reporter = reporter
        self.framer = LineFramer(max_line_bytes=max_line_bytes)
        self.clock = clock
        self.counters: dict[str, int] = {"bytes": 0, "items": 0}
        self._faults = 0

    async def run(self, sink: Sink) -> None:
        """Read the stream until cancelled (or the end of a replayed file)."""
        chunks = self.stream.chunks()
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                self.counters["bytes"] += len(chunk)
                now_s = self.clock()
                for sentence in self.framer.feed(chunk):
                    self._guarded(sentence, now_s, sink)
        now_s = self.clock()
        for sentence in self.framer.flush():
            self._guarded(sentence, now_s, sink)
        self._end(now_s, sink)

    def _guarded(self, sentence: bytes, now_s: float, sink: Sink) -> None:
        """Decode one sentence; a decoder bug costs that sentence, not the source."""
        try:
            self._sentence(sentence, now_s, sink)
        except Exception:
            self._faults += 1
            if self._faults == 1 or self._faults % 1000 == 0:
                log.exception(
                    "%s: sentence %r failed (%d so far)", self.name, sentence, self._faults
                )

    def _put(self, item: wire.Item, sink: Sink) -> None:
        self.counters["items"] += 1
        sink.put(item)

    def _offer(self, fix: wire.Fix, sink: Sink) -> None:
        """Put a fix if the reporting strategy says it is due."""
        if self.reporter.decide(fix) is not None:
            self._put(fix, sink)

    def _sentence(self, sentence: bytes, now_s: float, sink: Sink) -> None:
        raise NotImplementedError

    def _end(self, now_s: float, sink: Sink) -> None:
        """End of a replayed file."""

    def _decoder_tables(self) -> Iterable[tuple[dict[str, int], dict[str, int]]]:
        """(counters, errors) of the decoders, merged into :meth:`health`."""
        return ()

    def health(self) -> SourceHealth:
        """Device state, counters and parse errors by reason."""
        counters = dict(self.counters)
        counters["fixes_suppressed"] = self.reporter.suppressed
        counters["reconnects"] = self.stream.reconnects
        counters["sentences_framed"] = self.framer.sentences
        errors = dict(self.framer.errors)
        if self.stream.overflows:
            errors["datagrams_dropped"] = self.stream.overflows
        if self._faults:
            errors["internal_error"] = self._faults
        for decoder_counters, decoder_errors in self._decoder_tables():
            for key, value in decoder_counters.items():
                counters[key] = counters.get(key, 0) + value
            for key, value in decoder_errors.items():
                errors[key] = errors.get(key, 0) + value
        state = "online" if self.stream.online else "offline"
        return SourceHealth(
            devices={self.stream.name: state}, counters=counters, parse_errors=errors
        )


class GnssSource(FramedSource):
    """One GNSS receiver of one vehicle.

    Args:
        name: source name (health, logs).
        stream: where the NMEA bytes come from.
        decoder: the receiver's decoder (holds the asset id).
        reporter: the reporting strategy.
        max_line_bytes: framer limit.
        clock: UTC epoch seconds (the date for receivers without RMC).
    """

    def __init__(
        self,
        name: str,
        *,
        stream: ByteStream,
        decoder: NmeaDecoder,
        reporter: Reporter,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            name, stream=stream, reporter=reporter, max_line_bytes=max_line_bytes, clock=clock
        )
        self.decoder = decoder

    def report_now(self) -> None:
        """Send the next fix at once (an alarm was raised for this vehicle)."""
        self.reporter.force(self.decoder.asset)

    def on_alarm(self, alarm: wire.Alarm) -> None:
        """An alarm raised on this gateway (its sensors or this vehicle): report at once."""
        if alarm.asset is None or alarm.asset == self.decoder.asset:
            self.report_now()

    def _sentence(self, sentence: bytes, now_s: float, sink: Sink) -> None:
        fix = self.decoder.feed(sentence, now_ms=int(now_s * 1000))
        if fix is not None:
            self._offer(fix, sink)

    def _end(self, now_s: float, sink: Sink) -> None:
        fix = self.decoder.flush(now_ms=int(now_s * 1000))
        if fix is not None:
            self._offer(fix, sink)

    def _decoder_tables(self) -> Iterable[tuple[dict[str, int], dict[str, int]]]:
        return ((self.decoder.counters, self.decoder.errors),)


def build_sources(table: Mapping[str, Any], *, file: Path, state_dir: Path) -> list[Source]:
    """Build one :class:`GnssSource` per ``[[gnss.receivers]]`` entry (see module docstring).

    Args:
        table: the ``[gnss]`` section.
        file: the config file (error messages, relative replay paths).
        state_dir: the agent's state directory (not used by GNSS sources yet).

    Raises:
        ConfigError: naming the file and the key, e.g. ``gnss.receivers[0].baud``.
    """
    del state_dir
    section = Table(table, file=file, key="gnss")
    hdop_limit = section.number("hdop_limit", 5.0)
    min_sats = section.integer("min_sats", 4, low=0, high=255)
    max_line = section.integer("max_line_bytes", DEFAULT_MAX_LINE_BYTES, low=16, high=1 << 20)
    policy = ReportPolicy.from_table(section.sub("report"), file=file, key="gnss.report")
    entries = section.tables("receivers")
    section.check_unknown()
    sources: list[Source] = []
    names: set[str] = set()
    for entry in entries:
        asset = entry.text("asset")
        if len(asset) > 128:
            raise entry.error("asset", "longer than 128 characters")
        name = entry.text("name", f"gnss:{asset}")
        if name in names:
            raise entry.error("name", f"duplicate source name {name!r}")
        names.add(name)
        decoder = NmeaDecoder(
            asset=asset,
            hdop_limit=entry.number("hdop_limit", hdop_limit),
            min_sats=entry.integer("min_sats", min_sats, low=0, high=255),
        )
        own = ReportPolicy.from_table(
            entry.sub("report"), file=file, key=f"{entry.key}.report", base=policy
        )
        stream = stream_from_config(entry, name=name)
        entry.check_unknown()
        sources.append(
            GnssSource(
                name,
                stream=stream,
                decoder=decoder,
                reporter=Reporter(own),
                max_line_bytes=max_line,
            )
        )
    return sources
