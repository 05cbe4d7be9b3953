"""The rules every request follows (cloud/api/boundary.py, cloud/api/deps.py), one test per
finding of the outside review: text that cannot be stored or read back, loose typing, a 400 and
a 405 the document does not tell, constraints the schema did not state.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from cloud.api import schemas as out
from cloud.api.boundary import echo_errors
from cloud.main import API_PREFIX
from cloud.models import GeoObject
from tests.cloud.api.conftest import T0_MS, World, square
from tests.cloud.api.test_openapi import conforms

ZONE = {"type": "Feature", "geometry": square(120.3, 31.5), "properties": {"name": "z"}}


def _zone(**properties: Any) -> dict[str, Any]:
    return {**ZONE, "properties": {"name": "z", **properties}}


async def _raw(
    world: World,
    method: str,
    path: str,
    content: bytes,
    *,
    key: str = "admin",
    content_type: str | None = "application/json",
) -> httpx.Response:
    headers = world.auth(key)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await world.http.request(method, API_PREFIX + path, headers=headers, content=content)


def _standard_422(answer: httpx.Response) -> list[dict[str, Any]]:
    """The standard error body of a 422: a list of issues, each with loc, msg and type."""
    assert answer.status_code == 422, answer.text
    body = conforms(out.ValidationErrorOut, answer.json())
    assert isinstance(body.detail, list), answer.text
    return [issue.model_dump() for issue in body.detail]


async def _lists_still_read(world: World) -> None:
    """Every tenant, the regulators and the admin still read zones and routes."""
    for key in ("disp-jy", "disp-sz", "reg-wuxi", "reg-sz", "admin"):
        for plural, model in (("zones", out.ZoneCollection), ("routes", out.RouteCollection)):
            answer = await world.get(key, f"/{plural}")
            assert answer.status_code == 200, (key, plural, answer.text)
            conforms(model, answer.json())


# -- 1. text that could not be stored or read back ------------------------------------------

SURROGATE = '"\\ud800"'  # a lone surrogate as JSON spells it: no UTF-8 form


_GEOMETRY = json.dumps(square(120.3, 31.5))
_LINE = '{"type": "LineString", "coordinates": [[120.3, 31.5], [120.4, 31.5]]}'


@pytest.mark.parametrize(
    ("key", "method", "path", "body"),
    [
        ("disp-jy", "POST", "/zones", '{"type": "Feature", "geometry": GEOMETRY, "properties": {"name": "z", "note": BAD}}'),
        ("disp-jy", "POST", "/routes", '{"type": "Feature", "geometry": LINE, "properties": {"name": "r", "x": [{"y": BAD}]}}'),
        ("reg-wuxi", "POST", "/zones", '{"type": "Feature", "geometry": GEOMETRY, "properties": {"name": BAD}}'),
        ("admin", "POST", "/zones", '{"type": "Feature", "geometry": GEOMETRY, "properties": {"name": "z", BAD: 1}}'),
        ("disp-jy", "PUT", "/zones/zone-jy", '{"type": "Feature", "geometry": GEOMETRY, "properties": {"name": "z", "note": BAD}}'),
        ("disp-jy", "POST", "/alerts/al-jy/comment", '{"comment": BAD}'),
        ("admin", "POST", "/assets", '{"enterprise_id": "ent-jy", "asset_class": "other", "name": BAD}'),
        ("admin", "PUT", "/sites/site-jy/points/LT09", '{"unit": BAD}'),
    ],
)  # fmt: skip
async def test_a_lone_surrogate_is_a_422_and_nothing_unreadable_is_stored(
    any_world: World, key: str, method: str, path: str, body: str
) -> None:
    # It was a 500 (the 422 handler failed on its echo), and zone properties holding one were
    # stored anyway: GET /zones then answered 500 for that tenant, regulators and the admin
    # (for every tenant when the zone was shared).
    text = body.replace("GEOMETRY", _GEOMETRY).replace("LINE", _LINE).replace("BAD", SURROGATE)
    content = text.encode()
    answer = await _raw(any_world, method, path, content, key=key)
    issues = _standard_422(answer)
    assert "surrogate" in issues[0]["msg"]
    await _lists_still_read(any_world)
    alert = await any_world.get("disp-jy", "/alerts/al-jy")
    assert alert.status_code == 200
    conforms(out.AlertOut, alert.json())


async def test_text_stored_before_the_rules_still_reads(any_world: World) -> None:
    # Both archives keep a lone surrogate inside JSON (as an escape: PostgreSQL's json type
    # takes it): a row written before the rules must not make every later list answer 500.
    zone = GeoObject(
        id="old", kind="zone", name="old", geometry=square(120.3, 31.5),
        properties={"note": "a\udfff", "k\ud800": [1]},
    )  # fmt: skip
    await any_world.store.put_geo(zone, now_ms=T0_MS)
    for key in ("disp-sz", "admin"):
        answer = await any_world.get(key, "/zones")
        assert answer.status_code == 200, answer.text
        shown = {f.id: f for f in conforms(out.ZoneCollection, answer.json()).features}
        assert shown["old"].properties.model_extra == {"note": "a\\udfff", "k\\ud800": [1]}


@pytest.mark.parametrize(
    ("key", "method", "path", "body"),
    [
        # NUL anywhere (PostgreSQL text refuses it), ESC / CR / DEL / C1 in any text.
        ("admin", "POST", "/assets", {"enterprise_id": "ent-jy", "asset_class": "other", "plate": "A\x1b[2J"}),
        ("admin", "POST", "/zones", _zone(enterprise_id="ent-jy", note="a\rb")),
        ("disp-jy", "POST", "/zones", _zone(**{"bad\x7fkey": 1})),
        ("disp-jy", "POST", "/alerts/al-jy/comment", {"comment": "valve\x85closed"}),
        ("disp-jy", "POST", "/alerts/al-jy/comment", {"comment": "cr\rlf"}),
        # TAB and LF: only in free text (comments, free-form properties), not in names and ids.
        ("admin", "POST", "/assets", {"enterprise_id": "ent-jy", "asset_class": "other", "name": "a\tb"}),
        ("disp-jy", "POST", "/zones", _zone(name="two\nlines")),
        ("disp-jy", "POST", "/zones", {**_zone(), "id": "z\t1"}),
        ("disp-jy", "POST", "/zones", _zone(**{"tab\tkey": 1})),
    ],
)  # fmt: skip
async def test_control_characters_are_a_422(
    any_world: World, key: str, method: str, path: str, body: Any
) -> None:
    answer = await any_world.send(method, key, path, body)
    assert answer.status_code == 422, answer.text
    conforms(out.ValidationErrorOut, answer.json())
    await _lists_still_read(any_world)


async def test_free_text_keeps_tab_and_line_feed(any_world: World) -> None:
    note = "valve 3 closed\n\tpressure back to 1.2 MPa"
    answer = await any_world.send("POST", "disp-jy", "/alerts/al-jy/comment", {"comment": note})
    assert answer.status_code == 200, answer.text
    assert answer.json()["comment"] == note
    zone = await any_world.send("POST", "disp-jy", "/zones", _zone(remark=note))
    assert zone.status_code == 201, zone.text
    again = await any_world.get("disp-jy", f"/zones/{zone.json()['id']}")
    assert again.json()["properties"]["remark"] == note


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}, "properties.deep.a.b.c.d.e.f.g"),
        ({"big": list(range(20_000))}, "properties"),
        ({"n": 2**63}, "properties.n"),
        ({"n": [-(2**63) - 1]}, "properties.n[0]"),
    ],
)  # fmt: skip
async def test_free_form_properties_are_bounded(
    any_world: World, properties: dict[str, Any], field: str
) -> None:
    # Whatever is stored must read back as given, through both archives and the encoder.
    answer = await any_world.send("POST", "disp-jy", "/zones", _zone(**properties))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == field
    await _lists_still_read(any_world)


async def test_free_form_properties_round_trip(any_world: World) -> None:
    extra = {
        "limits": {"speed_kmh": [60, 80.5], "night": None, "ok": True},
        "n": -(2**63), "m": 2**63 - 1, "tiny": 5e-324, "neg_zero": -0.0,
        "text": "中文 ✓ 🚚 \t\n", "": "empty key", "deep": [[[[[[1]]]]]],
    }  # fmt: skip
    created = await any_world.send("POST", "disp-jy", "/zones", _zone(**extra))
    assert created.status_code == 201, created.text
    for path in ("/zones", f"/zones/{created.json()['id']}"):
        answer = await any_world.get("disp-jy", path)
        assert answer.status_code == 200
        body = answer.json()
        features = {f["id"]: f for f in body.get("features", [body])}
        feature = features[created.json()["id"]]
        assert {k: feature["properties"][k] for k in extra} == extra


# -- the 422 handler and malformed bodies ---------------------------------------------------


def test_the_422_echo_never_fails() -> None:
    # Pydantic echoes what it refused; FastAPI's encoder failed on a lone surrogate or on bytes
    # that are not UTF-8, turning the 422 into a 500.
    errors: list[dict[str, Any]] = [
        {"type": "string_type", "loc": ("body", "a\ud800"), "msg": "x", "input": "\ud800\x00"},
        {"type": "model_attributes_type", "loc": ("body",), "msg": "y", "input": b"\xff\xfe"},
        {"type": "value_error", "loc": ("body",), "msg": "z", "input": {"k": [float("nan")]},
         "ctx": {"error": ValueError("bad \udc80")}, "url": "https://errors.pydantic.dev"},
        {"type": "too_long", "loc": ("body",), "msg": "w", "input": "x" * 100_000},
    ]  # fmt: skip
    safe = echo_errors(errors)
    encoded = json.dumps(safe, ensure_ascii=False, allow_nan=False).encode()
    assert b"\\ud800" in encoded
    assert b"\\x00" in encoded
    assert len(encoded) < 2_000
    assert all("url" not in issue for issue in safe)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"comment": "\xff"}', "application/json"),  # not UTF-8: was 400
        (b'{"comment": "x"', "application/json"),  # truncated
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),  # RecursionError: was 400
        (b'{"comment": 1' + b"0" * 5000 + b"}", "application/json"),  # int too long: was 400
        ('{"comment": "x"}'.encode("utf-16"), "application/json"),
        (b'\xef\xbb\xbf{"comment": "x"}', "application/json"),  # a BOM
        (b'{"comment": "\xff"}', None),  # no content type: bytes echoed, was 500
        (b'{"comment": "x"}', "text/plain"),
        (b'{"comment": "x", "comment": NaN}', "application/json"),
        (b'{"comment": "' + b"x" * (5 * 1024 * 1024) + b'"}', "application/json"),
    ],
)
async def test_malformed_bodies_are_a_standard_422(
    any_world: World, content: bytes, content_type: str | None
) -> None:
    answer = await _raw(
        any_world, "POST", "/alerts/al-jy/comment", content, key="disp-jy",
        content_type=content_type,
    )  # fmt: skip
    _standard_422(answer)
    assert (await any_world.store.get_alert("al-jy")).state == "open"  # type: ignore[union-attr]


# -- 2. typing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/assets", {"enterprise_id": "ent-jy", "asset_class": "fishing_vessel", "mmsi": False}),
        ("POST", "/assets", {"enterprise_id": "ent-jy", "asset_class": "fishing_vessel", "mmsi": "412000001"}),
        ("POST", "/assets", {"enterprise_id": "ent-jy", "asset_class": "fishing_vessel", "mmsi": 412000001.0}),
        ("POST", "/sites", {"enterprise_id": "ent-jy", "name": "s", "lat": "31.5", "lon": 120.3}),
        ("POST", "/sites", {"enterprise_id": "ent-jy", "name": "s", "lat": True, "lon": 120.3}),
        ("PUT", "/sites/site-jy/points/PT9", {"unit": "m", "h": False}),
        ("PUT", "/sites/site-jy/points/PT9", {"unit": 5}),
        ("POST", "/alerts/al-jy/comment", {"comment": 5}),
        ("POST", "/alerts/al-jy/comment", {"comment": "x", "commment": "typo"}),
        ("POST", "/zones", _zone(valid_from_ms=True)),
        ("POST", "/zones", _zone(valid_from_ms=1.5)),
        ("POST", "/zones", _zone(enterprise_id=1)),
        ("POST", "/routes", {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[120.3, 31.5], [120.4, 31.5]]}, "properties": {"name": "r", "corridor_m": True}}),
        ("POST", "/zones", {**_zone(), "type": "feature"}),
        ("POST", "/zones", {**_zone(), "id": 7}),
        ("POST", "/zones", {**_zone(), "geometry": "POLYGON ((0 0))"}),
    ],
)  # fmt: skip
async def test_bodies_are_typed_strictly(
    any_world: World, method: str, path: str, body: dict[str, Any]
) -> None:
    # `false` was taken as 0 (`{"mmsi": false}` made MMSI 0), "31.5" as a number, 12.0 as 12.
    answer = await any_world.send(method, "admin", path, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/assets", "GET, POST"),
        ("/zones", "GET, POST"),
        ("/zones/zone-jy", "DELETE, GET, PUT"),
        ("/sites/site-jy/points/LT01", "PUT"),
        ("/alerts/al-jy/close", "POST"),
    ],
)
async def test_405_lists_the_methods_of_the_path(world: World, path: str, methods: str) -> None:
    # It listed `Allow: GET` on paths that take POST (the first route of the path only).
    answer = await world.http.patch(API_PREFIX + path, headers=world.auth("admin"))
    assert answer.status_code == 405
    assert answer.headers["allow"] == methods
    conforms(out.ErrorOut, answer.json())


@pytest.mark.parametrize(
    "url",
    [
        "/alerts?kind=%ED%A0%80",  # a surrogate, UTF-8 style: not UTF-8
        "/alerts?kind=%FF",
        "/alerts?asset_id=a%01b",
        "/alerts?site_id=a%09b",  # no free text in queries: no TAB either
        "/alerts?kind=" + "k" * 2000,
        "/ingest/gaps?gateway_id=%00",
        "/assets?asset_class=%1B",
        "/assets/a%0Ab",
        "/zones/%ED%A0%80",
        "/alerts/" + "a" * 3000,
        "/alerts?state=open&state=bogus",
    ],
)
async def test_queries_and_paths_follow_the_text_rules(world: World, url: str) -> None:
    answer = await world.http.get(API_PREFIX + url, headers=world.auth("admin"))
    _standard_422(answer)


# -- the schema says what the code checks ---------------------------------------------------


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in operation["parameters"] if p["name"] == name)
    return found


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


async def test_the_schema_states_the_checks(world: World) -> None:
    document = (await world.http.get("/openapi.json")).json()
    paths = document["paths"]
    alerts = paths[API_PREFIX + "/alerts"]["get"]
    state = _parameter(alerts, "state")["schema"]
    states = state["anyOf"][0]["items"]
    assert sorted(states["enum"]) == ["acknowledged", "closed", "open"]
    assert _parameter(alerts, "kind")["schema"]["anyOf"][0]["maxLength"] == 64
    track = paths[API_PREFIX + "/assets/{asset_id}/track"]["get"]
    assert "after start_ms" in _parameter(track, "end_ms")["description"]
    assert _parameter(track, "asset_id")["schema"]["maxLength"] == 128
    comment = paths[API_PREFIX + "/alerts/{alert_id}/comment"]["post"]
    handling = _resolve(document, comment["requestBody"]["content"]["application/json"]["schema"])
    assert handling["properties"]["comment"]["maxLength"] == 4000
    assert handling["additionalProperties"] is False
    for plural, types, required in (
        ("zones", ["LineString", "MultiLineString", "MultiPolygon", "Point", "Polygon"], ["name"]),
        ("routes", ["LineString", "MultiLineString"], ["name"]),
        (
            "trips",
            ["LineString", "MultiLineString", "MultiPoint"],
            ["name", "asset_id", "route_id", "start_ms", "end_ms"],
        ),
    ):
        post = paths[f"{API_PREFIX}/{plural}"]["post"]
        body = _resolve(document, post["requestBody"]["content"]["application/json"]["schema"])
        geometry = body["properties"]["geometry"]
        assert sorted(geometry["properties"]["type"]["enum"]) == types
        properties = body["properties"]["properties"]
        assert properties["required"] == required
        # FastAPI's document keeps bounds as floats: 2**63 - 1 reads as 2**63.
        assert properties["properties"]["valid_to_ms"]["anyOf"][0]["maximum"] >= 2**63 - 1
    rules = document["components"]["schemas"]["ValidationErrorOut"]["description"]
    assert "surrogate" in rules
