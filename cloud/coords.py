"""Convert coordinates between WGS-84, GCJ-02 (AMap, Tencent) and BD-09 (Baidu).

Devices report WGS-84 and everything is stored in WGS-84; Chinese web maps draw in GCJ-02 (a
deliberate offset of 100-700 m) or BD-09 (GCJ-02 offset again, about 1 km from WGS-84). The
forward transforms are closed formulas; the inverses are fixed-point iterations of the forward
formula until the residual is below :data:`TOLERANCE_DEG` (about 0.1 mm). Outside China's
bounding box no offset is applied, as the map vendors do.

Every function is vectorized: it takes floats or numpy arrays of longitudes and latitudes (in that
order, as GeoJSON does) and returns the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, Literal, get_args, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "CRS_NAMES",
    "Crs",
    "bd09_to_gcj02",
    "convert",
    "convert_array",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china",
    "wgs84_to_gcj02",
]

#: Coordinate systems the API speaks.
Crs = Literal["wgs84", "gcj02", "bd09"]
CRS_NAMES: Final[tuple[str, ...]] = get_args(Crs)

#: Krasovsky 1940 ellipsoid, which GCJ-02 uses.
_A: Final = 6378245.0
_EE: Final = 0.00669342162296594323
_X_PI: Final = math.pi * 3000.0 / 180.0
#: Stop iterating once the forward image is this close to the target (1e-9 deg ~ 0.1 mm).
TOLERANCE_DEG: Final = 1e-9
_MAX_ITERATIONS: Final = 30
#: The bounding box the vendors treat as "China" (lon 72.004-137.8347, lat 0.8293-55.8271).
_CHINA: Final = (72.004, 137.8347, 0.8293, 55.8271)

FloatArray = npt.NDArray[np.float64]


def in_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where a point lies inside the box within which the offsets apply."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    return (x >= _CHINA[0]) & (x <= _CHINA[1]) & (y >= _CHINA[2]) & (y <= _CHINA[3])


def _delta(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 offset (degrees) of WGS-84 points, zero outside China."""
    x = lon - 105.0
    y = lat - 35.0
    sx = np.sqrt(np.abs(x))
    s6 = 20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx
    dlat += s6 * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * math.pi) + 320.0 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx
    dlon += s6 * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * math.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * math.pi)
    inside = in_china(lon, lat)
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def _as_arrays(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return x, y


def _wgs_to_gcj(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def _gcj_to_wgs(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # Outside China the forward map is the identity, so the iteration returns the input.
    wlon, wlat = lon.copy(), lat.copy()
    for _ in range(_MAX_ITERATIONS):
        glon, glat = _wgs_to_gcj(wlon, wlat)
        elon, elat = glon - lon, glat - lat
        wlon, wlat = wlon - elon, wlat - elat
        if np.all(np.abs(elon) < TOLERANCE_DEG) and np.all(np.abs(elat) < TOLERANCE_DEG):
            break
    return wlon, wlat


def _gcj_to_bd(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    inside = in_china(lon, lat)
    blon = np.where(inside, z * np.cos(theta) + 0.0065, lon)
    blat = np.where(inside, z * np.sin(theta) + 0.006, lat)
    return blon, blat


def _bd_to_gcj(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # Closed approximation first, then fixed-point refinement against the exact forward formula.
    x, y = lon - 0.0065, lat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    inside = in_china(lon, lat)
    glon = np.where(inside, z * np.cos(theta), lon)
    glat = np.where(inside, z * np.sin(theta), lat)
    for _ in range(_MAX_ITERATIONS):
        blon, blat = _gcj_to_bd(glon, glat)
        elon, elat = blon - lon, blat - lat
        glon, glat = glon - elon, glat - elat
        if np.all(np.abs(elon) < TOLERANCE_DEG) and np.all(np.abs(elat) < TOLERANCE_DEG):
            break
    return glon, glat


_STEPS: Final = {
    ("wgs84", "gcj02"): (_wgs_to_gcj,),
    ("gcj02", "wgs84"): (_gcj_to_wgs,),
    ("gcj02", "bd09"): (_gcj_to_bd,),
    ("bd09", "gcj02"): (_bd_to_gcj,),
    ("wgs84", "bd09"): (_wgs_to_gcj, _gcj_to_bd),
    ("bd09", "wgs84"): (_bd_to_gcj, _gcj_to_wgs),
}


def convert_array(
    lon: npt.ArrayLike, lat: npt.ArrayLike, *, src: Crs, dst: Crs
) -> tuple[FloatArray, FloatArray]:
    """Convert arrays of longitudes and latitudes from ``src`` to ``dst``.

    Raises:
        ValueError: an unknown coordinate system name.
    """
    for name in (src, dst):
        if name not in CRS_NAMES:
            raise ValueError(f"unknown coordinate system {name!r}: use one of {CRS_NAMES}")
    x, y = _as_arrays(lon, lat)
    if src == dst:
        return x.copy(), y.copy()
    for step in _STEPS[(src, dst)]:
        x, y = step(x, y)
    return x, y


def _delta_point(lon: float, lat: float) -> tuple[float, float]:
    """:func:`_delta` for one point in plain floats (no numpy overhead on the API's hot path)."""
    if not (_CHINA[0] <= lon <= _CHINA[1] and _CHINA[2] <= lat <= _CHINA[3]):
        return 0.0, 0.0
    x, y = lon - 105.0, lat - 35.0
    sx = math.sqrt(abs(x))
    s6 = 20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx
    dlat += s6 * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (
        (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx
    dlon += s6 * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (
        (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    rad = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return dlon, dlat


def _gcj_bd_point(lon: float, lat: float) -> tuple[float, float]:
    if not (_CHINA[0] <= lon <= _CHINA[1] and _CHINA[2] <= lat <= _CHINA[3]):
        return lon, lat
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _invert_point(
    forward: Callable[[float, float], tuple[float, float]],
    lon: float,
    lat: float,
    start: tuple[float, float] | None = None,
) -> tuple[float, float]:
    wlon, wlat = start or (lon, lat)
    for _ in range(_MAX_ITERATIONS):
        flon, flat = forward(wlon, wlat)
        elon, elat = flon - lon, flat - lat
        wlon, wlat = wlon - elon, wlat - elat
        if abs(elon) < TOLERANCE_DEG and abs(elat) < TOLERANCE_DEG:
            break
    return wlon, wlat


def _bd_gcj_guess(lon: float, lat: float) -> tuple[float, float]:
    """The closed approximation of BD-09 -> GCJ-02 the iteration starts from (as in _bd_to_gcj)."""
    if not (_CHINA[0] <= lon <= _CHINA[1] and _CHINA[2] <= lat <= _CHINA[3]):
        return lon, lat
    x, y = lon - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.cos(theta), z * math.sin(theta)


def _wgs_gcj_point(lon: float, lat: float) -> tuple[float, float]:
    dlon, dlat = _delta_point(lon, lat)
    return lon + dlon, lat + dlat


def _gcj_wgs_point(lon: float, lat: float) -> tuple[float, float]:
    return _invert_point(_wgs_gcj_point, lon, lat)


def _bd_gcj_point(lon: float, lat: float) -> tuple[float, float]:
    return _invert_point(_gcj_bd_point, lon, lat, _bd_gcj_guess(lon, lat))


_POINT_STEPS: Final[
    dict[tuple[str, str], tuple[Callable[[float, float], tuple[float, float]], ...]]
] = {
    ("wgs84", "gcj02"): (_wgs_gcj_point,),
    ("gcj02", "wgs84"): (_gcj_wgs_point,),
    ("gcj02", "bd09"): (_gcj_bd_point,),
    ("bd09", "gcj02"): (_bd_gcj_point,),
    ("wgs84", "bd09"): (_wgs_gcj_point, _gcj_bd_point),
    ("bd09", "wgs84"): (_bd_gcj_point, _gcj_wgs_point),
}


def _convert_point(lon: float, lat: float, src: Crs, dst: Crs) -> tuple[float, float]:
    for step in _POINT_STEPS[(src, dst)]:
        lon, lat = step(lon, lat)
    return lon, lat


@overload
def convert(lon: float, lat: float, *, src: Crs, dst: Crs) -> tuple[float, float]: ...
@overload
def convert(
    lon: FloatArray, lat: FloatArray, *, src: Crs, dst: Crs
) -> tuple[FloatArray, FloatArray]: ...
def convert(
    lon: float | FloatArray, lat: float | FloatArray, *, src: Crs, dst: Crs
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Convert one point (floats in, floats out) or arrays of points between systems."""
    if isinstance(lon, (int, float)) and isinstance(lat, (int, float)):
        for name in (src, dst):
            if name not in CRS_NAMES:
                raise ValueError(f"unknown coordinate system {name!r}: use one of {CRS_NAMES}")
        if src == dst:
            return float(lon), float(lat)
        return _convert_point(float(lon), float(lat), src, dst)
    x, y = convert_array(lon, lat, src=src, dst=dst)
    if x.ndim == 0:
        return float(x), float(y)
    return x, y


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """WGS-84 to GCJ-02 (closed formula)."""
    return convert(lon, lat, src="wgs84", dst="gcj02")


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 to WGS-84 (iterated to below a millimetre)."""
    return convert(lon, lat, src="gcj02", dst="wgs84")


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 to BD-09 (closed formula)."""
    return convert(lon, lat, src="gcj02", dst="bd09")


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """BD-09 to GCJ-02 (iterated to below a millimetre)."""
    return convert(lon, lat, src="bd09", dst="gcj02")
