"""What the rules hold now: an asset's rule state, a trip's progress, a lot's occupants.

Read from the live state (the per-asset rule states and lot members the rule service writes) and
explained with the rule service's world (names, route lengths, checkpoints); the views are made
by the pure :mod:`cloud.rules.view`. Scope as everywhere: another tenant's asset, trip or lot
answers 404; a shared lot shows everyone its occupants of the caller's enterprises by id and the
others as a count.
"""

from __future__ import annotations

import logging
from typing import Final

import msgspec
from fastapi import APIRouter

from cloud.api import schemas as out
from cloud.api.deps import CallerScope, IdPath, JsonResponse, Services, ServicesDep, not_found
from cloud.auth import Scope
from cloud.models import GeoObject
from cloud.rules import view
from cloud.rules.objects import LotSpec, ObjectError, read
from cloud.rules.state import AssetState, decode_state
from cloud.rules.world import World

__all__ = ["LotOccupant", "LotOccupants", "router"]

log = logging.getLogger(__name__)
router = APIRouter(default_response_class=JsonResponse)
_NO_WORLD: Final = World.build([], [], label="none")


class LotOccupant(msgspec.Struct):
    """An asset in a lot (see :class:`cloud.api.schemas.LotOccupantOut`)."""

    asset_id: str
    since_ms: int
    stay_s: float
    over_stay: bool


class LotOccupants(msgspec.Struct):
    """Who is in a lot (see :class:`cloud.api.schemas.LotOccupantsOut`)."""

    lot_id: str
    name: str
    capacity: int | None
    max_stay_s: float | None
    count: int
    over_capacity: bool
    others: int
    as_of_ms: int
    occupants: list[LotOccupant]


async def _world(services: Services) -> World:
    """The rule service's world, rebuilt first if the registry moved (checked at most every
    ``world_check_s``), so a name edited a moment ago shows."""
    if services.rules is None:
        return _NO_WORLD
    await services.rules.refresh()
    return services.rules.world


async def _state(services: Services, asset_id: str) -> AssetState:
    """An asset's rule state (a blank one if the rules have none)."""
    version, raw = (await services.live.get_rule_states([asset_id])).get(asset_id, (0, None))
    state = decode_state(raw)
    state.version = version
    return state


@router.get(
    "/assets/{asset_id}/rules",
    tags=["assets"],
    response_model=out.AssetRulesOut,
    responses=out.errors(404),
)
async def asset_rules(asset_id: IdPath, services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """An asset's current rule state: the zones and lots it is confirmed inside (with their
    open conditions), entries and exits not confirmed yet, its stop timer, its trip's
    progress, the time it has been evaluated to and the fixes the filters dropped."""
    if await services.store.get_asset(asset_id, enterprise_ids=scope.enterprise_ids) is None:
        not_found("asset", asset_id)
    world = await _world(services)
    state = await _state(services, asset_id)
    return JsonResponse(view.asset_rules(asset_id, state, world, visible=scope.allows))


@router.get(
    "/trips/{trip_id}/progress",
    tags=["trips"],
    response_model=out.TripProgressOut,
    responses=out.errors(404),
)
async def trip_progress(trip_id: IdPath, services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """A trip's progress: distance along its route, checkpoints passed, skipped and next, off
    route or not, the ETA at the current speed; or ``{"state": "not started"}`` /
    ``{"state": "done"}`` while its asset is not on it."""
    trip = await services.store.get_geo(trip_id, enterprise_ids=scope.enterprise_ids, kind="trip")
    if trip is None:
        not_found("trip", trip_id)
    asset_id = trip.properties.get("asset_id")
    if not isinstance(asset_id, str):
        return JsonResponse(view.TripPhase("not started"))
    owner = (await services.store.asset_owners([asset_id])).get(asset_id)
    if owner is not None and not scope.allows(owner):
        not_found("trip", trip_id)  # a shared trip of an asset the caller may not follow
    world = await _world(services)
    return JsonResponse(view.trip_view(trip_id, await _state(services, asset_id), world))


@router.get(
    "/lots/{lot_id}/occupants",
    tags=["lots"],
    response_model=out.LotOccupantsOut,
    responses=out.errors(404),
)
async def lot_occupants(lot_id: IdPath, services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """The assets confirmed inside a lot, with since when and for how long, against its
    capacity and maximum stay."""
    lot = await services.store.get_geo(lot_id, enterprise_ids=scope.enterprise_ids, kind="lot")
    if lot is None:
        not_found("lot", lot_id)
    members = (await services.live.lot_members([lot_id])).get(lot_id, {})
    owners = await services.store.asset_owners(list(members))
    return JsonResponse(_occupants(lot, members, owners, scope, now_ms=services.clock_ms()))


def _occupants(
    lot: GeoObject, members: dict[str, int], owners: dict[str, str], scope: Scope, *, now_ms: int
) -> LotOccupants:
    capacity, max_stay_s = _lot_limits(lot)
    seen = sorted(
        (since, asset_id)
        for asset_id, since in members.items()
        if asset_id in owners and scope.allows(owners[asset_id])
    )
    occupants = []
    for since, asset_id in seen:
        stay_s = max(now_ms - since, 0) / 1000
        over = max_stay_s is not None and stay_s > max_stay_s
        occupants.append(LotOccupant(asset_id, since, stay_s, over))
    return LotOccupants(
        lot_id=lot.id,
        name=lot.name,
        capacity=capacity,
        max_stay_s=max_stay_s,
        count=len(members),
        over_capacity=capacity is not None and len(members) > capacity,
        others=len(members) - len(occupants),
        as_of_ms=now_ms,
        occupants=occupants,
    )


def _lot_limits(lot: GeoObject) -> tuple[int | None, float | None]:
    """A lot's capacity and maximum stay, as the rules read them."""
    try:
        spec = read("lot", lot.properties, lot.geometry)
    except ObjectError:  # stored before the API checked it: no limits rather than no answer
        log.warning("lot %s: properties the rules cannot read", lot.id)
        return None, None
    assert isinstance(spec, LotSpec)
    return spec.capacity, spec.max_stay_s
