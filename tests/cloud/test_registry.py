"""Registry import from TOML, JSON and CSV, with errors naming file, entry and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud.archive import Store
from cloud.models import Limits
from cloud.registry import RegistryError, import_registry, load_registry, parse_registry

TOML = """
[[enterprises]]
id = "jx-chem"
name = "Jiangxi Chemical Logistics"
region = "320281"

[[gateways]]
id = "gw-truck-017"
enterprise_id = "jx-chem"

[[assets]]
id = "truck-017"
enterprise_id = "jx-chem"
asset_class = "hazmat_truck"
plate = "苏B12345"

[[sites]]
id = "tank-farm-1"
enterprise_id = "jx-chem"
name = "Tank farm 1"
lat = 31.58
lon = 120.29

[[points]]
site_id = "tank-farm-1"
tag = "T101.LT01"
unit = "m"
limits = { h = 8.5, hh = 9.2 }
"""


async def test_toml_import_creates_everything(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(TOML, encoding="utf-8")
    registry = load_registry(path)
    assert await import_registry(store, registry) == {
        "enterprises": 1,
        "gateways": 1,
        "assets": 1,
        "sites": 1,
        "points": 1,
    }
    asset = await store.get_asset("truck-017")
    assert asset is not None
    assert asset.plate == "苏B12345"
    assert (await store.list_points("tank-farm-1"))[0].limits == Limits(h=8.5, hh=9.2)


async def test_csv_files_import_by_kind(store: Store, tmp_path: Path) -> None:
    files = {
        "enterprises.csv": "id,name,region\ncoop,Fishing coop,330902\n",
        "assets.csv": "id,enterprise_id,asset_class,plate,mmsi,name\nv1,coop,fishing_vessel,,412345678,Zhe Dai Yu 1\n",
        "sites.csv": "id,enterprise_id,name,lat,lon\ns1,coop,Depot,30.0,122.1\n",
        "points.csv": "site_id,tag,unit,ll,l,h,hh\ns1,PT01,MPa,,0.1,1.6,\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        await import_registry(store, load_registry(tmp_path / name))
    vessel = await store.get_asset("v1")
    assert vessel is not None
    assert (vessel.mmsi, vessel.plate) == (412345678, None)
    assert (await store.list_points("s1"))[0].limits == Limits(l=0.1, h=1.6)


def test_json_matches_toml() -> None:
    document = {"enterprises": [{"id": "e", "name": "E", "region": "110105"}]}
    assert parse_registry(json.dumps(document), fmt="json").enterprises[0].region == "110105"


@pytest.mark.parametrize(
    ("text", "fmt", "kind", "where", "reason"),
    [
        (
            '[[enterprises]]\nid = "e"\nname = "E"\nregion = "32028"\n',
            "toml",
            None,
            "enterprises[0].region",
            "regex",
        ),
        (
            '[[assets]]\nid = "a"\nenterprise_id = "e"\nasset_class = "tank"\n',
            "toml",
            None,
            "assets[0].asset_class",
            "Invalid",
        ),
        ('[[planes]]\nid = "p"\n', "toml", None, "planes", "unknown kind"),
        ("[[enterprises]\n", "toml", None, "", "not valid TOML"),
        ("id,name,region\ne,E,320281\ne,F,320281\n", "csv", "enterprises", "row 3", "duplicate e"),
        ("id,enterprise_id\ng,\n", "csv", "gateways", "row 2.enterprise_id", "missing"),
        ("id\n", "csv", "boats", "", "CSV kind"),
        ('{"points": [{"site_id": "s", "tag": "t"}], "sites": []}', "json", None, "", ""),
    ],
)
def test_errors_name_the_entry(
    text: str, fmt: str, kind: str | None, where: str, reason: str
) -> None:
    if not reason:
        assert parse_registry(text, fmt=fmt, kind=kind).points[0].tag == "t"
        return
    with pytest.raises(RegistryError) as caught:
        parse_registry(text, fmt=fmt, file="reg." + fmt, kind=kind)
    assert caught.value.file == "reg." + fmt
    assert caught.value.where == where
    assert reason in str(caught.value)


async def test_unknown_enterprise_in_store_is_a_registry_error(store: Store) -> None:
    registry = parse_registry('[[gateways]]\nid = "g"\nenterprise_id = "ghost"\n', fmt="toml")
    with pytest.raises(RegistryError, match=r"gateways\[0\]"):
        await import_registry(store, registry, file="gw.toml")


def test_unsupported_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"expected a \.toml"):
        load_registry(tmp_path / "registry.yaml")
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.toml")
