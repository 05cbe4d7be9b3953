"""``hazwatch demo``: its generated config and registry, and the whole system end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.config import build_sources, load_config
from simulators.demo_scenario import (
    AIS_VESSELS,
    DEMO_GATEWAY,
    DEMO_SITE,
    GAS_CYCLE,
    Cycle,
    agent_config,
    ais_lines,
    demo_registry,
    gnss_lines,
)
from simulators.nmea import checksum
from tests.demo.support import poll, running_demo

TRUCK = "truck-su-b-d7315"
GAS = "TF1.GD101.GAS"


def test_cycle_follows_its_knots_and_repeats() -> None:
    cycle = Cycle(((0, 0.0), (10, 10.0), (20, 10.0)), 30.0)
    assert cycle.at(5) == pytest.approx(5.0)
    assert cycle.at(15) == pytest.approx(10.0)
    assert cycle.at(25) == pytest.approx(10.0)  # after the last knot: its value
    assert cycle.at(35) == pytest.approx(5.0)  # the next period


def test_gas_cycle_passes_the_first_alarm_and_comes_back() -> None:
    values = [GAS_CYCLE.at(t) for t in range(0, 180)]
    assert values[0] < 25 < max(values) < 50  # first alarm (25 %LEL), not the second
    assert values[-1] < 25
    assert next(t for t, v in enumerate(values) if v >= 25) < 10


def test_agent_config_is_valid_and_builds_every_source(tmp_path: Path) -> None:
    file = tmp_path / "edge.toml"
    file.write_text(
        agent_config(
            mqtt_host="127.0.0.1", mqtt_port=1884, modbus_port=1502, gnss_port=10110, ais_port=10111
        ),
        encoding="utf-8",
    )
    settings = load_config(file)
    assert settings.gateway_id == DEMO_GATEWAY
    assert settings.buffer.path == tmp_path / "edge" / "buffer.db"
    assert {s.name for s in build_sources(settings)} == {"modbus", f"gnss:{TRUCK}", "ais-jiangyin"}


def test_registry_ties_every_edge_id_to_the_enterprise() -> None:
    registry = demo_registry()
    (mine,) = [e.id for e in registry.enterprises if e.region == "320281"]
    assert {g.id: g.enterprise_id for g in registry.gateways} == {DEMO_GATEWAY: mine}
    owned = {a.id for a in registry.assets if a.enterprise_id == mine}
    assert owned == {TRUCK, *(str(mmsi) for mmsi, _ in AIS_VESSELS)}
    assert {p.tag for p in registry.points if p.site_id == DEMO_SITE} >= {GAS}


def test_feeds_are_valid_nmea_with_gn_and_beidou_talkers() -> None:
    epoch = gnss_lines(0)(1_795_000_000_000, 0)
    ais = ais_lines(0)(1_795_000_000_000, 0)
    for line in epoch + ais:
        body, _, check = line[1:].partition("*")
        assert checksum(body) == check, line
    assert {line[1:6] for line in epoch} >= {"GNRMC", "GNGGA", "BDGSA"}
    assert sum(line.startswith("!AIVDM") for line in ais) >= 2 + 2 * 2  # positions + statics


def _get(client: Any, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


@pytest.mark.slow
def test_demo_runs_the_whole_system_and_scopes_the_dispatcher(tmp_path: Path) -> None:
    with running_demo(tmp_path / "demo", duration_s=24) as demo:
        banner = demo.output
        assert f"{demo.base_url}/map/" in banner
        assert f"{demo.base_url}/docs" in banner
        with demo.client("admin") as admin, demo.client("dispatcher") as dispatcher:

            def positions() -> dict[str, Any] | None:
                assets = {a["id"]: a for a in _get(admin, "/assets") if a["latest"]}
                return assets if {TRUCK, str(AIS_VESSELS[0][0])} <= set(assets) else None

            assets = poll(positions, timeout_s=20, what="truck and vessel fixes")
            truck = assets[TRUCK]["latest"]
            assert truck.get("source", "gnss") == "gnss"  # the default is left out
            assert 31.8 < truck["lat"] < 32.0  # Jiangyin
            assert 120.1 < truck["lon"] < 120.4
            assert assets[str(AIS_VESSELS[0][0])]["latest"]["source"] == "ais"

            def readings() -> list[Any]:
                return _get(  # type: ignore[no-any-return]
                    admin, f"/sites/{DEMO_SITE}/points/{GAS}/readings", start_ms=0, end_ms=2**53
                )

            assert poll(readings, timeout_s=10, what="gas readings")[0]["unit"] == "%LEL"

            def gas_alert() -> list[Any]:
                return [a for a in _get(admin, "/alerts", state="open") if a["point"] == GAS]

            (alert,) = poll(gas_alert, timeout_s=25, what="the 25 %LEL gas alert")
            assert alert["level"] == "H"
            assert alert["value"] >= 25

            mine = {a["enterprise_id"] for a in _get(dispatcher, "/assets")}
            assert mine == {alert["enterprise_id"]}
            everyone = {a["enterprise_id"] for a in _get(admin, "/assets")}
            assert len(everyone) == 2  # the other enterprise exists, the dispatcher can't see it
            assert dispatcher.get("/assets/coach-su-b-k2208").status_code == 404
            assert [a["id"] for a in _get(dispatcher, "/alerts")] == [alert["id"]]
            with demo.client("regulator") as regulator:  # Wuxi city sees both counties
                assert {a["enterprise_id"] for a in _get(regulator, "/assets")} == everyone
            (gateway,) = _get(dispatcher, "/gateways")
            assert gateway["state"] == "online"
        assert demo.wait_exit(timeout_s=40) == 0  # --duration-s ends it cleanly
    assert "hazwatch demo stopped" in demo.output
    assert "Traceback" not in demo.output
