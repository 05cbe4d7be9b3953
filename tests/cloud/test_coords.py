"""Coordinate conversion: known values, round trips to the millimetre, no offset abroad."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.coords import Crs, convert, convert_array, gcj02_to_wgs84, in_china, wgs84_to_gcj02
from cloud.rules.geometry import geodesic_distance_m

# Inside China's box, away from its edges where the offset switches off.
china_lon = st.floats(min_value=74.0, max_value=135.0)
china_lat = st.floats(min_value=2.0, max_value=54.0)


def test_known_offset_beijing() -> None:
    lon, lat = wgs84_to_gcj02(116.397428, 39.90923)
    # The GCJ-02 offset in Beijing is about 0.0062 deg east and 0.0014 deg north (~560 m).
    assert abs(lon - 116.403672) < 1e-5
    assert abs(lat - 39.910634) < 1e-5


def test_bd09_is_about_a_kilometre_from_wgs84() -> None:
    lon, lat = convert(120.30, 31.57, src="wgs84", dst="bd09")
    dist = float(geodesic_distance_m(120.30, 31.57, lon, lat))
    assert 600.0 < dist < 1500.0


def test_no_offset_outside_china() -> None:
    pairs: list[tuple[Crs, Crs]] = [("wgs84", "gcj02"), ("gcj02", "wgs84"), ("bd09", "wgs84")]
    for src, dst in pairs:
        assert convert(2.35, 48.85, src=src, dst=dst) == (2.35, 48.85)
    assert not bool(in_china(-74.0, 40.7))


def test_vectorized_matches_scalar() -> None:
    lons = np.array([116.4, 121.47, 2.35, 120.3])
    lats = np.array([39.9, 31.23, 48.85, 31.57])
    x, y = convert_array(lons, lats, src="wgs84", dst="gcj02")
    for i in range(len(lons)):
        assert (x[i], y[i]) == wgs84_to_gcj02(float(lons[i]), float(lats[i]))


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_gcj02_round_trip_within_a_millimetre(lon: float, lat: float) -> None:
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    back = wgs84_to_gcj02(wlon, wlat)
    assert float(geodesic_distance_m(lon, lat, back[0], back[1])) < 0.001


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_bd09_round_trip_within_a_millimetre(lon: float, lat: float) -> None:
    blon, blat = convert(lon, lat, src="wgs84", dst="bd09")
    back = convert(blon, blat, src="bd09", dst="wgs84")
    assert float(geodesic_distance_m(lon, lat, back[0], back[1])) < 0.001


crs_names = st.sampled_from(["wgs84", "gcj02", "bd09"])


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=60.0, max_value=140.0),
    st.floats(min_value=-5.0, max_value=60.0),
    crs_names,
    crs_names,
)
def test_scalar_path_matches_vectorized(lon: float, lat: float, src: Crs, dst: Crs) -> None:
    x, y = convert(lon, lat, src=src, dst=dst)
    vx, vy = convert_array(np.array([lon]), np.array([lat]), src=src, dst=dst)
    assert abs(x - float(vx[0])) < 1e-9
    assert abs(y - float(vy[0])) < 1e-9


def test_unknown_crs_rejected() -> None:
    import pytest

    with pytest.raises(ValueError, match="unknown coordinate system"):
        convert(120.0, 31.0, src="wgs84", dst="etrs89")  # type: ignore[call-overload]
