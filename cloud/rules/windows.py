"""Time windows in Asia/Shanghai: daily (across midnight too) and dated seasons.

A zone, a ban or a rule may apply only inside windows: a hazmat night ban ``22:00-06:00``, a
fishing moratorium ``05-01 12:00`` to ``09-16 12:00`` every year. All times exchanged are UTC
epoch milliseconds; windows are read in Beijing time. Pure: no clock, values in, values out.

    daily  = Window.parse({"daily": "22:00-06:00"})      # or {"from": "22:00", "to": "06:00"}
    season = Window.parse({"from": "05-01 12:00", "to": "09-16 12:00"})
    season.active(ts_ms); season.next_change(ts_ms)
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

__all__ = [
    "BEIJING",
    "DAY_MS",
    "Window",
    "WindowError",
    "Windows",
    "daily_window",
    "day_start_ms",
    "local_day",
    "local_tod_ms",
]

BEIJING: Final = ZoneInfo("Asia/Shanghai")
DAY_MS: Final = 86_400_000
_HHMM: Final = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_MMDD_HHMM: Final = re.compile(
    r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(?: ([01][0-9]|2[0-3]):([0-5][0-9]))?$"
)


class WindowError(ValueError):
    """A window that cannot be read; the message names what is wrong."""


@lru_cache(maxsize=4096)
def _offset_ms(utc_day: int) -> int:
    """Beijing's offset from UTC on a UTC day (+8 h since 1991; zoneinfo says so for any day)."""
    moment = dt.datetime.fromtimestamp(utc_day * 86_400 + 43_200, tz=dt.UTC)
    offset = moment.astimezone(BEIJING).utcoffset()
    return int(offset.total_seconds() * 1000) if offset is not None else 8 * 3_600_000


