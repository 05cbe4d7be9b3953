"""Property tests of every operation of the API, read from its own OpenAPI document.

Each operation family (an OpenAPI tag) gets arbitrary requests, as an admin and as a dispatcher:
bodies built from the documented request schema with any part swapped for arbitrary JSON (lone
surrogates, NUL and other control characters, huge numbers, NaN, deep nesting, wrong types) or
replaced by raw bytes; query and path values that are valid, arbitrary text or arbitrary bytes.
Whatever comes, the answer is no 5xx, has a documented status and matches the documented body;
after an accepted write, every list of the family (for tenants, a regulator and the admin) and
the written object still answer 200 with documented bodies: nothing stored is unreadable.

Operations come from ``/openapi.json``, so a route added later is fuzzed without a change here.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cloud.config import CloudSettings, MqttSettings
from cloud.main import API_PREFIX, create_app
from tests.cloud.api.conftest import World, open_world
from tests.cloud.api.test_openapi import conforms

Schema = dict[str, Any]
Operation = tuple[str, str, Schema]  # method, path, operation object

DOCUMENT: Schema = create_app(CloudSettings(mqtt=MqttSettings(enabled=False))).openapi()
#: Every tenant's view, a regulator's and the admin's: who reads the lists after a write.
READERS = ("admin", "disp-jy", "disp-sz", "reg-wuxi")
WRITERS = ("admin", "disp-jy")
#: Ids the seeded world holds (its own and another tenant's), tried as path values.
KNOWN_IDS = (
    "ent-jy", "gw-jy", "truck-jy", "site-jy", "LT01", "al-jy", "zone-jy", "truck-sz", "al-sz",
    "zone-sz", "site-sz",
)  # fmt: skip
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _streams(operation: Schema) -> bool:
    """Whether the operation answers an endless stream (not a request/answer to fuzz)."""
    success = operation["responses"].get("200", {}).get("content", {})
    return "text/event-stream" in success


def _operations() -> dict[str, list[Operation]]:
    families: dict[str, list[Operation]] = {}
    for path, item in DOCUMENT["paths"].items():
        if not path.startswith(API_PREFIX + "/"):
            continue
        for method, operation in item.items():
            if not _streams(operation):
                family = (operation.get("tags") or ["untagged"])[0]
                families.setdefault(family, []).append((method.upper(), path, operation))
    return families


FAMILIES = _operations()


def _resolve(schema: Schema) -> Schema:
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


# -- what to send ---------------------------------------------------------------------------

#: Any character, lone surrogates and control characters included.
_any_chars = st.characters() | st.characters(categories=["Cs", "Cc"]) | st.sampled_from("\x00\t\n")
_texts = st.text(_any_chars, max_size=12)
_numbers = (
    st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats()
    | st.sampled_from([10**40, -(10**30), 1e308, 5e-324, -0.0])
)
_scalars = st.none() | st.booleans() | _numbers | _texts
#: Arbitrary JSON (encoded with Python's writer: NaN and Infinity spelled as Python does).
junk = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=12,
)
#: Bodies no JSON writer makes: deep nesting, long numbers, bytes that are not UTF-8.
raw_bodies = st.one_of(
    st.integers(25, 40).map(lambda n: b"[" * n + b"]" * n),
    st.integers(25, 40).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 200).map(lambda n: b'{"comment": 1' + b"0" * n + b"}"),
    st.binary(max_size=24),
    st.binary(max_size=8).map(lambda b: b'{"name": "' + b + b'"}'),
)


def _positions(draw: st.DrawFn, count: int) -> list[list[float]]:
    lon = draw(st.floats(-179, 179))
    lat = draw(st.floats(-89, 89))
    return [[lon + 0.01 * i, lat + 0.005 * (i % 2)] for i in range(count)]


@st.composite
def _geometry(draw: st.DrawFn, types: list[str]) -> Schema:
    """A geometry of one of ``types`` that may well be valid (a small square, a line)."""
    kind = draw(st.sampled_from(types))
    if kind in ("Polygon", "MultiPolygon"):
        lon, lat = draw(st.floats(-179, 179)), draw(st.floats(-89, 89))
        size = draw(st.sampled_from([0.001, 0.01]))
        ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size]]
        ring.append(ring[0])
        return {"type": kind, "coordinates": [ring] if kind == "Polygon" else [[ring]]}
    line = _positions(draw, draw(st.integers(2, 4)))
    nested = kind == "MultiLineString"
    return {"type": kind, "coordinates": [line] if nested else line}


#: JSON that any free-form field takes (finite numbers, 64-bit integers, one-line text).
_line = st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=12)
valid_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _line,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_line, inner, max_size=3),
    max_leaves=8,
)


def from_schema(schema: Schema, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that follow a JSON schema of the document (mutated later, one place at a time)."""
    schema = _resolve(schema)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, depth) for s in schema[key]])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return _object(schema, depth)
    if kind == "array":
        items = from_schema(schema.get("items", {}), depth + 1) if depth < 4 else valid_json
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", 4), 4)))
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(
            None if low is None else int(low), None if high is None else min(int(high), 2**63 - 1)
        )
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        floats = st.floats(low, high, allow_nan=False, allow_infinity=False)
        return floats.filter(lambda x: x > schema.get("exclusiveMinimum", -math.inf))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return valid_json


