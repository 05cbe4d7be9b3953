"""The ``[sites]`` configuration and the point settings the registry carries."""

from __future__ import annotations

import pytest

from cloud.config import ConfigError, settings_from_mapping
from cloud.models import Limits
from cloud.registry import parse_registry
from cloud.sites import SitesConfig


def test_sites_section_sets_the_defaults() -> None:
    settings = settings_from_mapping({"sites": {"stale_factor": 5, "rate_pct_per_min": 2.5}})
    assert settings.sites.stale_factor == 5
    assert settings.sites.rate_pct_per_min == 2.5
    assert settings.sites.frozen_level_s == SitesConfig().frozen_level_s


@pytest.mark.parametrize(
    ("section", "key", "reason"),
    [
        ({"stale": 3}, "sites.stale", "unknown key"),
        ({"stale_factor": 0.5}, "sites.stale_factor", "must lie in"),
        ({"enabled": "yes"}, "sites.enabled", "expected bool"),
        ({"rate_clear_ratio": 2}, "sites.rate_clear_ratio", "must lie in"),
    ],
)
def test_bad_sites_keys_are_named(section: dict[str, object], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"sites": section})
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_points_carry_their_watch_settings_from_toml_and_csv() -> None:
    toml = """
[[points]]
site_id = "s1"
tag = "T101.LT01"
unit = "m"
limits = { h = 8.5, hh = 9.2, deadband = 0.05, poll_s = 2, span_lo = 0, span_hi = 20 }
"""
    (point,) = parse_registry(toml, fmt="toml").points
    assert point.limits == Limits(h=8.5, hh=9.2, deadband=0.05, poll_s=2, span_lo=0, span_hi=20)
    csv = "site_id,tag,unit,h,frozen_s,kind,rate_pct_per_min\ns1,PT01,MPa,1.6,3600,pressure,2\n"
    (point,) = parse_registry(csv, fmt="csv", kind="points").points
    assert point.limits == Limits(h=1.6, frozen_s=3600, kind="pressure", rate_pct_per_min=2)
