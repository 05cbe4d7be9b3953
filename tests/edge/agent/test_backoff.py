"""Reconnect backoff: exponential, capped, jittered."""

from __future__ import annotations

import pytest

from edge.forward import backoff_s


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (0, 0.0, 0.25),
        (0, 1.0, 0.5),
        (3, 1.0, 4.0),
        (10, 1.0, 30.0),
        (10, 0.0, 15.0),
        (500, 0.5, 22.5),
    ],
)
def test_backoff(attempt: int, rand: float, expected: float) -> None:
    delay = backoff_s(attempt, min_s=0.5, max_s=30.0, rand=lambda: rand)
    assert delay == pytest.approx(expected)
