"""Pure NMEA 0183 GNSS decoder: sentences in, one :class:`wire.Fix` per epoch out.

Sentences are parsed with :func:`pynmea2.parse` (checksum required and verified). GGA, RMC, VTG,
GSA, GNS and GLL are used from any talker: two upper-case letters or digits, such as GP (GPS),
GL (GLONASS), GA (Galileo), GN (combined), BeiDou as both BD and GB, IN (integrated navigation on
chartplotters) or EC (ECDIS); a ``$P...`` sentence is proprietary, not a talker's. Valid
sentences are counted per talker (``talker.<id>`` in :attr:`NmeaDecoder.counters`); those of
types not used (GSV, TXT, proprietary ...) are also counted by type in
:attr:`NmeaDecoder.skipped`, and otherwise ignored.

A receiver sends several sentences per epoch, in an order of its own. The :class:`NmeaDecoder`
merges them by time of day: sentences with a time (GGA, RMC, GNS, GLL) belong to the epoch of
that time; sentences without (VTG, GSA) join the open epoch unless it already has one of their
type, in which case they open the next one. An epoch is complete when a sentence of another time
arrives (or on :meth:`NmeaDecoder.flush`), so at first a fix is emitted one epoch late. Meanwhile
the decoder learns the receiver's cycle (which sentence ends an epoch, and what an epoch holds);
once three epochs in a row ended the same way, an epoch that matches is emitted at its last
sentence. A sentence of an epoch already emitted is counted (``late_sentences``) and dropped, and
the cycle is learned again; an epoch whose time equals that of a recent fix (a receiver or a
multiplexer repeating itself) is dropped as ``duplicate_epochs``.

Field sources: time from GGA/RMC/GNS/GLL, date from RMC; position from GGA, else GNS, RMC, GLL;
quality, satellites, HDOP and altitude from GGA (else GNS, GSA); speed and course from RMC, else
VTG; fix type and DOPs from GSA; mode from RMC, else GNS or GLL. A position report that carries
no position is counted by why in :attr:`NmeaDecoder.no_position` (``rmc_status_v``,
``gll_status_v``, ``gga_quality_0``, ``gns_mode_n``, ``empty_position``).

The date of an epoch, in this order:

1. the date of its own RMC;
2. else the receiver's last known date: the last RMC date seen (whether or not its epoch had a
   position), carried forward from epoch to epoch; when the time of day moves back by more than
   half a day it has wrapped past midnight (the next day), when it moves forward by more than half
   a day it belongs to the day before;
3. else, for a receiver that never sent a date, the clock (``now_ms``), and the fix is flagged
   ``no_rmc_date``. A fix is an observation, so the day is the one that puts the time of day
   closest to the clock in the past, allowing ``future_tolerance_ms`` of clock skew: never a fix
   further ahead of the clock than that (a ``000000.00`` received at 14:00 is today's midnight,
   not tomorrow's).

Quality per DOMAIN.md: ``dead_reckoning`` for GGA quality 6 or mode ``E``; ``questionable`` with
a flag for RMC status V (``status_v``), no valid fix (``no_fix``), HDOP above the limit
(``high_hdop``), fewer satellites than the minimum (``low_sats``), GGA quality 3/7/8
(``gga_quality_N``); ``good`` otherwise. Such fixes are kept; only impossible values are dropped
and counted (a position outside the globe drops the fix; an impossible speed, course or
altitude drops just that value).
"""

from __future__ import annotations

import functools
import operator
from collections import deque
from typing import Final

import pynmea2

import wire

__all__ = ["TALKERS", "NmeaDecoder"]

#: Satellite talkers: GPS, GLONASS, Galileo, combined, BeiDou (both spellings). Any valid
#: talker is accepted unless ``NmeaDecoder(talkers=...)`` restricts them, e.g. to these.
TALKERS: Final = frozenset({"GP", "GL", "GA", "GN", "BD", "GB"})
_USED: Final = frozenset({"GGA", "RMC", "VTG", "GSA", "GNS", "GLL"})
_USED_FIELDS: Final = frozenset(f"{kind},".encode() for kind in _USED)
_KNOT_KMH: Final = 1.852
_DAY_MS: Final = 86_400_000
_HALF_DAY_MS: Final = _DAY_MS // 2
_EPOCH_ORDINAL: Final = 719_163  # date(1970, 1, 1).toordinal()
_VALID_GGA: Final = frozenset({1, 2, 4, 5})
_OK_MODES: Final = frozenset({"A", "D", "P", "R", "F"})
_RANK_GGA, _RANK_GNS, _RANK_RMC, _RANK_GLL = 4, 3, 2, 1
#: Epochs ended the same way, in a row, before the decoder trusts the receiver's cycle.
_LEARN_EPOCHS: Final = 3
#: Times of the last fixes remembered to drop an epoch repeated by the receiver.
_RECENT_FIXES: Final = 8
#: Talkers and skipped types counted by name at most (a feed carries a handful); noise that
#: passes the checksum must not grow the tables without bound.
_MAX_NAMES: Final = 32


