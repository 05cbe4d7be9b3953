"""API keys, roles and tenant scope.

A key is a random bearer token shown once at creation and stored only as its SHA-256 (the token
has 256 bits of entropy, so a plain hash is enough: no salt or slow hash is needed). Each key
has a role:

* ``admin`` sees and changes everything;
* ``regulator`` sees every enterprise whose GB/T 2260 region lies within the key's region (a
  city key ``320200`` covers the counties ``3202xx``; a province key ``320000`` all of ``32``);
* ``dispatcher`` sees one enterprise.

A request's :class:`Scope` resolves to the ``enterprise_ids`` every store query takes (``None``
for admin), so isolation is decided in one place.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from cloud.models import ROLES, ApiKey, Enterprise, Role, region_contains

__all__ = [
    "TICKET_PREFIX",
    "TOKEN_PREFIX",
    "AuthError",
    "KeyStore",
    "Scope",
    "authenticate",
    "authenticate_hash",
    "check_region",
    "hash_token",
    "make_key",
    "new_ticket",
    "new_token",
    "resolve_scope",
]

#: Tokens start with this so they are recognisable in logs and secret scanners.
TOKEN_PREFIX: Final = "hzk_"
#: Live-stream tickets: what a browser puts in a stream's URL instead of its key.
TICKET_PREFIX: Final = "hzt_"
_REGION_RE: Final = re.compile(r"[1-9][0-9]{5}")
#: Longest key name (it is recorded as who acknowledged or closed an alert).
MAX_NAME: Final = 256


class AuthError(ValueError):
    """A key that cannot be made (bad role, region or enterprise combination)."""


class KeyStore(Protocol):
    """What :func:`authenticate` needs from the archive (:class:`cloud.archive.Store` has it)."""

    async def api_key(self, key_hash: str) -> ApiKey | None: ...

    async def enterprise_ids_in_region(self, region: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Scope:
    """Who is asking and which enterprises they may see.

    Attributes:
        role: the key's role.
        name: the key's name, recorded as the actor of alert handling.
        enterprise_ids: enterprises in scope; ``None`` means all (admin).
        enterprise_id: a dispatcher's enterprise.
        region: a regulator's region code.
    """

    role: Role
    name: str
    enterprise_ids: frozenset[str] | None
    enterprise_id: str | None = None
    region: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the scope is unrestricted."""
        return self.enterprise_ids is None

    def allows(self, enterprise_id: str | None) -> bool:
        """Whether an object of ``enterprise_id`` is visible (``None``: shared, regulator-wide)."""
        if self.enterprise_ids is None or enterprise_id is None:
            return True
        return enterprise_id in self.enterprise_ids

    def can_write(self, enterprise_id: str | None) -> bool:
        """Whether objects of ``enterprise_id`` may be changed; shared ones need admin/regulator."""
        if enterprise_id is None:
            return self.role in ("admin", "regulator")
        return self.allows(enterprise_id)


def new_ticket() -> str:
    """A fresh stream ticket (192 random bits): single use, valid for seconds."""
    return TICKET_PREFIX + secrets.token_urlsafe(24)


def new_token() -> str:
    """A fresh bearer token (256 random bits, URL-safe)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_region(code: str) -> str:
    """Return a valid GB/T 2260 code (6 digits, not starting with 0) or raise :class:`AuthError`."""
    if not _REGION_RE.fullmatch(code):
        raise AuthError(f"region {code!r} is not a GB/T 2260 code (6 digits such as 320200)")
    return code


def make_key(
    *,
    name: str,
    role: str,
    now_ms: int,
    enterprise_id: str | None = None,
    region: str | None = None,
) -> tuple[str, ApiKey]:
    """A new token and the record to store for it; the token is not kept anywhere.

    Raises:
        AuthError: unknown role, or the role's required enterprise/region missing or extra.
    """
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if not name:
        raise AuthError("a key needs a name")
    if len(name) > MAX_NAME:
        # The name signs alert handling: the archive keeps acked_by/closed_by in that many.
        raise AuthError(f"a key name has at most {MAX_NAME} characters")
    if role == "dispatcher" and (enterprise_id is None or region is not None):
        raise AuthError("a dispatcher key names one enterprise (and no region)")
    if role == "regulator" and (region is None or enterprise_id is not None):
        raise AuthError("a regulator key names one region (and no enterprise)")
    if role == "admin" and (region is not None or enterprise_id is not None):
        raise AuthError("an admin key names neither enterprise nor region")
    if region is not None:
        check_region(region)
    token = new_token()
    key = ApiKey(
        hash=hash_token(token),
        name=name,
        role=role,  # type: ignore[arg-type]  # checked against ROLES above
        enterprise_id=enterprise_id,
        region=region,
        created_ms=now_ms,
    )
    return token, key


def resolve_scope(key: ApiKey, enterprises: Iterable[Enterprise] = ()) -> Scope:
    """The scope of a key; a regulator's is every enterprise in ``enterprises`` in its region."""
    if key.role == "admin":
        return Scope(role="admin", name=key.name, enterprise_ids=None)
    if key.role == "dispatcher":
        ids = frozenset({key.enterprise_id} if key.enterprise_id else ())
        return Scope(
            role="dispatcher", name=key.name, enterprise_ids=ids, enterprise_id=key.enterprise_id
        )
    region = key.region or ""
    ids = frozenset(e.id for e in enterprises if region and region_contains(region, e.region))
    return Scope(role="regulator", name=key.name, enterprise_ids=ids, region=key.region)


def _regulator_scope(key: ApiKey, ids: Collection[str]) -> Scope:
    return Scope(role="regulator", name=key.name, enterprise_ids=frozenset(ids), region=key.region)


async def authenticate(store: KeyStore, token: str) -> Scope | None:
    """The scope of a bearer token, or ``None`` for an unknown or revoked one."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return await authenticate_hash(store, hash_token(token))


async def authenticate_hash(store: KeyStore, key_hash: str) -> Scope | None:
    """The scope of the key stored under ``key_hash`` (a stream opened with a ticket checks
    its key again this way, without ever holding the key), or ``None``."""
    key = await store.api_key(key_hash)
    if key is None or key.revoked_ms is not None:
        return None
    if key.role == "regulator":
        ids = await store.enterprise_ids_in_region(key.region) if key.region else []
        return _regulator_scope(key, ids)
    return resolve_scope(key)