def _local_ms(ts_ms: int) -> int:
    return ts_ms + _offset_ms(ts_ms // DAY_MS)


def local_tod_ms(ts_ms: int) -> int:
    """Milliseconds since Beijing midnight."""
    return _local_ms(ts_ms) % DAY_MS


def local_day(ts_ms: int) -> int:
    """The Beijing calendar day, as days since 1970-01-01 (for daily totals)."""
    return _local_ms(ts_ms) // DAY_MS


def day_start_ms(day: int) -> int:
    """UTC epoch ms of the Beijing midnight that starts ``day`` (see :func:`local_day`)."""
    return day * DAY_MS - _offset_ms(day - 1)  # (that midnight is 16:00 UTC the day before)


@lru_cache(maxsize=64)
def daily_window(start_h: float, end_h: float) -> Window | None:
    """The daily window from hour ``start_h`` to ``end_h`` (Beijing; ``None``: empty), made
    once: the night of the speed and fatigue rules, the small hours of coaches."""
    start, end = int(start_h * 60), int(end_h * 60)
    return None if start == end else Window(daily=True, start_min=start, end_min=end)


def _date_ms(year: int, month: int, day: int, minute: int) -> int:
    """UTC epoch ms of a Beijing month-day-minute; Feb 29 in another year is Mar 1."""
    try:
        moment = dt.datetime(year, month, day, tzinfo=BEIJING)
    except ValueError:
        moment = dt.datetime(year, month, 1, tzinfo=BEIJING) + dt.timedelta(days=day - 1)
    return int(moment.timestamp() * 1000) + minute * 60_000


def _minutes(text: Any, what: str) -> int:
    match = _HHMM.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise WindowError(f"{what}: {text!r} is not HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


@dataclass(frozen=True, slots=True)
class Window:
    """One window: daily (``start_min``..``end_min`` of each Beijing day, across midnight when
    the end is not after the start) or seasonal (``start``..``end`` as (month, day, minute) of
    each year, across new year when the end comes first)."""

    daily: bool
    start_min: int = 0
    end_min: int = 0
    start: tuple[int, int, int] = (1, 1, 0)
    end: tuple[int, int, int] = (1, 1, 0)

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Window:
        """``{"daily": "22:00-06:00"}`` (or ``{"from": "22:00", "to": "06:00"}``), or a season
        ``{"from": "05-01 12:00", "to": "09-16 12:00"}``.

        Raises:
            WindowError: naming the key and what is wrong.
        """
        if not isinstance(spec, Mapping):
            raise WindowError("a window is an object with 'daily', or 'from' and 'to'")
        if "daily" in spec:
            text = spec["daily"]
            if not isinstance(text, str) or text.count("-") != 1:
                raise WindowError(f"daily: {text!r} is not HH:MM-HH:MM")
            first, second = text.split("-")
            start, end = _minutes(first, "daily"), _minutes(second, "daily")
            if start == end:
                raise WindowError("daily: start and end are equal (an empty or whole day)")
            return cls(daily=True, start_min=start, end_min=end)
        if "from" in spec and "to" in spec:
            first, second = spec["from"], spec["to"]
            if isinstance(first, str) and _HHMM.fullmatch(first.strip()):  # every day
                start, end = _minutes(first, "from"), _minutes(second, "to")
                if start == end:
                    raise WindowError("from and to are equal (an empty or whole day)")
                return cls(daily=True, start_min=start, end_min=end)
            return cls(daily=False, start=_date(first, "from"), end=_date(second, "to"))
        raise WindowError("a window needs 'daily', or 'from' and 'to'")

    def to_spec(self) -> dict[str, str]:
        """The window as it is written in the API."""
        if self.daily:
            return {"daily": f"{_hhmm(self.start_min)}-{_hhmm(self.end_min)}"}
        return {"from": _mmdd(self.start), "to": _mmdd(self.end)}

    def active(self, ts_ms: int) -> bool:
        """Whether ``ts_ms`` lies inside the window (start included, end excluded)."""
        if self.daily:
            minute = local_tod_ms(ts_ms) // 60_000
            if self.start_min < self.end_min:
                return self.start_min <= minute < self.end_min
            return minute >= self.start_min or minute < self.end_min
        start, end = self._season_around(ts_ms)
        return start <= ts_ms < end

    def _season_around(self, ts_ms: int) -> tuple[int, int]:
        """The season (start, end) that contains ``ts_ms``, or the next one to start."""
        year = dt.datetime.fromtimestamp(ts_ms / 1000, tz=BEIJING).year
        for y in (year - 1, year):
            start = _date_ms(y, self.start[0], self.start[1], self.start[2])
            end_year = y if (self.end[:2], self.end[2]) > (self.start[:2], self.start[2]) else y + 1
            end = _date_ms(end_year, self.end[0], self.end[1], self.end[2])
            if ts_ms < end:
                return start, end
        start = _date_ms(year + 1, self.start[0], self.start[1], self.start[2])
        return start, start

    def next_change(self, ts_ms: int) -> int:
        """The first time after ``ts_ms`` at which :meth:`active` changes."""
        if self.daily:
            tod = local_tod_ms(ts_ms)
            day_start = ts_ms - tod
            edges = sorted({self.start_min * 60_000, self.end_min * 60_000})
            for edge in edges:
                if edge > tod:
                    return day_start + edge
            return day_start + DAY_MS + edges[0]
        start, end = self._season_around(ts_ms)
        if ts_ms < start:
            return start
        if start == end:  # before the next year's start
            return start
        return end


def _date(text: Any, what: str) -> tuple[int, int, int]:
    match = _MMDD_HHMM.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise WindowError(f"{what}: {text!r} is not MM-DD or MM-DD HH:MM")
    month, day = int(match.group(1)), int(match.group(2))
    minute = int(match.group(3) or 0) * 60 + int(match.group(4) or 0)
    if day > (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31):
        raise WindowError(f"{what}: {text!r} is not a day of the year")
    return month, day, minute


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _mmdd(when: tuple[int, int, int]) -> str:
    return f"{when[0]:02d}-{when[1]:02d} {_hhmm(when[2])}"


@dataclass(frozen=True, slots=True)
class Windows:
    """Any of several windows; none at all means always."""

    windows: tuple[Window, ...] = ()

    @classmethod
    def parse(cls, specs: Any) -> Windows:
        """A list of window specs (``None`` or empty: always)."""
        if specs is None:
            return cls()
        if not isinstance(specs, Sequence) or isinstance(specs, str):
            raise WindowError("windows is a list of windows")
        parsed = []
        for index, spec in enumerate(specs):
            try:
                parsed.append(Window.parse(spec))
            except WindowError as exc:
                raise WindowError(f"windows[{index}].{exc}") from exc
        return cls(tuple(parsed))

    @property
    def always(self) -> bool:
        """Whether there is no window (always active)."""
        return not self.windows

    def active(self, ts_ms: int) -> bool:
        """Whether ``ts_ms`` lies in any window (always when there is none)."""
        return not self.windows or any(w.active(ts_ms) for w in self.windows)

    def next_change(self, ts_ms: int) -> int | None:
        """The first time after ``ts_ms`` at which :meth:`active` may change (``None``: never)."""
        if not self.windows:
            return None
        return min(w.next_change(ts_ms) for w in self.windows)

    def ends_between(self, after_ms: int, until_ms: int) -> int | None:
        """The first time in ``(after_ms, until_ms]`` at which the windows go from active to
        inactive (``None``: none; overlapping windows that join up do not end)."""
        moment = after_ms
        while (change := self.next_change(moment)) is not None and change <= until_ms:
            if not self.active(change) and self.active(change - 1):
                return change
            moment = change
        return None

    def starts_between(self, after_ms: int, until_ms: int) -> list[int]:
        """Times in ``(after_ms, until_ms]`` at which the windows go from inactive to active."""
        starts: list[int] = []
        moment = after_ms
        while (change := self.next_change(moment)) is not None and change <= until_ms:
            if self.active(change) and not self.active(change - 1):
                bisect.insort(starts, change)
            moment = change
        return starts
