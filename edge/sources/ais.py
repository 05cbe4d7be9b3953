"""AIS receiver sources: stream -> framer -> AIS decoder -> reporting -> sink.

A shore station hears many vessels (``!AIVDM``); an own-ship transponder on a fishing vessel also
sends its own reports as ``!AIVDO`` (``own_ship_only = true`` keeps just those). The agent calls
:func:`build_sources` with the ``[ais]`` section of its TOML::

    [ais]
    fragment_timeout_s = 10       # a multi-sentence message waits this long for its fragments
    duplicate_window_s = 5        # the same message on channel A and B within this is one
    static_interval_s = 1800      # unchanged static data (types 5/19/24) is resent this often
    max_line_bytes = 1024

    [ais.report]                  # reporting strategy per vessel (edge.reporting)
    interval_s = 60
    distance_m = 100
    heading_change_deg = 20

    [[ais.receivers]]
    name = "shore-zhoushan"       # source name (required)
    own_ship_only = false
    transport = "udp"             # serial | tcp | udp | file, settings as in edge.sources.streams
    bind = "0.0.0.0"
    port = 10110
    report = { interval_s = 30 }  # per-receiver override of [ais.report]

Fixes carry the MMSI as asset id and ``source="ais"``; static data becomes :class:`wire.Vessel`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

import wire
from edge.decode.ais import AisDecoder
from edge.decode.framing import DEFAULT_MAX_LINE_BYTES
from edge.pipeline import Sink, Source
from edge.reporting import Reporter, ReportPolicy
from edge.sources.gnss import FramedSource
from edge.sources.streams import ByteStream, Table, stream_from_config

__all__ = ["AIS_REPORT_DEFAULTS", "AisSource", "build_sources"]

#: Vessels move slower than trucks; a minute between reports is the shore default.
AIS_REPORT_DEFAULTS = ReportPolicy(interval_s=60.0, distance_m=100.0, heading_change_deg=20.0)


class AisSource(FramedSource):
    """One AIS receiver (shore station, own-ship transponder or network feed).

    Args:
        name: source name (health, logs).
        stream: where the AIS bytes come from.
        decoder: the decoder (fragment and duplicate state).
        reporter: the reporting strategy, applied per MMSI.
        static_interval_s: unchanged static data of a vessel is sent at most this often.
        max_line_bytes: framer limit.
        clock: UTC epoch seconds.
    """

    def __init__(
        self,
        name: str,
        *,
        stream: ByteStream,
        decoder: AisDecoder,
        reporter: Reporter,
        static_interval_s: float = 1800.0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            name, stream=stream, reporter=reporter, max_line_bytes=max_line_bytes, clock=clock
        )
        self.decoder = decoder
        self.static_interval_s = static_interval_s
        self._statics: dict[int, tuple[wire.Vessel, float]] = {}
        self.counters["statics_suppressed"] = 0

    def report_now(self, mmsi: int) -> None:
        """Send the next fix of this vessel at once (an alarm was raised for it)."""
        self.reporter.force(str(mmsi))

    def on_alarm(self, alarm: wire.Alarm) -> None:
        """An alarm raised for a vessel (asset = its MMSI): report its next fix at once."""
        if alarm.asset is not None and alarm.asset.isdigit():
            self.report_now(int(alarm.asset))

    def _sentence(self, sentence: bytes, now_s: float, sink: Sink) -> None:
        for item in self.decoder.feed(sentence, now_s=now_s):
            if isinstance(item, wire.Fix):
                self._offer(item, sink)
            elif self._static_due(item, now_s):
                self._put(item, sink)

    def _end(self, now_s: float, sink: Sink) -> None:
        self.decoder.flush()

    def _static_due(self, vessel: wire.Vessel, now_s: float) -> bool:
        key = msgspec.structs.replace(vessel, ts=0)
        last = self._statics.pop(vessel.mmsi, None)
        if last is not None and last[0] == key and now_s - last[1] < self.static_interval_s:
            self._statics[vessel.mmsi] = last
            self.counters["statics_suppressed"] += 1
            return False
        self._statics[vessel.mmsi] = (key, now_s)
        if len(self._statics) > self.decoder.max_vessels:
            del self._statics[next(iter(self._statics))]
        return True

    def _decoder_tables(self) -> Iterable[tuple[dict[str, int], dict[str, int]]]:
        stations = {f"station.{name}": n for name, n in self.decoder.stations.items()}
        return ((self.decoder.counters, self.decoder.errors), (stations, {}))


def build_sources(table: Mapping[str, Any], *, file: Path, state_dir: Path) -> list[Source]:
    """Build one :class:`AisSource` per ``[[ais.receivers]]`` entry (see module docstring).

    Args:
        table: the ``[ais]`` section.
        file: the config file (error messages, relative replay paths).
        state_dir: the agent's state directory (not used by AIS sources yet).

    Raises:
        ConfigError: naming the file and the key, e.g. ``ais.receivers[0].port``.
    """
    del state_dir
    section = Table(table, file=file, key="ais")
    fragment_timeout_s = section.number("fragment_timeout_s", 10.0, low=0.1)
    duplicate_window_s = section.number("duplicate_window_s", 5.0)
    static_interval_s = section.number("static_interval_s", 1800.0)
    max_line = section.integer("max_line_bytes", DEFAULT_MAX_LINE_BYTES, low=16, high=1 << 20)
    policy = ReportPolicy.from_table(
        section.sub("report"), file=file, key="ais.report", base=AIS_REPORT_DEFAULTS
    )
    entries = section.tables("receivers")
    section.check_unknown()
    sources: list[Source] = []
    names: set[str] = set()
    for entry in entries:
        name = entry.text("name")
        if name in names:
            raise entry.error("name", f"duplicate source name {name!r}")
        names.add(name)
        decoder = AisDecoder(
            fragment_timeout_s=fragment_timeout_s,
            duplicate_window_s=duplicate_window_s,
            own_ship_only=entry.flag("own_ship_only", False),
        )
        own = ReportPolicy.from_table(
            entry.sub("report"), file=file, key=f"{entry.key}.report", base=policy
        )
        stream = stream_from_config(entry, name=name)
        entry.check_unknown()
        sources.append(
            AisSource(
                name,
                stream=stream,
                decoder=decoder,
                reporter=Reporter(own),
                static_interval_s=static_interval_s,
                max_line_bytes=max_line,
            )
        )
    return sources
