"""``hazwatch admin``: enterprises, gateways, API keys and registry import, straight on the archive.

Tokens are printed once, when made; only their hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hazwatch.cli import Commands

if TYPE_CHECKING:
    from cloud.archive import Store

_Action = Callable[["Store", argparse.Namespace], Awaitable[int]]


def _database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="cloud TOML naming the database")
    parser.add_argument("--database", metavar="URL", help="database URL (overrides --config)")


def register(commands: Commands) -> None:
    """Add ``hazwatch admin enterprise|gateway|key|import``."""
    commands.group("admin", help="manage enterprises, gateways, API keys and the registry")

    enterprise = commands.add("admin enterprise", help="add or list enterprises", handler=_handle)
    actions = enterprise.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create or replace an enterprise")
    add.add_argument("id")
    add.add_argument("--name", required=True)
    add.add_argument("--region", required=True, help="GB/T 2260 code, e.g. 320281")
    add.set_defaults(action_fn=_enterprise_add)
    listing = actions.add_parser("list", help="list enterprises")
    listing.set_defaults(action_fn=_enterprise_list)
    for sub in (add, listing):
        _database_args(sub)

    gateway = commands.add("admin gateway", help="add or list gateways", handler=_handle)
    actions = gateway.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register a gateway for an enterprise")
    add.add_argument("id", help="gateway id (also its MQTT username)")
    add.add_argument("--enterprise", required=True)
    add.add_argument("--name", default="")
    add.set_defaults(action_fn=_gateway_add, changes_registry=True)
    listing = actions.add_parser("list", help="list gateways")
    listing.set_defaults(action_fn=_gateway_list)
    for sub in (add, listing):
        _database_args(sub)

    key = commands.add("admin key", help="create, list or revoke API keys", handler=_handle)
    actions = key.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key and print its token once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--role", required=True, choices=("admin", "regulator", "dispatcher"))
    scope = create.add_mutually_exclusive_group()
    scope.add_argument("--enterprise", help="a dispatcher's enterprise")
    scope.add_argument("--region", help="a regulator's GB/T 2260 region (320200: Wuxi city)")
    create.set_defaults(action_fn=_key_create)
    listing = actions.add_parser("list", help="list keys (hash prefix, name, role, scope)")
    listing.set_defaults(action_fn=_key_list)
    revoke = actions.add_parser("revoke", help="revoke a key by (a unique prefix of) its hash")
    revoke.add_argument("hash_prefix")
    revoke.set_defaults(action_fn=_key_revoke)
    for sub in (create, listing, revoke):
        _database_args(sub)

    imp = commands.add(
        "admin import", help="import a registry file (TOML, JSON, CSV)", handler=_handle
    )
    imp.add_argument("file")
    imp.add_argument("--kind", help="kind of a CSV file whose name does not say it (assets...)")
    imp.set_defaults(action_fn=_import, changes_registry=True)
    _database_args(imp)


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


def _handle(args: argparse.Namespace) -> int:
    from cloud.config import CloudSettings, ConfigError, load_settings

    try:
        settings = load_settings(args.config) if args.config else CloudSettings()
    except ConfigError as exc:
        print(f"hazwatch admin: {exc}", file=sys.stderr)
        return 2
    url = args.database or settings.database.url
    action: _Action = args.action_fn
    code = asyncio.run(_with_store(url, settings.database.schema, action, args))
    if code == 0 and getattr(args, "changes_registry", False) and settings.state.redis_url:
        asyncio.run(_tell_workers(settings.state.redis_url, settings.state.key_prefix))
    return code


async def _tell_workers(redis_url: str, key_prefix: str) -> None:
    """Bump the registry version so that running ingest workers drop their cached owners."""
    import redis.asyncio as aioredis

    from cloud.live import RedisLiveState

    client = aioredis.from_url(redis_url)
    try:
        await RedisLiveState(client, key_prefix).bump_registry_version()
    except (OSError, aioredis.RedisError) as exc:
        print(
            f"hazwatch admin: saved, but running workers were not told ({exc}); "
            "they pick the change up within a minute",
            file=sys.stderr,
        )
    finally:
        await client.aclose()


async def _with_store(
    url: str, schema: str | None, action: _Action, args: argparse.Namespace
) -> int:
    from cloud.archive import Store, StoreError

    try:
        store = await Store.connect(url, schema=schema)
    except (StoreError, OSError) as exc:
        print(f"hazwatch admin: cannot open the database {url}: {exc}", file=sys.stderr)
        return 1
    try:
        return await action(store, args)
    finally:
        await store.close()


def _fail(message: str) -> int:
    print(f"hazwatch admin: {message}", file=sys.stderr)
    return 1


async def _enterprise_add(store: Store, args: argparse.Namespace) -> int:
    from cloud.auth import AuthError, check_region
    from cloud.models import Enterprise

    try:
        check_region(args.region)
    except AuthError as exc:
        return _fail(str(exc))
    await store.put_enterprise(Enterprise(id=args.id, name=args.name, region=args.region))
    print(f"enterprise {args.id} ({args.region}) saved")
    return 0


async def _enterprise_list(store: Store, args: argparse.Namespace) -> int:
    for ent in await store.list_enterprises():
        print(f"{ent.id}\t{ent.region}\t{ent.name}")
    return 0


async def _gateway_add(store: Store, args: argparse.Namespace) -> int:
    from cloud.archive import ConflictError
    from cloud.models import Gateway
    from wire import WireError, check_gateway_id

    try:
        check_gateway_id(args.id)
        await store.put_gateway(Gateway(id=args.id, enterprise_id=args.enterprise, name=args.name))
    except WireError as exc:
        return _fail(exc.detail)
    except ConflictError:
        return _fail(f"unknown enterprise {args.enterprise!r}")
    print(f"gateway {args.id} of {args.enterprise} saved")
    return 0


async def _gateway_list(store: Store, args: argparse.Namespace) -> int:
    for gw in await store.list_gateways():
        print(f"{gw.id}\t{gw.enterprise_id}\t{gw.name}")
    return 0


async def _key_create(store: Store, args: argparse.Namespace) -> int:
    from cloud.auth import AuthError, make_key

    try:
        token, key = make_key(
            name=args.name, role=args.role, now_ms=_now_ms(),
            enterprise_id=args.enterprise, region=args.region,
        )  # fmt: skip
    except AuthError as exc:
        return _fail(str(exc))
    if args.enterprise and await store.get_enterprise(args.enterprise) is None:
        return _fail(f"unknown enterprise {args.enterprise!r}")
    await store.put_api_key(key)
    print(
        f"key {key.hash[:12]} ({key.role}) for {key.name}; the token is shown only now:",
        file=sys.stderr,
    )
    print(token)
    return 0


def _scope_text(key: Any) -> str:
    return key.enterprise_id or key.region or "*"


async def _key_list(store: Store, args: argparse.Namespace) -> int:
    for key in await store.list_api_keys():
        state = "revoked" if key.revoked_ms is not None else "active"
        print(f"{key.hash[:12]}\t{key.name}\t{key.role}\t{_scope_text(key)}\t{state}")
    return 0


async def _key_revoke(store: Store, args: argparse.Namespace) -> int:
    matches = [k for k in await store.list_api_keys() if k.hash.startswith(args.hash_prefix)]
    if len(matches) != 1:
        return _fail(f"{len(matches)} keys match {args.hash_prefix!r}: give a unique hash prefix")
    await store.revoke_api_key(matches[0].hash, now_ms=_now_ms())
    print(f"key {matches[0].hash[:12]} ({matches[0].name}) revoked")
    return 0


async def _import(store: Store, args: argparse.Namespace) -> int:
    from pathlib import Path

    from cloud.registry import RegistryError, import_registry, load_registry

    try:
        registry = load_registry(Path(args.file), kind=args.kind)
        counts = await import_registry(store, registry, file=args.file)
    except RegistryError as exc:
        return _fail(str(exc))
    print(", ".join(f"{n} {kind}" for kind, n in counts.items()) + f" imported from {args.file}")
    return 0
