"""Pure AIS decoder: ``!AIVDM`` / ``!AIVDO`` sentences in, vessel fixes and static data out.

Sentences are parsed and decoded with pyais; this module adds what a live receiver needs:

* checksum verification (pyais leaves it to the caller);
* multi-fragment reassembly keyed by (sentence type, sequence id, channel) and, in a feed that
  merges receivers, by the tag block's group (``g:``) or else its station (``s:``): each receiver
  numbers its messages 0-9 itself, so two stations' fragments may share a sequence id. A timeout
  drops lost fragments (the clock is a parameter; counted ``fragment_lost``);
* one count for the same message heard on channels A and B (or repeated by a second receiver)
  within ``duplicate_window_s``: ``counters["duplicates"]``;
* NMEA 4 tag blocks (``\\s:station,c:1700000000*hh\\!AIVDM,...``): ``c`` (receiver time, seconds or
  milliseconds) becomes the item time when present; ``s`` (receiving station) is counted per
  station in :attr:`AisDecoder.stations`.

Types 1/2/3 (Class A), 18 and 19 (Class B) and 27 (long range) become :class:`wire.Fix` with the
MMSI as asset, speed in km/h, course, heading and navigational status; 5 (Class A), 19 and 24
(Class B, parts A and B merged by MMSI) become :class:`wire.Vessel`. Not-available sentinels
(lon 181, lat 91, speed 102.3 kn or 63 kn for type 27, course 360, heading 511, nav status 15,
IMO/ship type/dimensions 0, empty names) become ``None``; a position report without a position
is counted ``no_position``; a position outside the globe is dropped as ``impossible_position``.
"""

from __future__ import annotations

from typing import Any, Final

from pyais.exceptions import AISBaseException, UnknownMessageException
from pyais.messages import AISSentence, NMEASentenceFactory

import wire

__all__ = ["AisDecoder", "AisItem"]

AisItem = wire.Fix | wire.Vessel

_KNOT_KMH: Final = 1.852
_FIX_TYPES: Final = frozenset({1, 2, 3, 18, 19, 27})
_NO_ITEMS: Final[tuple[AisItem, ...]] = ()
#: Receiving stations counted by name at most (a shore network has a handful).
_MAX_STATIONS: Final = 64


class _Parts:
    """Fragments of one multi-sentence message received so far."""

    __slots__ = ("count", "fragments", "started_s", "ts_ms")

    def __init__(self, count: int, started_s: float, ts_ms: int) -> None:
        self.count = count
        self.started_s = started_s
        self.ts_ms = ts_ms
        self.fragments: dict[int, AISSentence] = {}


def _text(value: Any) -> str | None:
    """AIS 6-bit text without its ``@`` padding; empty -> ``None``."""
    if not isinstance(value, str):
        return None
    cleaned = value.replace("@", " ").strip()
    return cleaned or None


def _origin(part: AISSentence) -> str:
    """Which receiver's numbering a fragment's sequence id belongs to: its tag block group
    (``g:``, on every sentence of a group), else its station (``s:``), else the one feed."""
    block = part.tag_block
    if block is None:
        return ""
    if not block.initialized:
        block.init()
    if not block.is_valid:
        return ""
    group = block.group
    if group is not None and group.sentence_tot > 1:
        return f"g:{group.group_id}"
    return f"s:{block.source_station}" if block.source_station else ""


def _positive(value: Any) -> int | None:
    """0 means 'not available' for IMO numbers, ship types and dimensions."""
    return int(value) if value else None