class _Epoch:
    """What the sentences of one epoch said so far."""

    __slots__ = (
        "alt_m",
        "counts",
        "course",
        "date_days",
        "fix_type",
        "gga_quality",
        "hdop",
        "last",
        "lat",
        "lon",
        "mode",
        "pdop",
        "pos_rank",
        "sats",
        "seen",
        "speed_kmh",
        "status",
        "tod_ms",
        "vdop",
    )

    def __init__(self) -> None:
        self.tod_ms: int | None = None
        self.date_days: int | None = None
        self.lat: float | None = None
        self.lon: float | None = None
        self.pos_rank = 0
        self.gga_quality: int | None = None
        self.sats: int | None = None
        self.hdop: float | None = None
        self.alt_m: float | None = None
        self.status: str | None = None
        self.mode: str | None = None
        self.speed_kmh: float | None = None
        self.course: float | None = None
        self.fix_type: int | None = None
        self.pdop: float | None = None
        self.vdop: float | None = None
        self.seen: set[str] = set()
        #: sentences applied per type, and the type of the last one
        self.counts: dict[str, int] = {}
        self.last = ""


def _float(text: str) -> float | None:
    return float(text) if text else None


def _int(text: str) -> int | None:
    return int(text) if text else None


def _tod_ms(text: str) -> int | None:
    """``hhmmss[.sss]`` -> milliseconds of the day (``None`` if empty)."""
    if not text:
        return None
    if len(text) < 6 or not text[:6].isdigit():
        raise ValueError(f"bad time {text!r}")
    hours, minutes, seconds = int(text[0:2]), int(text[2:4]), float(text[4:])
    if hours > 23 or minutes > 59 or seconds >= 61.0:
        raise ValueError(f"bad time {text!r}")
    return (hours * 3600 + minutes * 60) * 1000 + round(seconds * 1000)


def _date_days(text: str) -> int | None:
    """``ddmmyy`` -> days since 1970-01-01 (years 2000-2099)."""
    if not text:
        return None
    if len(text) != 6 or not text.isdigit():
        raise ValueError(f"bad date {text!r}")
    day, month, year = int(text[0:2]), int(text[2:4]), 2000 + int(text[4:6])
    # days_from_civil (Howard Hinnant), avoids building datetime objects per sentence.
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError(f"bad date {text!r}")
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _checksum_error(sentence: bytes) -> str | None:
    """Why the ``*hh`` checksum of ``$...*hh`` does not hold (as pynmea2 would say), or ``None``."""
    star = sentence.rfind(b"*")
    if star < 0:
        return "no_checksum"
    try:
        expected = int(sentence[star + 1 :], 16) if len(sentence) == star + 3 else -1
    except ValueError:
        expected = -1
    if expected < 0:
        return "malformed"
    return (
        None if functools.reduce(operator.xor, sentence[1:star], 0) == expected else "bad_checksum"
    )


def _day_shift(last_tod_ms: int, tod_ms: int) -> int:
    """Days from the epoch at ``last_tod_ms`` to the one at ``tod_ms``: the nearer of -1, 0, +1."""
    if tod_ms < last_tod_ms - _HALF_DAY_MS:
        return 1  # the time of day wrapped past midnight
    if tod_ms > last_tod_ms + _HALF_DAY_MS:
        return -1  # a late epoch of the day before
    return 0


