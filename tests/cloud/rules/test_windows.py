"""Time windows in Beijing time: daily across midnight, dated seasons across their boundaries and
across new year, the next change and the starts in a span. Every time below is Beijing wall time
(``bj``), turned into UTC epoch ms as the rules see them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cloud.rules.windows import (
    BEIJING,
    Window,
    WindowError,
    Windows,
    local_day,
    local_tod_ms,
)

MINUTE = 60_000
HOUR = 3_600_000


def bj(text: str) -> int:
    """``"2026-07-01 22:00"`` (Beijing) -> UTC epoch ms."""
    moment = dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=BEIJING)
    return int(moment.timestamp() * 1000)


def utc(text: str) -> int:
    moment = dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


NIGHT = Window.parse({"daily": "22:00-06:00"})
MORATORIUM = Window.parse({"from": "05-01 12:00", "to": "09-16 12:00"})
WINTER = Window.parse({"from": "12-01", "to": "02-28 18:00"})


@pytest.mark.parametrize(
    ("when", "active"),
    [
        ("2026-07-01 21:59", False),
        ("2026-07-01 22:00", True),  # start included
        ("2026-07-01 23:59", True),
        ("2026-07-02 00:00", True),  # across midnight
        ("2026-07-02 05:59", True),
        ("2026-07-02 06:00", False),  # end excluded
        ("2026-07-02 12:00", False),
    ],
)
def test_daily_window_across_midnight(when: str, active: bool) -> None:
    assert NIGHT.active(bj(when)) is active
    assert NIGHT.active(bj(when) - 1) is (when.endswith(("06:00", "23:59", "00:00", "05:59")))


@pytest.mark.parametrize(
    "spec",
    [{"daily": "22:00-06:00"}, {"from": "22:00", "to": "06:00"}, {"from": " 22:00", "to": "06:00"}],
)
def test_both_forms_of_a_daily_window_are_one_window(spec: dict[str, str]) -> None:
    window = Window.parse(spec)
    assert window == NIGHT
    assert window.to_spec() == {"daily": "22:00-06:00"}


def test_a_daily_window_within_the_day() -> None:
    day = Window.parse({"from": "07:30", "to": "09:00"})
    table = [("07:29", False), ("07:30", True), ("08:59", True), ("09:00", False)]
    assert [day.active(bj(f"2026-07-01 {hhmm}")) for hhmm, _ in table] == [a for _, a in table]


def test_windows_are_read_in_beijing_time_not_utc() -> None:
    # 22:00 Beijing is 14:00 UTC; 22:00 UTC is 06:00 Beijing the next morning.
    assert bj("2026-07-01 22:00") == utc("2026-07-01 14:00")
    assert NIGHT.active(utc("2026-07-01 14:00"))
    assert not NIGHT.active(utc("2026-07-01 13:59"))
    assert not NIGHT.active(utc("2026-07-01 22:00"))
    assert NIGHT.active(utc("2026-07-01 21:59"))


def test_local_day_and_time_of_day_are_beijing_ones() -> None:
    # 01:00 Beijing on 07-02 is still 07-01 in UTC: the daily total belongs to 07-02.
    one_am = bj("2026-07-02 01:00")
    assert local_tod_ms(one_am) == HOUR
    assert local_day(one_am) == (dt.date(2026, 7, 2) - dt.date(1970, 1, 1)).days
    assert local_day(one_am - HOUR - 1) == local_day(one_am) - 1


@pytest.mark.parametrize(
    ("when", "active"),
    [
        ("2026-05-01 11:59", False),
        ("2026-05-01 12:00", True),  # the moratorium begins at noon on 1 May
        ("2026-07-01 10:00", True),
        ("2026-09-16 11:59", True),
        ("2026-09-16 12:00", False),  # and ends at noon on 16 September
        ("2026-12-31 23:59", False),
        ("2027-01-01 00:00", False),
        ("2027-05-01 11:59", False),
        ("2027-05-01 12:00", True),  # every year
        ("2025-09-16 11:59", True),
    ],
)
def test_season_boundaries(when: str, active: bool) -> None:
    assert MORATORIUM.active(bj(when)) is active


@pytest.mark.parametrize(
    ("when", "active"),
    [
        ("2026-11-30 23:59", False),
        ("2026-12-01 00:00", True),
        ("2026-12-31 23:59", True),
        ("2027-01-01 00:00", True),  # across new year
        ("2027-02-28 17:59", True),
        ("2027-02-28 18:00", False),
        ("2027-06-01 00:00", False),
        ("2028-02-28 17:59", True),  # a leap year: the end is 28 February all the same
        ("2028-02-29 00:00", False),
    ],
)
def test_season_across_new_year(when: str, active: bool) -> None:
    assert WINTER.active(bj(when)) is active


def test_a_season_from_29_february_starts_on_1_march_in_other_years() -> None:
    leap = Window.parse({"from": "02-29", "to": "03-10"})
    assert leap.active(bj("2028-02-29 00:00"))
    assert not leap.active(bj("2027-02-28 23:59"))
    assert leap.active(bj("2027-03-01 00:00"))


@pytest.mark.parametrize(
    ("window", "after", "change"),
    [
        (NIGHT, "2026-07-01 10:00", "2026-07-01 22:00"),
        (NIGHT, "2026-07-01 22:00", "2026-07-02 06:00"),  # strictly after
        (NIGHT, "2026-07-02 03:00", "2026-07-02 06:00"),
        (NIGHT, "2026-07-02 06:00", "2026-07-02 22:00"),
        (MORATORIUM, "2026-03-01 00:00", "2026-05-01 12:00"),
        (MORATORIUM, "2026-05-01 12:00", "2026-09-16 12:00"),
        (MORATORIUM, "2026-07-01 10:00", "2026-09-16 12:00"),
        (MORATORIUM, "2026-09-16 12:00", "2027-05-01 12:00"),
        (MORATORIUM, "2026-12-31 23:59", "2027-05-01 12:00"),
        (WINTER, "2026-07-01 10:00", "2026-12-01 00:00"),
        (WINTER, "2026-12-24 00:00", "2027-02-28 18:00"),
        (WINTER, "2027-01-05 00:00", "2027-02-28 18:00"),
    ],
)
def test_next_change(window: Window, after: str, change: str) -> None:
    assert window.next_change(bj(after)) == bj(change)
    assert window.active(bj(change)) is not window.active(bj(change) - 1)


def test_next_change_of_several_windows_and_of_none() -> None:
    windows = Windows.parse([{"daily": "22:00-06:00"}, {"daily": "11:00-13:00"}])
    assert windows.next_change(bj("2026-07-01 10:00")) == bj("2026-07-01 11:00")
    assert windows.next_change(bj("2026-07-01 12:00")) == bj("2026-07-01 13:00")
    assert windows.next_change(bj("2026-07-01 13:00")) == bj("2026-07-01 22:00")
    assert Windows.parse(None).next_change(bj("2026-07-01 10:00")) is None
    assert Windows.parse([]).always
    assert Windows.parse(None).active(0)


def test_starts_between_counts_each_start_in_the_span() -> None:
    night = Windows((NIGHT,))
    starts = night.starts_between(bj("2026-07-01 10:00"), bj("2026-07-04 10:00"))
    assert starts == [bj("2026-07-01 22:00"), bj("2026-07-02 22:00"), bj("2026-07-03 22:00")]
    # after excluded, until included
    assert night.starts_between(bj("2026-07-01 22:00"), bj("2026-07-02 22:00")) == [
        bj("2026-07-02 22:00")
    ]
    assert night.starts_between(bj("2026-07-01 23:00"), bj("2026-07-02 21:59")) == []


def test_starts_between_overlapping_windows_and_seasons() -> None:
    # 11:00 is no start: the morning window is already active then.
    overlapping = Windows.parse([{"daily": "08:00-12:00"}, {"daily": "11:00-14:00"}])
    span = (bj("2026-07-01 00:00"), bj("2026-07-01 23:59"))
    assert overlapping.starts_between(*span) == [bj("2026-07-01 08:00")]
    seasons = Windows((MORATORIUM,))
    assert seasons.starts_between(bj("2026-01-01 00:00"), bj("2028-01-01 00:00")) == [
        bj("2026-05-01 12:00"),
        bj("2027-05-01 12:00"),
    ]


def test_ends_between_finds_the_first_end_in_the_span() -> None:
    night = Windows((NIGHT,))
    assert night.ends_between(bj("2026-07-01 23:00"), bj("2026-07-02 12:00")) == bj(
        "2026-07-02 06:00"
    )
    assert night.ends_between(bj("2026-07-01 23:00"), bj("2026-07-02 05:59")) is None
    assert night.ends_between(bj("2026-07-01 10:00"), bj("2026-07-01 21:00")) is None
    # two windows that join up end only when the second does
    joined = Windows.parse([{"daily": "08:00-12:00"}, {"daily": "12:00-14:00"}])
    assert joined.ends_between(bj("2026-07-01 09:00"), bj("2026-07-01 23:00")) == bj(
        "2026-07-01 14:00"
    )
    assert Windows().ends_between(0, bj("2026-07-01 23:00")) is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"daily": "22:00-22:00"}, "equal"),
        ({"daily": "24:00-06:00"}, "HH:MM"),
        ({"daily": "2200-0600"}, "'2200' is not HH:MM"),
        ({"daily": 22}, "HH:MM-HH:MM"),
        ({"from": "22:00"}, "'from' and 'to'"),
        ({"from": "22:00", "to": 6}, "to: 6"),
        ({"from": "22:00", "to": None}, "to: None"),
        ({"from": "05-01 12:00", "to": "06:00"}, "to: '06:00'"),
        ({"from": "02-30", "to": "03-01"}, "not a day"),
        ({"from": "13-01", "to": "03-01"}, "MM-DD"),
        ("22:00-06:00", "an object"),
    ],
)
def test_unreadable_windows_are_named(spec: Any, words: str) -> None:
    with pytest.raises(WindowError, match=words):
        Window.parse(spec)


def test_windows_name_the_window_that_is_wrong() -> None:
    with pytest.raises(WindowError, match=r"windows\[1\]\.daily"):
        Windows.parse([{"daily": "22:00-06:00"}, {"daily": "bad"}])
    with pytest.raises(WindowError, match="a list"):
        Windows.parse("22:00-06:00")


def test_round_trip_through_the_api_form() -> None:
    for window in (NIGHT, MORATORIUM, WINTER):
        assert Window.parse(window.to_spec()) == window