def _object(schema: Schema, depth: int) -> st.SearchStrategy[Any]:
    props: dict[str, Schema] = schema.get("properties", {})
    geometry_types = _resolve(props.get("type", {})).get("enum", [])
    if "coordinates" in props and geometry_types:
        return _geometry(geometry_types)

    def value(name: str, sub: Schema) -> st.SearchStrategy[Any]:
        made = from_schema(sub, depth + 1)
        return st.sampled_from(KNOWN_IDS) | made if name.endswith("id") else made

    required = set(schema.get("required", ()))
    fixed = {k: value(k, v) for k, v in props.items() if k in required}
    optional = {k: value(k, v) for k, v in props.items() if k not in required}
    built = st.fixed_dictionaries(fixed, optional=optional)
    if schema.get("additionalProperties") is True:
        extra = st.dictionaries(_line, valid_json, max_size=2)
        return st.tuples(built, extra).map(lambda pair: {**pair[1], **pair[0]})
    return built


def _string(schema: Schema) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), min(schema.get("maxLength", 24), 24)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: low <= len(s) <= high)
    return st.text(
        st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=low, max_size=high
    )


def _places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where in JSON ``value`` a part can be swapped: the paths of all its nodes."""
    places = [at]
    if isinstance(value, dict):
        places += [p for k, v in value.items() for p in _places(v, (*at, k))]
    elif isinstance(value, list):
        places += [p for i, v in enumerate(value) for p in _places(v, (*at, i))]
    return places


def _swapped(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    head, *rest = at
    if isinstance(value, dict):
        return {**value, head: _swapped(value[head], tuple(rest), new)}
    return [_swapped(v, tuple(rest), new) if i == head else v for i, v in enumerate(value)]


@st.composite
def _mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with one part swapped for junk, or a junk member added to one of its objects."""
    at = draw(st.sampled_from(_places(value)))
    if draw(st.booleans()):
        return _swapped(value, at, draw(junk))
    target = value
    for step in at:
        target = target[step]
    if isinstance(target, dict):
        return _swapped(value, at, {**target, draw(_texts): draw(junk)})
    return _swapped(value, at, draw(junk))