def _coord(value: str, hemi: str, negative: str) -> float | None:
    """``dddmm.mmmm`` + hemisphere -> signed degrees."""
    if not value:
        return None
    number = float(value)
    degrees = int(number // 100)
    result = degrees + (number - degrees * 100) / 60.0
    return -result if hemi == negative else result


class NmeaDecoder:
    """Decode the NMEA sentences of one receiver into fixes, one per epoch.

    Args:
        asset: asset id written into every fix.
        hdop_limit: fixes with a larger HDOP are flagged ``high_hdop``.
        min_sats: fixes with fewer satellites are flagged ``low_sats``.
        talkers: accepted talker ids; ``None`` (the default) accepts any valid talker.
        future_tolerance_ms: clock skew allowed when the date comes from the clock: no such
            fix is dated further ahead of ``now_ms`` than this (see the module docstring).
    """

    def __init__(
        self,
        *,
        asset: str,
        hdop_limit: float = 5.0,
        min_sats: int = 4,
        talkers: frozenset[str] | None = None,
        future_tolerance_ms: int = 60_000,
    ) -> None:
        self.asset = asset
        self.hdop_limit = hdop_limit
        self.min_sats = min_sats
        self.talkers = talkers
        self.future_tolerance_ms = future_tolerance_ms
        #: reason -> count of rejected sentences or values.
        self.errors: dict[str, int] = {}
        self._skipped_types: dict[bytes, int] = {}
        #: why (``rmc_status_v``, ``gga_quality_0``, ...) -> position reports without a position.
        self.no_position: dict[str, int] = {}
        self._counters: dict[str, int] = {}
        self._talkers: dict[bytes, int] = {}
        self._sentences = 0
        self._recent: deque[int] = deque(maxlen=_RECENT_FIXES)
        self._open: _Epoch | None = None
        self._next: _Epoch | None = None
        self._prev_type = ""
        self._prev_went_next = False
        self._last_date_days: int | None = None
        self._last_tod_ms = 0
        # The receiver's cycle, learned from epochs ended by a time change: (last sentence
        # type, the count of every type). Once seen _LEARN_EPOCHS times in a row, an epoch
        # that matches it is emitted at its last sentence.
        self._pattern: tuple[str, dict[str, int]] | None = None
        self._pattern_hits = 0
        self._closed_tod: int | None = None

    @property
    def counters(self) -> dict[str, int]:
        """sentences, ignored_sentences, epochs, epochs_without_position, fixes, ... and the
        valid sentences per talker as ``talker.<id>`` (``talker.IN``; ``other_talkers`` past a
        few dozen)."""
        talkers = {f"talker.{t.decode()}": n for t, n in self._talkers.items()}
        return {"sentences": self._sentences, **self._counters, **talkers}

    @property
    def skipped(self) -> dict[str, int]:
        """Sentence type (``GSV``, ``TXT``, a proprietary address such as ``PGRMZ``) -> valid
        sentences not used; past a few dozen types the rest count as ``other``."""
        return {kind.decode("ascii", "replace"): n for kind, n in self._skipped_types.items()}

    def _count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def feed(self, sentence: bytes, *, now_ms: int) -> wire.Fix | None:
        """Take one framed sentence; return the fix of the previous epoch when it completes.

        Args:
            sentence: one sentence as returned by the framer (tag block allowed).
            now_ms: current UTC time in epoch ms (the date of receivers without RMC).
        """
        self._sentences += 1
        if sentence[:1] == b"\\":
            sentence = sentence[sentence.find(b"\\", 1) + 1 :]
        if sentence[:1] != b"$":
            self._count(self.errors, "not_nmea")
            return None
        if sentence[1:2] == b"P" or (sentence[3:7] not in _USED_FIELDS and sentence[6:7] == b","):
            # GSV, TXT, proprietary ...: not used, so not worth parsing.
            self._skip(sentence)
            return None
        try:
            msg = pynmea2.parse(sentence.decode("ascii"), check=True)
        except pynmea2.ChecksumError as exc:
            missing = "missing" in str(exc)
            self._count(self.errors, "no_checksum" if missing else "bad_checksum")
            return None
        except pynmea2.SentenceTypeError:
            self._skipped(sentence)
            return None
        except (pynmea2.ParseError, ValueError, UnicodeDecodeError):
            self._count(self.errors, "malformed")
            return None
        kind: str = getattr(msg, "sentence_type", "")
        if kind not in _USED or not isinstance(msg, pynmea2.TalkerSentence):
            self._skipped(sentence)  # e.g. a query, ``$CCGPQ,GGA``
            return None
        if not self._talker(sentence[1:3]):
            self._count(self.errors, "unsupported_talker")
            return None
        try:
            return self._merge(kind, msg.data, now_ms)
        except (ValueError, IndexError):
            self._count(self.errors, "bad_field")
            return None

    def _talker(self, talker: bytes) -> bool:
        """Whether ``talker`` is valid (and accepted); count it if so."""
        count = self._talkers.get(talker)
        if count is not None:  # seen before, so valid and accepted
            self._talkers[talker] = count + 1
            return True
        # bytes.isalnum is ASCII only; upper() == itself rules out lower case letters.
        if not (talker.isalnum() and talker.upper() == talker):
            return False
        if self.talkers is not None and talker.decode() not in self.talkers:
            return False
        if len(self._talkers) < _MAX_NAMES:
            self._talkers[talker] = 1
        else:
            self._count(self._counters, "other_talkers")
        return True

    def _skip(self, sentence: bytes) -> None:
        """A sentence not parsed: counted by type if its checksum holds, else as an error."""
        error = _checksum_error(sentence)
        if error is not None:
            self._count(self.errors, error)
        else:
            self._skipped(sentence)

    def _skipped(self, sentence: bytes) -> None:
        """Count a valid sentence of a type not used, by type (and by talker)."""
        self._count(self._counters, "ignored_sentences")
        end = sentence.find(b",")
        address = sentence[1:end] if end > 0 else sentence[1:].split(b"*", 1)[0]
        if address[:1] == b"P":
            kind = address[:16]
        else:
            self._talker(address[:2])
            kind = address[2:16]
        table = self._skipped_types
        count = table.get(kind)
        if count is not None:
            table[kind] = count + 1
        elif len(table) < _MAX_NAMES:
            table[kind] = 1
        else:
            table[b"other"] = table.get(b"other", 0) + 1

    def flush(self, *, now_ms: int) -> wire.Fix | None:
        """End of input: complete the open epoch."""
        epoch, self._open, self._next = self._open, None, None
        return self._finish(epoch, now_ms) if epoch is not None else None

    def _merge(self, kind: str, data: list[str], now_ms: int) -> wire.Fix | None:
        tod = _tod_ms(data[4] if kind == "GLL" else data[0]) if kind not in ("VTG", "GSA") else None
        done: wire.Fix | None = None
        if tod is None:
            epoch = self._untimed_target(kind)
        else:
            if tod == self._closed_tod:
                # A sentence of the epoch just emitted, arriving late (or after the learned
                # cycle said the epoch was over): dropped, never a second fix of that time.
                self._count(self._counters, "late_sentences")
                self._pattern, self._pattern_hits = None, 0
                return None
            self._prev_went_next = False
            current = self._open
            if current is None or (current.tod_ms is not None and current.tod_ms != tod):
                if current is not None:
                    done = self._finish(current, now_ms)
                    self._learn(current)
                self._closed_tod = current.tod_ms if current is not None else self._closed_tod
                current = self._next if self._next is not None else _Epoch()
                self._open, self._next = current, None
            current.tod_ms = tod
            epoch = current
        self._prev_type = kind
        try:
            _APPLY[kind](self, epoch, data)
        except (ValueError, IndexError):
            # This sentence is lost, not the epoch it completed (``done``) nor what its
            # other fields and sentences said.
            self._count(self.errors, "bad_field")
        epoch.seen.add(kind)
        epoch.counts[kind] = epoch.counts.get(kind, 0) + 1
        epoch.last = kind
        if (
            self._pattern_hits >= _LEARN_EPOCHS
            and done is None
            and epoch is self._open
            and self._closes(epoch)
        ):
            # The receiver's cycle is known and this was its last sentence: emit now rather
            # than when the next epoch's first sentence arrives.
            self._closed_tod = epoch.tod_ms
            self._open, self._next = self._next, None
            self._prev_went_next = True  # a repeat of this type belongs to the next epoch
            self._count(self._counters, "epochs_closed_early")
            return self._finish(epoch, now_ms)
        return done

    def _learn(self, epoch: _Epoch) -> None:
        """Note how an epoch that ended at a time change ended (its last sentence and set)."""
        pattern = (epoch.last, dict(epoch.counts))
        if pattern == self._pattern:
            self._pattern_hits += 1
        else:
            self._pattern, self._pattern_hits = pattern, 1

    def _closes(self, epoch: _Epoch) -> bool:
        """Whether ``epoch`` now holds exactly what the learned cycle holds when it ends."""
        pattern = self._pattern
        if pattern is None or self._pattern_hits < _LEARN_EPOCHS or epoch.tod_ms is None:
            return False
        return epoch.last == pattern[0] and epoch.counts == pattern[1]

    def _untimed_target(self, kind: str) -> _Epoch:
        """Where a sentence without time goes: the open epoch, or the next one."""
        repeated = kind == self._prev_type
        to_next = (
            self._prev_went_next
            if repeated
            else not (self._open is not None and kind not in self._open.seen)
        )
        to_next = to_next or self._open is None
        self._prev_went_next = to_next
        if not to_next:
            assert self._open is not None
            return self._open
        if self._next is None:
            self._next = _Epoch()
        return self._next

    # -- per sentence type ------------------------------------------------------------------

    def _position(self, epoch: _Epoch, rank: int, data: list[str], at: int) -> None:
        if rank <= epoch.pos_rank or not data[at] or not data[at + 2]:
            return
        epoch.lat = _coord(data[at], data[at + 1], "S")
        epoch.lon = _coord(data[at + 2], data[at + 3], "W")
        epoch.pos_rank = rank

    def _without_position(self, why: str | None, data: list[str], at: int) -> None:
        """Count a position report that says it has no fix (``why``) or has no lat/lon."""
        if why is None and (not data[at] or not data[at + 2]):
            why = "empty_position"
        if why is not None:
            self._count(self.no_position, why)
            self._count(self._counters, "reports_without_position")

    def _gga(self, epoch: _Epoch, data: list[str]) -> None:
        self._position(epoch, _RANK_GGA, data, 1)
        epoch.gga_quality = _int(data[5])
        epoch.sats = _int(data[6])
        epoch.hdop = _float(data[7])
        epoch.alt_m = _float(data[8])
        self._without_position("gga_quality_0" if epoch.gga_quality == 0 else None, data, 1)

    def _gns(self, epoch: _Epoch, data: list[str]) -> None:
        self._position(epoch, _RANK_GNS, data, 1)
        if data[5] and epoch.mode is None:
            epoch.mode = "E" if "E" in data[5] else data[5][0]
        if epoch.sats is None:
            epoch.sats = _int(data[6])
        if epoch.hdop is None:
            epoch.hdop = _float(data[7])
        if epoch.alt_m is None:
            epoch.alt_m = _float(data[8])
        no_fix = bool(data[5]) and not data[5].strip("N")  # "N" per constellation: no fix
        self._without_position("gns_mode_n" if no_fix else None, data, 1)

    def _rmc(self, epoch: _Epoch, data: list[str]) -> None:
        self._position(epoch, _RANK_RMC, data, 2)
        epoch.status = data[1] or None
        knots = _float(data[6])
        if knots is not None:
            epoch.speed_kmh = knots * _KNOT_KMH
        course = _float(data[7])
        if course is not None:
            epoch.course = course
        epoch.date_days = _date_days(data[8])
        if epoch.date_days is not None and epoch.tod_ms is not None:
            # The receiver's date, even if this epoch has no position to date.
            self._last_date_days, self._last_tod_ms = epoch.date_days, epoch.tod_ms
        if len(data) > 11 and data[11]:
            epoch.mode = data[11]
        self._without_position("rmc_status_v" if data[1] == "V" else None, data, 2)

    def _vtg(self, epoch: _Epoch, data: list[str]) -> None:
        if epoch.course is None:
            epoch.course = _float(data[0])
        if epoch.speed_kmh is None:
            kmh = _float(data[6]) if len(data) > 6 else None
            knots = _float(data[4])
            epoch.speed_kmh = kmh if kmh is not None else (knots * _KNOT_KMH if knots else knots)

    def _gsa(self, epoch: _Epoch, data: list[str]) -> None:
        if epoch.fix_type is None:
            epoch.fix_type = _int(data[1])
        if len(data) > 16:
            if epoch.pdop is None:
                epoch.pdop = _float(data[14])
            if epoch.hdop is None:
                epoch.hdop = _float(data[15])
            if epoch.vdop is None:
                epoch.vdop = _float(data[16])

    def _gll(self, epoch: _Epoch, data: list[str]) -> None:
        if data[5] == "A" or epoch.pos_rank == 0:
            self._position(epoch, _RANK_GLL, data, 0)
        if epoch.status is None and data[5]:
            epoch.status = data[5]
        if len(data) > 6 and data[6] and epoch.mode is None:
            epoch.mode = data[6]  # NMEA 2.3 mode indicator (E: dead reckoning)
        self._without_position("gll_status_v" if data[5] == "V" else None, data, 0)

    # -- the fix ----------------------------------------------------------------------------

    def _finish(self, epoch: _Epoch, now_ms: int) -> wire.Fix | None:
        self._count(self._counters, "epochs")
        if epoch.lat is None or epoch.lon is None or epoch.tod_ms is None:
            self._count(self._counters, "epochs_without_position")
            return None
        if not (-90.0 <= epoch.lat <= 90.0 and -180.0 <= epoch.lon <= 180.0):
            self._count(self.errors, "impossible_position")
            return None
        flags: list[str] = []
        ts = self._timestamp(epoch, now_ms, flags)
        if ts in self._recent:
            self._count(self._counters, "duplicate_epochs")
            return None
        self._recent.append(ts)
        quality = self._quality(epoch, flags)
        self._count(self._counters, "fixes")
        return wire.Fix(
            seq=0,
            ts=ts,
            asset=self.asset,
            lat=epoch.lat,
            lon=epoch.lon,
            speed_kmh=self._checked(epoch.speed_kmh, 0.0, 2000.0, "impossible_speed"),
            course=self._course(epoch.course),
            alt_m=self._checked(epoch.alt_m, -1000.0, 20000.0, "impossible_altitude"),
            hdop=self._checked(epoch.hdop, 0.0, 100.0, "impossible_hdop"),
            pdop=self._checked(epoch.pdop, 0.0, 100.0, "impossible_pdop"),
            vdop=self._checked(epoch.vdop, 0.0, 100.0, "impossible_vdop"),
            fix_type=epoch.fix_type if epoch.fix_type in (1, 2, 3) else None,
            sats=self._sats(epoch.sats),
            quality=quality,
            flags=tuple(flags),
            source="gnss",
        )

    def _checked(self, value: float | None, low: float, high: float, reason: str) -> float | None:
        if value is None or low <= value <= high:
            return value
        self._count(self.errors, reason)
        return None

    def _sats(self, sats: int | None) -> int | None:
        if sats is None or 0 <= sats <= 255:
            return sats
        self._count(self.errors, "impossible_sats")
        return None

    def _course(self, course: float | None) -> float | None:
        if course is None:
            return None
        if course == 360.0:
            return 0.0
        return self._checked(course, 0.0, 359.999999, "impossible_course")

    def _timestamp(self, epoch: _Epoch, now_ms: int, flags: list[str]) -> int:
        tod = epoch.tod_ms
        assert tod is not None
        days = epoch.date_days
        if days is None and self._last_date_days is not None:
            days = self._last_date_days + _day_shift(self._last_tod_ms, tod)
        if days is None:
            # Never a date from the receiver: the latest day that does not put the fix more
            # than the tolerance ahead of the clock.
            flags.append("no_rmc_date")
            days = (now_ms + self.future_tolerance_ms - tod) // _DAY_MS
        else:
            self._last_date_days, self._last_tod_ms = days, tod
        return days * _DAY_MS + tod

    def _quality(self, epoch: _Epoch, flags: list[str]) -> wire.FixQuality:
        gga = epoch.gga_quality
        if gga == 6 or epoch.mode == "E":
            flags.append("dead_reckoning")
            return "dead_reckoning"
        start = len(flags)
        if epoch.status == "V":
            flags.append("status_v")
        valid = (
            epoch.status == "A" or gga in _VALID_GGA or (gga is None and epoch.mode in _OK_MODES)
        )
        if not valid or epoch.fix_type == 1:
            flags.append("no_fix")
        if gga is not None and gga not in _VALID_GGA and gga != 0:
            flags.append(f"gga_quality_{gga}")
        if epoch.hdop is not None and epoch.hdop > self.hdop_limit:
            flags.append("high_hdop")
        if epoch.sats is not None and epoch.sats < self.min_sats:
            flags.append("low_sats")
        return "questionable" if len(flags) > start else "good"


_APPLY: Final = {
    "GGA": NmeaDecoder._gga,
    "GNS": NmeaDecoder._gns,
    "RMC": NmeaDecoder._rmc,
    "VTG": NmeaDecoder._vtg,
    "GSA": NmeaDecoder._gsa,
    "GLL": NmeaDecoder._gll,
}
