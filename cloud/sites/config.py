"""Defaults of the cloud's site watch (``[sites]`` in the cloud config).

Each key is a default: a point's own settings in the registry (:class:`cloud.models.Limits`)
beat it. Numbers marked (unverified) in shared/DOMAIN.md are common practice, not a standard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["KINDS", "SitesConfig"]

#: Point kinds the watch knows (a point's ``kind``, else told by its unit or tag).
KINDS: Final = ("gas", "toxic", "oxygen", "level", "pressure", "temperature", "flow", "other")


@dataclass(frozen=True, kw_only=True)
class SitesConfig:
    """What the cloud checks on site readings, and how often its clock runs.

    Attributes:
        enabled: run the site watch (thresholds, stale, frozen, rate of rise).
        timer_period_s: how often the clock step looks for stale points (one worker at a time).
        points_ttl_s: how long the registry's points are cached (a point edited in the registry
            is watched with its new settings within about this long).
        poll_s: a point's poll period when the registry gives none.
        stale_factor: a point is stale after this many poll periods without a reading.
        deadband_pct: hysteresis of a level when the point has no ``deadband``: this share of
            the point's span (or of the limit's magnitude when the span is unknown).
        delay_s: how long a level must hold before it raises, when the point has no ``delay_s``.
        gas_first_pct_lel: the first (H) alarm of a ``%LEL`` point without limits (GB/T 50493:
            at most 25 %LEL).
        gas_second_pct_lel: its second (HH) alarm (GB/T 50493: at most 50 %LEL).
        frozen_gas_s: longest a gas value may stay the same (0: never frozen; a combustible
            gas detector in clean air reads exactly 0 for days, so gas is not watched by
            default).
        frozen_level_s: same for level points (6 h, unverified).
        frozen_pressure_s: same for pressure points (6 h, unverified).
        frozen_temperature_s: same for temperature points (6 h, unverified).
        frozen_other_s: same for points of other kinds (0: not watched).
        rate_pct_per_min: highest rate of rise of level and pressure points, % of the span per
            minute (0: not watched; unverified).
        rate_window_s: the rate is measured over this window of observation time.
        rate_clear_ratio: a rate alert closes when the rate falls below this share of the limit.
    """

    enabled: bool = True
    timer_period_s: float = 5.0
    points_ttl_s: float = 30.0
    poll_s: float = 10.0
    stale_factor: float = 3.0
    deadband_pct: float = 1.0
    delay_s: float = 0.0
    gas_first_pct_lel: float = 25.0
    gas_second_pct_lel: float = 50.0
    frozen_gas_s: float = 0.0
    frozen_level_s: float = 6 * 3600.0
    frozen_pressure_s: float = 6 * 3600.0
    frozen_temperature_s: float = 6 * 3600.0
    frozen_other_s: float = 0.0
    rate_pct_per_min: float = 5.0
    rate_window_s: float = 60.0
    rate_clear_ratio: float = 0.8
