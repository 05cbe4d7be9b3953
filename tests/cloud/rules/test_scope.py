"""Whose zones and lots watch whom: a shared one (no enterprise) every enterprise's assets,
another only its own enterprise's (shared/RULES.md; DOMAIN.md: enterprises draw their own zones
and lots, the regulator the shared ones).

Two trucks, ``a`` of enterprise e1 and ``b`` of e2, drive the same line through the square
(0, 0)-(400, 400) along y = 200; times are seconds after T0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

import wire
from cloud.models import Asset, GeoObject
from cloud.rules.engine import Engine
from cloud.rules.events import Event
from cloud.rules.state import AssetState
from cloud.rules.world import World
from tests.cloud.rules.scenario import T0, brief, fix, lot, run, zone

BOX = (0.0, 0.0, 400.0, 400.0)
PASS = [(0, -250), (10, -150), (20, -50), (30, 50), (40, 150), (50, 250), (60, 350), (70, 450),
        (80, 550)]  # fmt: skip
Brief = list[tuple[str, str, str, float]]


def two_enterprises(*objects: GeoObject, b_enterprise: str = "e2") -> World:
    assets = [
        Asset(id="a", enterprise_id="e1", asset_class="hazmat_truck"),
        Asset(id="b", enterprise_id=b_enterprise, asset_class="hazmat_truck"),
    ]
    return World.build(objects, assets)


def owned(obj: GeoObject, enterprise_id: str | None) -> GeoObject:
    return msgspec.structs.replace(obj, enterprise_id=enterprise_id)


def both_pass(rows: Sequence[tuple[float, float]] = PASS) -> list[wire.Fix]:
    return [fix(t, x, 200, asset=asset) for t, x in rows for asset in ("a", "b")]


def by_asset(events: Iterable[Event], prefix: str) -> dict[str, Brief]:
    found: dict[str, Brief] = {"a": [], "b": []}
    for event in events:
        if event.kind.startswith(prefix):
            found[event.asset].extend(brief([event]))
    return found


def test_a_shared_zone_watches_every_enterprise() -> None:
    events, _ = run(two_enterprises(zone("z", BOX, trigger="enter")), both_pass(), batch=4)
    expected = [("zone.enter", "z", "open", 30)]
    assert by_asset(events, "zone.") == {"a": expected, "b": expected}


def test_an_enterprises_zone_watches_only_its_own_assets() -> None:
    the_world = two_enterprises(owned(zone("z", BOX, trigger="enter"), "e1"))
    events, _ = run(the_world, both_pass(), batch=4)
    assert by_asset(events, "zone.") == {"a": [("zone.enter", "z", "open", 30)], "b": []}


def test_an_enterprises_zone_is_not_crossed_by_another_enterprises_truck() -> None:
    # one fix before and one after the square, 400 m apart: a passage for e1's truck only
    rows = [(0, -300), (20, -100), (40, 500)]
    the_world = two_enterprises(owned(zone("z", BOX, trigger="enter"), "e1"))
    events, _ = run(the_world, both_pass(rows), batch=2)
    found = by_asset(events, "zone.")
    assert found["b"] == []
    assert [b[:3] for b in found["a"]] == [("zone.crossed", "z", "open")]


def _stop(asset: str) -> list[wire.Fix]:
    """Stopped in the lot (1000, 0)-(1300, 300) for 20 min."""
    return [fix(60.0 * i, 1150, 150, speed=0.0, asset=asset) for i in range(21)]


def test_another_enterprises_lot_is_not_a_designated_lot_for_a_truck() -> None:
    the_world = two_enterprises(owned(lot("L", (1000, 0, 1300, 300)), "e1"))
    events, _ = run(the_world, sorted(_stop("a") + _stop("b"), key=lambda f: f.ts), batch=2)
    found = by_asset(events, "parking.")
    assert found["a"] == []
    assert found["b"] == [("parking.outside_lot", "b", "open", 600)]


def test_a_shared_lot_serves_every_enterprise() -> None:
    the_world = two_enterprises(lot("L", (1000, 0, 1300, 300)))
    events, _ = run(the_world, sorted(_stop("a") + _stop("b"), key=lambda f: f.ts), batch=2)
    assert by_asset(events, "parking.") == {"a": [], "b": []}


def test_a_truck_that_changes_enterprise_leaves_the_old_ones_zone() -> None:
    """Rule state is not wiped when an asset changes hands: the old enterprise's zone no longer
    applies, so the next fixes close it as an exit would (no alert stays open for the old
    owner's zone)."""
    private = owned(zone("z", BOX, trigger="forbidden"), "e2")
    before = two_enterprises(private)
    events, states = run(before, [fix(t, x, 200, asset="b") for t, x in PASS[:6]])
    assert by_asset(events, "zone.")["b"] == [("zone.forbidden", "z", "open", 30)]
    after = Engine(two_enterprises(private, b_enterprise="e1"))
    later: list[Event] = []
    current: dict[str, AssetState] = dict(states)
    for t in (100, 110, 120):
        outcome = after.evaluate(
            {"b": [fix(t, 200, 200, asset="b")]}, current, now_ms=T0 + t * 1000
        )
        current.update(outcome.states)
        later += outcome.events
    closed = by_asset(later, "zone.")["b"]
    assert [b[:3] for b in closed] == [("zone.forbidden", "z", "close")]
    assert "z" not in current["b"].zones
