"""Keys, roles and regions (pure parts)."""

from __future__ import annotations

import pytest

from cloud.auth import (
    AuthError,
    Scope,
    check_region,
    hash_token,
    make_key,
    new_token,
    resolve_scope,
)
from cloud.models import Enterprise

ENTERPRISES = [
    Enterprise(id="jy", name="Jiangyin", region="320281"),
    Enterprise(id="wx-city", name="Wuxi city level", region="320200"),
    Enterprise(id="lx", name="Liangxi", region="320213"),
    Enterprise(id="sz", name="Suzhou", region="320506"),
    Enterprise(id="nj", name="Nanjing", region="320102"),
    Enterprise(id="sh", name="Shanghai", region="310101"),
]


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("320000", {"jy", "wx-city", "lx", "sz", "nj"}),  # province: all of 32
        ("320200", {"jy", "wx-city", "lx"}),  # city: counties 3202xx and the city itself
        ("320281", {"jy"}),  # county: itself only
        ("320500", {"sz"}),
        ("310000", {"sh"}),
        ("330000", set()),
    ],
)
def test_regulator_scope_by_region(region: str, expected: set[str]) -> None:
    _, key = make_key(name="reg", role="regulator", region=region, now_ms=0)
    scope = resolve_scope(key, ENTERPRISES)
    assert scope.enterprise_ids == frozenset(expected)
    assert scope.role == "regulator"


def test_admin_and_dispatcher_scopes() -> None:
    _, admin = make_key(name="ops", role="admin", now_ms=0)
    assert resolve_scope(admin).enterprise_ids is None
    assert resolve_scope(admin).is_admin
    _, disp = make_key(name="d", role="dispatcher", enterprise_id="jy", now_ms=0)
    scope = resolve_scope(disp, ENTERPRISES)
    assert scope.enterprise_ids == frozenset({"jy"})
    assert scope.allows("jy")
    assert not scope.allows("lx")
    assert scope.allows(None)  # shared objects are visible ...
    assert not scope.can_write(None)  # ... but not writable by a dispatcher


def test_token_is_random_and_stored_hashed() -> None:
    token, key = make_key(name="ops", role="admin", now_ms=5)
    assert token.startswith("hzk_")
    assert len(token) > 40
    assert token not in key.hash
    assert key.hash == hash_token(token)
    assert new_token() != new_token()
    assert key.created_ms == 5


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"role": "root"}, "unknown role"),
        ({"role": "dispatcher"}, "one enterprise"),
        ({"role": "dispatcher", "enterprise_id": "jy", "region": "320200"}, "one enterprise"),
        ({"role": "regulator"}, "one region"),
        ({"role": "regulator", "region": "3202"}, "GB/T 2260"),
        ({"role": "regulator", "region": "000000"}, "GB/T 2260"),
        ({"role": "admin", "region": "320200"}, "neither"),
        # The name signs alert handling (acked_by, closed_by: 256 characters in the archive).
        ({"role": "admin", "name": "x" * 257}, "at most 256"),
    ],
)
def test_bad_key_requests(kwargs: dict[str, str], words: str) -> None:
    with pytest.raises(AuthError, match=words):
        make_key(**{"name": "x", "now_ms": 0, **kwargs})  # type: ignore[arg-type]


def test_check_region() -> None:
    assert check_region("320281") == "320281"
    with pytest.raises(AuthError):
        check_region("32028a")


def test_scope_is_immutable() -> None:
    scope = Scope(role="dispatcher", name="d", enterprise_ids=frozenset({"jy"}), enterprise_id="jy")
    with pytest.raises(AttributeError):
        scope.enterprise_ids = None  # type: ignore[misc]
