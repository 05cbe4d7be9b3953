"""The demo's scenario as data: a Jiangyin (region 320281) enterprise, its tank farm, truck and
fishing vessels; the agent config, the registry, the simulated devices and the NMEA/AIS feeds.

Everything here is pure or builds objects; :mod:`simulators.demo` runs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cloud.archive import Store
from cloud.auth import make_key
from cloud.models import Asset, Enterprise, Gateway, Limits, Point, Site
from cloud.registry import Registry, import_registry
from edge.profiles import find_profile, load_profile
from simulators.modbus import ModbusSimulator, Noise, SimDevice
from simulators.nmea import AisVessel, GnssVehicle, Route

__all__ = [
    "AIS_VESSELS",
    "DEMO_ENTERPRISE",
    "DEMO_GATEWAY",
    "DEMO_SITE",
    "DEMO_TRUCK",
    "GAS_CYCLE",
    "OTHER_ENTERPRISE",
    "Cycle",
    "Lines",
    "agent_config",
    "ais_lines",
    "demo_registry",
    "gnss_lines",
    "seed",
    "tank_farm",
]

DEMO_ENTERPRISE: Final = "jy-lingang-chem"
OTHER_ENTERPRISE: Final = "yx-coach"
DEMO_GATEWAY: Final = "jy-gw-01"
DEMO_SITE: Final = "jy-tankfarm-1"
DEMO_TRUCK: Final = "truck-su-b-d7315"
#: (MMSI, name) of the fishing vessels in the AIS feed.
AIS_VESSELS: Final = ((412420101, "SU JIANG YU 101"), (412420102, "SU JIANG YU 102"))
#: (device name, profile, unit, point, tag, points left out) of the tank farm's Modbus devices.
_DEVICES: Final = (
    ("GD-101", "combustible_gas_lel_v2", 1, "GAS", "TF1.GD101.GAS", ("SENSOR_LIFE",)),
    ("LT-101", "radar_level_v3", 2, "LEVEL", "TF1.T101.LEVEL", ("DISTANCE", "VOLUME")),
    ("TT-101", "temperature_transmitter_v1", 3, "TEMP", "TF1.T101.TEMP", ()),
)
_SITE_LAT_LON: Final = (31.9405, 120.2110)
#: A loop through Jiangyin (WGS-84): from the Lingang chemical area south-east and back.
_TRUCK_ROUTE: Final = (
    (31.9392, 120.2168),
    (31.9318, 120.2355),
    (31.9215, 120.2562),
    (31.9108, 120.2731),
    (31.9006, 120.2889),
    (31.8893, 120.3065),
)
#: Courses on the Yangtze off Jiangyin, one per vessel.
_RIVER_ROUTES: Final = (
    ((31.9688, 120.1905), (31.9622, 120.2350), (31.9571, 120.2790), (31.9493, 120.3200)),
    ((31.9512, 120.3150), (31.9598, 120.2700), (31.9650, 120.2250), (31.9710, 120.1950)),
)


@dataclass(frozen=True, slots=True)
class Cycle:
    """A value following straight lines between ``(t_s, value)`` knots, repeating each period.

    A :class:`simulators.modbus.Script`: the gas detector's rise through its alarm and back.
    """

    knots: Sequence[tuple[float, float]]
    period_s: float

    def at(self, t_s: float) -> float:
        """The value at ``t_s`` seconds since the simulator started."""
        t = t_s % self.period_s
        for (t0, v0), (t1, v1) in zip(self.knots, self.knots[1:], strict=False):
            if t0 <= t <= t1:
                return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return self.knots[-1][1]


#: 5 %LEL, up to 35 in 10 s (first alarm at 25 after its 2 s delay), held, back down by 115 s.
GAS_CYCLE: Final = Cycle(((0, 5.0), (10, 35.0), (100, 35.0), (115, 5.0), (180, 5.0)), 180.0)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _table(name: str, values: dict[str, Any], *, array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    return "\n".join([head, *(f"{k} = {_toml_value(v)}" for k, v in values.items())]) + "\n"


def agent_config(
    *, mqtt_host: str, mqtt_port: int, modbus_port: int, gnss_port: int, ais_port: int
) -> str:
    """The agent's TOML for the demo (pure); paths are relative to the file's folder."""
    parts = [
        _table("gateway", {"id": DEMO_GATEWAY, "state_dir": "edge"}),
        _table(
            "mqtt",  # the embedded amqtt broker speaks MQTT 3.1.1 only
            {"host": mqtt_host, "port": mqtt_port, "protocol": "3.1.1", "reconnect_max_s": 5.0},
        ),
        _table("buffer", {"path": "edge/buffer.db"}),
        _table("health", {"interval_s": 10.0}),
        _table("modbus", {"site": DEMO_SITE, "poll_interval_s": 1.0, "offline_after": 3}),
    ]
    for name, profile, unit, point, tag, unused in _DEVICES:
        device = {"name": name, "profile": profile, "host": mqtt_host, "port": modbus_port}
        # Each [points] table belongs to the device table written just before it.
        parts.append(_table("modbus.devices", {**device, "unit": unit}, array=True))
        parts.append(_table(f"modbus.devices.points.{point}", {"tag": tag}))
        parts += [_table(f"modbus.devices.points.{p}", {"enabled": False}) for p in unused]
    parts += [
        _table("gnss.report", {"interval_s": 5.0, "distance_m": 40.0, "heading_change_deg": 20.0}),
        _table(
            "gnss.receivers",
            {"asset": DEMO_TRUCK, "transport": "tcp", "host": mqtt_host, "port": gnss_port}
            | {"backoff_max_s": 2.0},
            array=True,
        ),
        _table("ais.report", {"interval_s": 10.0, "distance_m": 30.0, "heading_change_deg": 20.0}),
        _table(
            "ais.receivers",
            {"name": "ais-jiangyin", "transport": "tcp", "host": mqtt_host, "port": ais_port}
            | {"backoff_max_s": 2.0},
            array=True,
        ),
    ]
    return "# Generated by `hazwatch demo`; rewritten at each start.\n\n" + "\n".join(parts)


def demo_registry() -> Registry:
    """The seeded registry: one Jiangyin (320281) enterprise with its gateway, truck, vessels,
    tank farm and points, plus a Yixing (320282) coach company the dispatcher must not see."""
    mine, other = DEMO_ENTERPRISE, OTHER_ENTERPRISE
    lat, lon = _SITE_LAT_LON
    return Registry(
        enterprises=[
            Enterprise(id=mine, name="江阴临港危化品储运有限公司", region="320281"),
            Enterprise(id=other, name="宜兴公路客运有限公司", region="320282"),
        ],
        gateways=[Gateway(id=DEMO_GATEWAY, enterprise_id=mine, name="临港罐区工控机")],
        assets=[
            Asset(
                id=DEMO_TRUCK,
                enterprise_id=mine,
                asset_class="hazmat_truck",
                plate="苏B·D7315",
                name="危化品槽罐车 苏B·D7315",
            ),
            *(
                Asset(
                    id=str(mmsi),
                    enterprise_id=mine,
                    asset_class="fishing_vessel",
                    mmsi=mmsi,
                    name=name,
                )
                for mmsi, name in AIS_VESSELS
            ),
            Asset(
                id="coach-su-b-k2208", enterprise_id=other, asset_class="coach", plate="苏B·K2208"
            ),
        ],
        sites=[Site(id=DEMO_SITE, enterprise_id=mine, name="临港一号罐区", lat=lat, lon=lon)],
        points=[
            Point(site_id=DEMO_SITE, tag="TF1.GD101.GAS", unit="%LEL", limits=Limits(h=25, hh=50)),
            Point(
                site_id=DEMO_SITE, tag="TF1.T101.LEVEL", unit="m", limits=Limits(ll=0.5, hh=19.5)
            ),
            Point(site_id=DEMO_SITE, tag="TF1.T101.TEMP", unit="degC", limits=Limits(h=45, hh=60)),
        ],
    )


async def seed(store: Store, *, now_ms: int) -> dict[str, str]:
    """Import :func:`demo_registry` and make this run's keys; return role -> token.

    Keys of earlier runs in the same work folder are revoked: only the printed tokens work.
    """
    await import_registry(store, demo_registry(), file="<demo>")
    for old in await store.list_api_keys():
        if old.name.startswith("demo-") and old.revoked_ms is None:
            await store.revoke_api_key(old.hash, now_ms=now_ms)
    wanted = {
        "admin": {"role": "admin"},
        "regulator": {"role": "regulator", "region": "320200"},
        "dispatcher": {"role": "dispatcher", "enterprise_id": DEMO_ENTERPRISE},
    }
    tokens: dict[str, str] = {}
    for name, spec in wanted.items():
        token, key = make_key(name=f"demo-{name}", now_ms=now_ms, **spec)
        await store.put_api_key(key)
        tokens[name] = token
    return tokens


def tank_farm() -> ModbusSimulator:
    """The tank farm's simulated devices (gas detector on its alarm cycle, level, temperature)."""
    devices = {}
    for name, profile, unit, *_ in _DEVICES:
        devices[name] = SimDevice(load_profile(find_profile(profile)), unit=unit)
    devices["GD-101"].script("GAS", GAS_CYCLE)
    devices["LT-101"].script("LEVEL", Noise(mean=12.40, amplitude=0.02, seed=7))
    devices["TT-101"].script("TEMP", Noise(mean=24.6, amplitude=0.3, seed=3))
    return ModbusSimulator(list(devices.values()))


