"""Fishing vessels and the summer fishing moratorium (DOMAIN.md; the national moratorium plan).

- A fishing-moratorium zone (``zone_kind: fishing_moratorium``) watches fishing vessels only,
  unless it names its ``classes``; and it applies in the season of its latitude unless it names
  its ``windows``: from 05-01 12:00 (Beijing) every year to 09-01 12:00 north of 35° N, to
  09-16 12:00 between 26.5° N and 35° N, to 08-16 12:00 south of 26.5° N (the latitude of the
  zone's centroid decides).
- A vessel counts as fishing by its registered class (``fishing_vessel``), or, for an AIS target
  nobody registered (its MMSI as asset id), by its AIS ship type 30 (fishing, from static data,
  message 5 or 24) or by a position report with navigation status 7 (engaged in fishing), from
  that report on (kept in its rule state, so replay and late data see the same).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Final

import shapely
from shapely.geometry import shape as to_shape

import wire
from cloud.rules.objects import ZoneSpec
from cloud.rules.windows import Windows

__all__ = ["FISHING_SHIP_TYPE", "ais_fishing", "moratorium_season", "with_moratorium_defaults"]

#: AIS ship and cargo type: fishing.
FISHING_SHIP_TYPE: Final = 30
MORATORIUM: Final = "fishing_moratorium"


def moratorium_season(lat: float) -> list[dict[str, str]]:
    """The yearly season of the moratorium at this latitude, as ``windows``."""
    if lat >= 35.0:
        end = "09-01 12:00"
    elif lat >= 26.5:
        end = "09-16 12:00"
    else:
        end = "08-16 12:00"
    return [{"from": "05-01 12:00", "to": end}]


def with_moratorium_defaults(
    spec: ZoneSpec, properties: Mapping[str, Any], geometry: Mapping[str, Any]
) -> ZoneSpec:
    """A moratorium zone's spec with the defaults above where its properties say nothing."""
    if spec.zone_kind != MORATORIUM:
        return spec
    changes: dict[str, Any] = {}
    if properties.get("classes") is None:
        changes["classes"] = frozenset({"fishing_vessel"})
    if properties.get("windows") is None:
        centroid = shapely.centroid(to_shape(geometry))
        changes["windows"] = Windows.parse(moratorium_season(float(centroid.y)))
    return dataclasses.replace(spec, **changes) if changes else spec


def ais_fishing(vessels: Iterable[wire.Vessel]) -> set[str]:
    """Asset ids (MMSIs) of the AIS targets whose static data says they fish."""
    return {str(v.mmsi) for v in vessels if v.ship_type == FISHING_SHIP_TYPE}
