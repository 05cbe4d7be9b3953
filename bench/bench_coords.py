"""Coordinate conversion and GeoJSON validation throughput.

Run from the repo root: ``python bench/bench_coords.py``. Prints medians of several runs and the
speed-up of the vectorized path over converting point by point (the baseline, same run).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from cloud.coords import convert, convert_array
from cloud.rules.geometry import parse_geometry

RUNS = 5
N = 200_000
N_SCALAR = 20_000


def median_s(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(7)
    lons = rng.uniform(74.0, 135.0, N)
    lats = rng.uniform(2.0, 54.0, N)
    few_lons, few_lats = lons[:N_SCALAR].tolist(), lats[:N_SCALAR].tolist()

    def scalar() -> None:
        for x, y in zip(few_lons, few_lats, strict=True):
            convert(x, y, src="gcj02", dst="wgs84")

    baseline = N_SCALAR / median_s(scalar)
    print(f"gcj02->wgs84 point by point: {baseline:12,.0f} points/s (baseline)")
    for src, dst in (("wgs84", "gcj02"), ("gcj02", "wgs84"), ("wgs84", "bd09"), ("bd09", "wgs84")):
        rate = N / median_s(lambda s=src, d=dst: convert_array(lons, lats, src=s, dst=d))  # type: ignore[misc]
        print(f"{src}->{dst} vectorized:   {rate:12,.0f} points/s  x{rate / baseline:6.1f}")

    angles = np.linspace(0, 2 * np.pi, 1000, endpoint=False)
    ring = [[120.3 + 0.05 * np.cos(a), 31.5 + 0.05 * np.sin(a)] for a in angles]
    polygon = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    per_s = 1 / median_s(lambda: parse_geometry(polygon, crs="gcj02"))
    print(f"parse+validate+convert a 1000-vertex GCJ-02 polygon: {per_s:,.0f} per s")


if __name__ == "__main__":
    main()