def _query_text(value: Any) -> list[bytes]:
    """A generated query value as the bytes of each repetition (lists repeat the parameter)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [b for v in value for b in _query_text(v)]
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, bool):
        return [b"true" if value else b"false"]
    return [str(value).encode("utf-8", "surrogatepass")]


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


#: Path values: the world's ids, or text and bytes of any kind (no ``/``: that is routing).
_odd_path_values = st.one_of(_texts.map(_as_bytes), st.binary(min_size=1, max_size=12)).filter(
    lambda v: v not in (b"", b".", b"..") and b"/" not in v
)
#: Query values of any kind.
_odd_query_values = st.one_of(_texts, st.binary(max_size=8), _numbers, st.just(b"9" * 100))
_FAULTS = ("none", "none", "path", "query", "body", "body", "body_raw")


@st.composite
def requests(draw: st.DrawFn, operations: list[Operation]) -> tuple[str, str, Operation, Any]:
    """(key, url, operation, body): a valid request, or one with a single fault in its path,
    its query or its body; ``body`` is JSON-ready, ``bytes`` (raw) or ``None``."""
    method, path, operation = draw(st.sampled_from(operations))
    key = draw(st.sampled_from(WRITERS))
    fault = draw(st.sampled_from(_FAULTS))
    url = path
    pairs: list[tuple[bytes, bytes]] = []
    for parameter in operation.get("parameters", ()):
        name, where = parameter["name"], parameter["in"]
        if where == "path":
            odd = fault == "path" and draw(st.booleans())
            value = draw(_odd_path_values if odd else st.sampled_from(KNOWN_IDS).map(_as_bytes))
            url = url.replace("{" + name + "}", quote_from_bytes(value, safe=""))
        elif where == "query" and (parameter.get("required") or draw(st.booleans())):
            odd = fault == "query" and draw(st.booleans())
            chosen = draw(_odd_query_values if odd else from_schema(parameter.get("schema", {})))
            pairs += [(name.encode(), text) for text in _query_text(chosen)]
    if fault == "query":
        pairs.append((_as_bytes(draw(_texts)), draw(st.binary(max_size=8))))
    if pairs:
        url += "?" + "&".join(
            quote_from_bytes(n, safe="") + "=" + quote_from_bytes(v, safe="") for n, v in pairs
        )
    body: Any = None
    if "requestBody" in operation:
        body = draw(from_schema(operation["requestBody"]["content"]["application/json"]["schema"]))
        if fault == "body":
            body = draw(_mutated(body))
        elif fault == "body_raw":
            body = draw(raw_bodies)
    return key, url, (method, path, operation), body


# -- what must hold -------------------------------------------------------------------------


def _models() -> dict[str, type[BaseModel]]:
    """Pydantic models of the API by name (the document's component names)."""
    found: dict[str, type[BaseModel]] = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("cloud.api"):
            for value in vars(module).values():
                if inspect.isclass(value) and issubclass(value, BaseModel):
                    found.setdefault(value.__name__, value)
    return found


MODELS = _models()


def _documented_model(schema: Schema) -> Any:
    """The model a documented response schema names (``list[...]`` for arrays)."""
    if schema.get("type") == "array":
        return list.__class_getitem__(_documented_model(schema["items"]))
    name = schema["$ref"].rsplit("/", 1)[-1]
    assert name in MODELS, f"no model for {name}"
    return MODELS[name]


def check_answer(operation: Schema, answer: httpx.Response) -> None:
    """No 5xx; a documented status with a body matching the documented schema."""
    where = f"{answer.request.method} {answer.request.url}"
    assert answer.status_code < 500, (where, answer.text)
    documented = operation["responses"].get(str(answer.status_code))
    assert documented is not None, (where, answer.status_code, answer.text)
    content = documented.get("content", {}).get("application/json")
    if content is None:
        assert answer.content == b"", (where, answer.text)
        return
    assert answer.headers["content-type"] == "application/json", where
    conforms(_documented_model(content["schema"]), answer.json())


def _reads(family: list[Operation]) -> list[Operation]:
    """GET operations of a family that need no parameter: its lists."""
    return [
        op for op in family
        if op[0] == "GET" and not any(
            p["in"] == "path" or p.get("required") for p in op[2].get("parameters", ())
        )
    ]  # fmt: skip


def _item_read(family: list[Operation], path: str) -> Operation | None:
    """The GET of one object of the collection a write went to (``/zones/{object_id}``)."""
    collection = path.split("{", 1)[0].rstrip("/") + "/"
    pattern = re.compile(re.escape(collection) + r"\{[^}/]+\}")
    for op in family:
        required = [p for p in op[2].get("parameters", ()) if p.get("required")]
        if op[0] == "GET" and pattern.fullmatch(op[1]) and len(required) == 1:
            return op
    return None


async def still_readable(
    world: World, family: list[Operation], key: str, write: Operation, answer: httpx.Response
) -> None:
    """After an accepted write: the family's lists and the written object read back."""
    for _, path, operation in _reads(family):
        for reader in READERS:
            check_answer(operation, await world.http.get(path, headers=world.auth(reader)))
    created = answer.json() if answer.content else None
    item = _item_read(family, write[1])
    if isinstance(created, dict) and isinstance(created.get("id"), str) and item is not None:
        name = next(p["name"] for p in item[2]["parameters"] if p["in"] == "path")
        url = item[1].replace("{" + name + "}", quote(created["id"], safe=""))
        read = await world.http.get(url, headers=world.auth(key))
        assert read.status_code == 200, (url, read.text)
        check_answer(item[2], read)


async def send(world: World, key: str, url: str, method: str, body: Any) -> httpx.Response:
    headers = {**world.auth(key)}
    content: bytes | None = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await world.http.request(method, url, headers=headers, content=content)


def fuzz(max_examples: int) -> Callable[..., Any]:
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


async def _one(
    world: World, family: list[Operation], request: tuple[str, str, Operation, Any]
) -> None:
    key, url, operation, body = request
    answer = await send(world, key, url, operation[0], body)
    check_answer(operation[2], answer)
    if operation[0] in _WRITES and answer.status_code < 300:
        await still_readable(world, family, key, operation, answer)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@fuzz(max_examples=80)
@given(data=st.data())
async def test_no_request_breaks_a_family(world: World, family: str, data: st.DataObject) -> None:
    operations = FAMILIES[family]
    await _one(world, operations, data.draw(requests(operations), label="request"))


@pytest.fixture
async def postgres_world(tmp_path: Path, unique_id: str) -> AsyncIterator[World]:
    """The world on PostgreSQL and Redis."""
    async with open_world("postgres", tmp_path, unique_id) as opened:
        yield opened


@pytest.mark.services
@pytest.mark.parametrize("family", ["alerts", "routes", "sites", "zones"])
@fuzz(max_examples=30)
@given(data=st.data())
async def test_no_request_breaks_a_family_on_postgres(
    postgres_world: World, family: str, data: st.DataObject
) -> None:
    operations = FAMILIES[family]
    await _one(postgres_world, operations, data.draw(requests(operations), label="request"))


def test_every_operation_is_fuzzed() -> None:
    # Only streams are left out (an endless answer is not a request to fuzz).
    fuzzed = {(m, p) for ops in FAMILIES.values() for m, p, _ in ops}
    documented = {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        if path.startswith(API_PREFIX + "/")
        for method, operation in item.items()
        if not _streams(operation)
    }
    assert fuzzed == documented
    assert len(fuzzed) > 40
    assert any("requestBody" in op for ops in FAMILIES.values() for _, _, op in ops)
