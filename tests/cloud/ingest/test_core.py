"""Pure ingest core: gap candidates, late/future marks and per-asset ordering."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import wire
from cloud.ingest.core import candidate_gaps, classify, is_future


def test_gap_candidates() -> None:
    assert candidate_gaps(None, [5, 6, 9]) == [(7, 8)]
    assert candidate_gaps(4, [5, 6]) == []
    assert candidate_gaps(2, [5, 6, 10]) == [(3, 4), (7, 9)]
    assert candidate_gaps(10, [3, 4, 12]) == [(11, 11)]  # 3, 4 fill an older gap
    assert candidate_gaps(10, []) == []


@given(st.sets(st.integers(0, 500), min_size=1), st.one_of(st.none(), st.integers(0, 500)))
def test_gap_candidates_cover_exactly_the_unseen_seqs_above_the_mark(
    seqs: set[int], high: int | None
) -> None:
    runs = candidate_gaps(high, sorted(seqs))
    covered = {q for a, b in runs for q in range(a, b + 1)}
    floor = min(seqs) if high is None else high + 1
    expected = {q for q in range(floor, max(seqs) + 1) if q not in seqs}
    assert covered == expected


def test_classify_marks_and_orders() -> None:
    t = 1_763_856_000_000
    items: list[tuple[str, str, wire.Item]] = [
        ("g", "e", wire.Fix(seq=3, ts=t + 30, asset="b", lat=0, lon=0)),
        ("g", "e", wire.Fix(seq=1, ts=t + 20, asset="a", lat=0, lon=0)),
        ("g", "e", wire.Fix(seq=2, ts=t + 10, asset="a", lat=0, lon=0)),
        ("g", "e", wire.Fix(seq=4, ts=t + 120_000, asset="a", lat=0, lon=0)),
        ("g", "e", wire.Reading(seq=5, ts=t - 5, site="s", point="p", value=1.0)),
        ("g", "e", wire.Alarm(seq=7, ts=t, state="raise", level="H", point="p")),
        ("g", "e", wire.Alarm(seq=6, ts=t, state="clear", level="H", point="p")),
    ]
    out = classify(
        items,
        recv_ms=t + 1000,
        future_tolerance_ms=60_000,
        latest_fix_ms={"a": t + 15, "b": t},
        latest_reading_ms={("e", "s", "p"): t},
    )
    assert [(r.item.asset, r.item.seq, r.late, r.future) for r in out.fixes] == [
        ("a", 2, True, False),
        ("a", 1, False, False),
        ("a", 4, False, True),
        ("b", 3, False, False),
    ]
    assert [r.late for r in out.readings] == [True]
    assert [r.item.seq for r in out.alarms] == [6, 7]
    assert len(out) == 7
    assert is_future(t + 61_000, t, tolerance_ms=60_000)
    assert not is_future(t + 60_000, t, tolerance_ms=60_000)