Lines = Callable[[int, int], list[str]]


def gnss_lines(start_ms: int) -> Lines:
    """One epoch per call of the demo truck: GN RMC/VTG/GGA/GSA plus a BeiDou GSA."""
    route = Route((*_TRUCK_ROUTE, *reversed(_TRUCK_ROUTE[:-1])))
    truck = GnssVehicle(route=route, speed_kmh=55.0, start_ms=start_ms, talker="GN")
    beidou = GnssVehicle(route=route, speed_kmh=55.0, start_ms=start_ms, talker="BD")
    beidou.sentences = ("GSA",)
    return lambda now_ms, tick: truck.epoch(now_ms) + beidou.epoch(now_ms)


def ais_lines(start_ms: int) -> Lines:
    """Position reports of the vessels each call, static data every 15 calls."""
    vessels = [
        AisVessel(mmsi=mmsi, route=Route(r), speed_kn=6.5 + i, start_ms=start_ms, name=name)
        for i, ((mmsi, name), r) in enumerate(zip(AIS_VESSELS, _RIVER_ROUTES, strict=True))
    ]

    def lines(now_ms: int, tick: int) -> list[str]:
        out = [s for v in vessels for s in v.position(now_ms)]
        if tick % 15 == 0:
            out += [s for v in vessels for s in v.static()]
        return out

    return lines
