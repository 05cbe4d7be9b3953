"""Simulated GNSS receivers (NMEA 0183) and AIS transponders driving along polylines.

:class:`GnssVehicle` emits one epoch of sentences per call, as a receiver in a hazmat truck or a
school bus would: RMC, VTG, GGA and GSA by default, with the combined talker ``GN`` or BeiDou's
``BD`` / ``GB``. :class:`AisVessel` emits position reports (type 1 for Class A, 18 for Class B)
and static data (type 5 in two fragments, or type 24 parts A and B) encoded with
:func:`pyais.encode_dict`. Times are parameters (UTC epoch ms), so output is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from typing import Any, Final, Literal

from pyais import encode_dict
from pyproj import Geod

__all__ = ["AisVessel", "GnssVehicle", "Route", "checksum", "nmea", "tag_block"]

_GEOD: Final = Geod(ellps="WGS84")
_KNOT_KMH: Final = 1.852


def checksum(body: str) -> str:
    """NMEA checksum of the text between ``$``/``!`` and ``*``, as two hex digits."""
    return f"{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def nmea(body: str) -> str:
    """A complete sentence ``$<body>*hh`` (without line terminator)."""
    return f"${body}*{checksum(body)}"


def tag_block(sentence: str, *, station: str, t_ms: int) -> str:
    """Prefix an NMEA 4 tag block with source station and receiver time (seconds)."""
    body = f"s:{station},c:{t_ms // 1000}"
    return f"\\{body}*{checksum(body)}\\{sentence}"


@dataclass(frozen=True)
class Route:
    """A polyline of (lat, lon) points in WGS-84, walked at constant speed (optionally looping)."""

    points: Sequence[tuple[float, float]]
    loop: bool = True
    _legs: list[tuple[float, float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("a route needs at least two points")
        legs = []
        for (lat1, lon1), (lat2, lon2) in zip(self.points, self.points[1:], strict=False):
            azimuth, _, length = _GEOD.inv(lon1, lat1, lon2, lat2)
            legs.append((azimuth % 360.0, length))
        object.__setattr__(self, "_legs", legs)

    @property
    def length_m(self) -> float:
        """Length of the polyline."""
        return sum(length for _, length in self._legs)

    def at(self, distance_m: float) -> tuple[float, float, float]:
        """(lat, lon, course) after ``distance_m`` along the route."""
        total = self.length_m
        distance_m = distance_m % total if self.loop and total > 0 else min(distance_m, total)
        for (lat, lon), (azimuth, length) in zip(self.points, self._legs, strict=False):
            if distance_m <= length:
                lon2, lat2, _ = _GEOD.fwd(lon, lat, azimuth, distance_m)
                return lat2, lon2, azimuth
            distance_m -= length
        lat, lon = self.points[-1]
        return lat, lon, self._legs[-1][0]


def _dm(value: float, width: int, hemis: str) -> tuple[str, str]:
    """Signed degrees -> (``dddmm.mmmmm``, hemisphere)."""
    hemi = hemis[0] if value >= 0 else hemis[1]
    # Round to the printed 1e-5 minute first, so 59.999999 minutes carries into the degrees
    # instead of printing as "60.00000".
    degrees, minutes = divmod(round(abs(value) * 60.0, 5), 60.0)
    return f"{int(degrees):0{width}d}{minutes:08.5f}", hemi


@dataclass
class GnssVehicle:
    """A vehicle with a GNSS receiver; :meth:`epoch` gives the sentences of one second."""

    route: Route
    speed_kmh: float = 40.0
    start_ms: int = 0
    talker: str = "GN"
    sentences: tuple[str, ...] = ("RMC", "VTG", "GGA", "GSA")
    sats: int = 14
    hdop: float = 0.8
    alt_m: float = 12.0
    gga_quality: int = 1
    status: Literal["A", "V"] = "A"

    def state(self, t_ms: int) -> tuple[float, float, float]:
        """(lat, lon, course) at time ``t_ms``."""
        elapsed_s = max(0.0, (t_ms - self.start_ms) / 1000.0)
        return self.route.at(elapsed_s * self.speed_kmh / 3.6)

    def epoch(self, t_ms: int) -> list[str]:
        """The sentences of the epoch at ``t_ms`` (UTC epoch ms), in :attr:`sentences` order."""
        lat, lon, course = self.state(t_ms)
        stamp = datetime.fromtimestamp(t_ms / 1000.0, UTC)
        fields: dict[str, Any] = {
            "time": stamp.strftime("%H%M%S") + f".{stamp.microsecond // 10000:02d}",
            "date": stamp.strftime("%d%m%y"),
            "lat": _dm(lat, 2, "NS"),
            "lon": _dm(lon, 3, "EW"),
            "knots": self.speed_kmh / _KNOT_KMH,
            "course": course,
        }
        return [nmea(getattr(self, f"_{kind.lower()}")(fields)) for kind in self.sentences]

    def _rmc(self, f: dict[str, Any]) -> str:
        mode = "E" if self.gga_quality == 6 else ("A" if self.status == "A" else "N")
        return (
            f"{self.talker}RMC,{f['time']},{self.status},{f['lat'][0]},{f['lat'][1]},"
            f"{f['lon'][0]},{f['lon'][1]},{f['knots']:.2f},{f['course']:.1f},{f['date']},,,{mode}"
        )

    def _vtg(self, f: dict[str, Any]) -> str:
        return (
            f"{self.talker}VTG,{f['course']:.1f},T,,M,{f['knots']:.2f},N,{self.speed_kmh:.2f},K,A"
        )

    def _gga(self, f: dict[str, Any]) -> str:
        return (
            f"{self.talker}GGA,{f['time']},{f['lat'][0]},{f['lat'][1]},{f['lon'][0]},"
            f"{f['lon'][1]},{self.gga_quality},{self.sats:02d},{self.hdop:.1f},{self.alt_m:.1f},"
            "M,8.6,M,,"
        )

    def _gsa(self, f: dict[str, Any]) -> str:
        del f
        svs = ",".join(f"{n:02d}" for n in range(1, 13))
        return f"{self.talker}GSA,A,3,{svs},{self.hdop * 1.6:.1f},{self.hdop:.1f},{self.hdop * 1.3:.1f}"

    def _gns(self, f: dict[str, Any]) -> str:
        return (
            f"{self.talker}GNS,{f['time']},{f['lat'][0]},{f['lat'][1]},{f['lon'][0]},"
            f"{f['lon'][1]},AA,{self.sats:02d},{self.hdop:.1f},{self.alt_m:.1f},8.6,,"
        )

    def _gll(self, f: dict[str, Any]) -> str:
        return (
            f"{self.talker}GLL,{f['lat'][0]},{f['lat'][1]},{f['lon'][0]},{f['lon'][1]},"
            f"{f['time']},{self.status},A"
        )


@dataclass
class AisVessel:
    """A vessel with an AIS transponder (Class A or B) moving along a route."""

    mmsi: int
    route: Route
    speed_kn: float = 8.0
    start_ms: int = 0
    ais_class: Literal["A", "B"] = "B"
    name: str = "ZHE DAI YU 1"
    callsign: str = "BZD1"
    ship_type: int = 30
    dimensions_m: tuple[int, int, int, int] = (20, 10, 3, 3)
    nav_status: int = 7
    _seq: int = 0

    def state(self, t_ms: int) -> tuple[float, float, float]:
        """(lat, lon, course) at time ``t_ms``."""
        elapsed_s = max(0.0, (t_ms - self.start_ms) / 1000.0)
        return self.route.at(elapsed_s * self.speed_kn * _KNOT_KMH / 3.6)

    def position(self, t_ms: int, *, channel: str = "A", own: bool = False) -> list[str]:
        """A position report (type 1 for Class A, 18 for Class B)."""
        lat, lon, course = self.state(t_ms)
        data: dict[str, Any] = {
            "mmsi": self.mmsi,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "speed": round(self.speed_kn, 1),
            "course": round(course, 1),
            "heading": round(course) % 360,
            "second": (t_ms // 1000) % 60,
        }
        if self.ais_class == "A":
            data.update(type=1, status=self.nav_status)
        else:
            data.update(type=18)
        return self._encode(data, channel=channel, own=own)

    def static(self, *, channel: str = "A", own: bool = False) -> list[str]:
        """Static data: type 5 (two fragments) for Class A, type 24 parts A and B for Class B."""
        bow, stern, port, starboard = self.dimensions_m
        size = {"to_bow": bow, "to_stern": stern, "to_port": port, "to_starboard": starboard}
        if self.ais_class == "A":
            self._seq = self._seq % 9 + 1
            data = {"type": 5, "mmsi": self.mmsi, "shipname": self.name, "callsign": self.callsign}
            data.update(ship_type=self.ship_type, destination="ZHOUSHAN", **size)
            return self._encode(data, channel=channel, own=own, seq_id=self._seq)
        part_a = {"type": 24, "mmsi": self.mmsi, "partno": 0, "shipname": self.name}
        part_b = {"type": 24, "mmsi": self.mmsi, "partno": 1, "callsign": self.callsign}
        part_b.update(ship_type=self.ship_type, **size)
        return self._encode(part_a, channel=channel, own=own) + self._encode(
            part_b, channel=channel, own=own
        )

    def _encode(
        self, data: dict[str, Any], *, channel: str, own: bool, seq_id: int | None = None
    ) -> list[str]:
        kind = "VDO" if own else "VDM"
        return list(encode_dict(data, sentence_type=kind, radio_channel=channel, seq_id=seq_id))


def knots_to_kmh(knots: float) -> float:
    """Knots -> km/h."""
    return knots * _KNOT_KMH


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2 in degrees [0, 360)."""
    azimuth, _, _ = _GEOD.inv(lon1, lat1, lon2, lat2)
    return math.fmod(azimuth + 360.0, 360.0)