class AisDecoder:
    """Decode AIS sentences of one receiver (or one shore network) into items.

    Args:
        fragment_timeout_s: how long the first fragment of a message waits for the others.
        duplicate_window_s: the same payload again within this time is a duplicate.
        own_ship_only: keep only ``VDO`` sentences (an own-ship transponder's own reports).
        max_pending: multi-fragment messages under assembly at most (oldest dropped).
        max_vessels: Class B part A/B halves remembered at most (oldest forgotten).
    """

    def __init__(
        self,
        *,
        fragment_timeout_s: float = 10.0,
        duplicate_window_s: float = 5.0,
        own_ship_only: bool = False,
        max_pending: int = 1024,
        max_vessels: int = 20_000,
    ) -> None:
        self.fragment_timeout_s = fragment_timeout_s
        self.duplicate_window_s = duplicate_window_s
        self.own_ship_only = own_ship_only
        self.max_pending = max_pending
        self.max_vessels = max_vessels
        #: reason -> count of rejected sentences, messages or values.
        self.errors: dict[str, int] = {}
        #: sentences, messages, duplicates, fixes, vessels, other_types, tag_blocks, ...
        self.counters: dict[str, int] = {}
        #: tag block source station (``s:``) -> messages received through it.
        self.stations: dict[str, int] = {}
        self._pending: dict[tuple[str, str, int | None, str], _Parts] = {}
        self._recent: dict[bytes, float] = {}
        self._halves: dict[int, list[dict[str, Any] | None]] = {}

    def _count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def feed(self, sentence: bytes, *, now_s: float) -> tuple[AisItem, ...]:
        """Take one framed sentence; return the items of the message it completes, if any.

        Args:
            sentence: one sentence as returned by the framer (tag block allowed).
            now_s: current UTC time in epoch seconds (fragment timeout, duplicates, item time).
        """
        self._count(self.counters, "sentences")
        try:
            parsed = NMEASentenceFactory.produce(sentence)
        except UnknownMessageException:
            self._count(self.errors, "not_ais")
            return _NO_ITEMS
        except AISBaseException:
            self._count(self.errors, "malformed")
            return _NO_ITEMS
        except (ValueError, IndexError, UnicodeDecodeError):
            self._count(self.errors, "malformed")
            return _NO_ITEMS
        if not isinstance(parsed, AISSentence):
            self._count(self.errors, "not_ais")
            return _NO_ITEMS
        if not parsed.is_valid:
            self._count(self.errors, "bad_checksum")
            return _NO_ITEMS
        if self.own_ship_only and parsed.type != "VDO":
            self._count(self.counters, "ignored_vdm")
            return _NO_ITEMS
        ts_ms = self._tag_time(parsed, now_s)
        if self._pending:
            self._expire(now_s)
        message: AISSentence | None = parsed
        if parsed.frag_cnt > 1:
            message, ts_ms = self._assemble(parsed, now_s, ts_ms)
        if message is None or self._duplicate(message.payload, now_s):
            return _NO_ITEMS
        return self._decode(message, ts_ms, vdo=parsed.type == "VDO")

    def flush(self) -> None:
        """End of input: messages still missing fragments are lost."""
        for _ in self._pending:
            self._count(self.errors, "fragment_lost")
        self._pending.clear()

    # -- sentence level ---------------------------------------------------------------------

    def _tag_time(self, parsed: AISSentence, now_s: float) -> int:
        block = parsed.tag_block
        if block is None:
            return int(now_s * 1000)
        self._count(self.counters, "tag_blocks")
        block.init()
        if not block.is_valid:
            self._count(self.errors, "bad_tag_block")
            return int(now_s * 1000)
        station = block.source_station
        if station:
            if station in self.stations or len(self.stations) < _MAX_STATIONS:
                self._count(self.stations, station)
            else:
                self._count(self.counters, "other_stations")
        stamp = block.receiver_timestamp
        if stamp is None or not stamp.isdigit():
            return int(now_s * 1000)
        value = int(stamp)
        return value if value > 100_000_000_000 else value * 1000

    def _expire(self, now_s: float) -> None:
        limit = now_s - self.fragment_timeout_s
        while self._pending:
            key = next(iter(self._pending))
            if self._pending[key].started_s > limit and len(self._pending) <= self.max_pending:
                return
            del self._pending[key]
            self._count(self.errors, "fragment_lost")

    def _assemble(
        self, part: AISSentence, now_s: float, ts_ms: int
    ) -> tuple[AISSentence | None, int]:
        key = (_origin(part), part.type, part.seq_id, part.channel)
        if not key[0] and key not in self._pending:
            key = self._tagged_match(part) or key
        parts = self._pending.get(key)
        if parts is not None and (part.frag_num in parts.fragments or parts.count != part.frag_cnt):
            # A new message reuses the sequence id: the old one lost a fragment.
            del self._pending[key]
            self._count(self.errors, "fragment_lost")
            parts = None
        if parts is None:
            parts = self._pending[key] = _Parts(part.frag_cnt, now_s, ts_ms)
        parts.fragments[part.frag_num] = part
        if len(parts.fragments) < parts.count:
            return None, ts_ms
        del self._pending[key]
        ordered = [parts.fragments[number] for number in sorted(parts.fragments)]
        return AISSentence.assemble_from_iterable(ordered), parts.ts_ms

    def _tagged_match(self, part: AISSentence) -> tuple[str, str, int | None, str] | None:
        """A tagged message waiting for this untagged fragment (a feed that tags only the
        first sentence of a message)."""
        for key, parts in self._pending.items():
            if (
                key[1:] == (part.type, part.seq_id, part.channel)
                and parts.count == part.frag_cnt
                and part.frag_num not in parts.fragments
            ):
                return key
        return None

    def _duplicate(self, payload: bytes, now_s: float) -> bool:
        if self.duplicate_window_s <= 0:
            return False
        recent = self._recent
        seen = recent.pop(payload, None)
        recent[payload] = now_s
        limit = now_s - self.duplicate_window_s
        while True:
            oldest = next(iter(recent))
            if recent[oldest] >= limit:
                break
            del recent[oldest]
        if seen is not None and seen > limit:
            self._count(self.counters, "duplicates")
            return True
        return False

    # -- message level ----------------------------------------------------------------------

    def _decode(self, message: AISSentence, ts_ms: int, *, vdo: bool) -> tuple[AisItem, ...]:
        self._count(self.counters, "messages")
        try:
            decoded = message.decode()
        except AISBaseException:
            self._count(self.errors, "unsupported_message")
            return _NO_ITEMS
        except (ValueError, IndexError, TypeError):
            self._count(self.errors, "decode_error")
            return _NO_ITEMS
        kind = decoded.msg_type
        items: list[AisItem] = []
        try:
            if kind in _FIX_TYPES:
                fix = self._fix(decoded, kind, ts_ms, vdo=vdo)
                if fix is not None:
                    items.append(fix)
            if kind in (5, 19, 24):
                vessel = self._vessel(decoded, kind, ts_ms)
                if vessel is not None:
                    items.append(vessel)
            elif kind not in _FIX_TYPES:
                self._count(self.counters, "other_types")
        except (ValueError, TypeError):
            self._count(self.errors, "invalid_value")
            return _NO_ITEMS
        return tuple(items)

    def _fix(self, msg: Any, kind: int, ts_ms: int, *, vdo: bool) -> wire.Fix | None:
        lat, lon = msg.lat, msg.lon
        if lat is None or lon is None or lat == 91.0 or lon == 181.0:
            self._count(self.counters, "no_position")
            return None
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            self._count(self.errors, "impossible_position")
            return None
        long_range = kind == 27
        speed = msg.speed
        speed_na = 63.0 if long_range else 102.3
        course = msg.course
        heading = None if long_range else msg.heading
        status = getattr(msg, "status", None)
        flags = ("long_range",) if long_range else ()
        self._count(self.counters, "fixes")
        return wire.Fix(
            seq=0,
            ts=ts_ms,
            asset=str(msg.mmsi),
            lat=lat,
            lon=lon,
            speed_kmh=None if speed is None or speed >= speed_na else speed * _KNOT_KMH,
            course=None if course is None or not 0.0 <= course < 360.0 else float(course),
            heading=None if heading is None or not 0 <= heading < 360 else float(heading),
            flags=(*flags, "own_ship") if vdo else flags,
            source="ais",
            nav_status=None if status is None or int(status) == 15 else int(status),
        )

    def _vessel(self, msg: Any, kind: int, ts_ms: int) -> wire.Vessel | None:
        if kind == 24:
            fields = self._merge_halves(msg)
            if fields is None:
                return None
        else:
            fields = {
                "name": _text(msg.shipname),
                "ship_type": _positive(msg.ship_type),
                "to_bow_m": _positive(msg.to_bow),
                "to_stern_m": _positive(msg.to_stern),
                "to_port_m": _positive(msg.to_port),
                "to_starboard_m": _positive(msg.to_starboard),
            }
            if kind == 5:
                fields["callsign"] = _text(msg.callsign)
                fields["imo"] = _positive(msg.imo)
                fields["destination"] = _text(msg.destination)
        self._count(self.counters, "vessels")
        return wire.Vessel(
            seq=0, ts=ts_ms, mmsi=int(msg.mmsi), ais_class="A" if kind == 5 else "B", **fields
        )

    def _merge_halves(self, msg: Any) -> dict[str, Any] | None:
        """Remember part A (name) or B (call sign, type, size); both known -> merged fields."""
        if msg.partno not in (0, 1):  # a payload cut before its part number
            raise ValueError(f"type 24 part number {msg.partno!r}")
        mmsi = int(msg.mmsi)
        halves = self._halves.pop(mmsi, None) or [None, None]
        self._halves[mmsi] = halves
        if len(self._halves) > self.max_vessels:
            del self._halves[next(iter(self._halves))]
        if msg.partno == 0:
            halves[0] = {"name": _text(msg.shipname)}
        else:
            halves[1] = {
                "callsign": _text(msg.callsign),
                "ship_type": _positive(msg.ship_type),
                "to_bow_m": _positive(getattr(msg, "to_bow", 0)),
                "to_stern_m": _positive(getattr(msg, "to_stern", 0)),
                "to_port_m": _positive(getattr(msg, "to_port", 0)),
                "to_starboard_m": _positive(getattr(msg, "to_starboard", 0)),
            }
        part_a, part_b = halves
        if part_a is None or part_b is None:
            self._count(self.counters, "static_halves")
            return None
        return {**part_a, **part_b}
