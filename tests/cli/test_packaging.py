"""An installed (non-editable) hazwatch finds its firmware profiles and map page."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_profiles_web_page_and_entry_point(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("hazwatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    profiles = {n for n in names if n.startswith("firmware_profiles/") and n.endswith(".toml")}
    assert len(profiles) >= 7
    assert {"cloud/web/index.html", "cloud/web/vendor/leaflet/leaflet.js"} <= names
    for package in ("hazwatch", "wire", "edge", "cloud", "simulators"):
        assert f"{package}/py.typed" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "hazwatch = hazwatch.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
