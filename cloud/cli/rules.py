"""``hazwatch rules replay``: the rules engine over recorded fixes, one JSON line per event.

    hazwatch rules replay --world WORLD.json --fixes FIXES.jsonl [--config RULES.toml] [--until T]
    hazwatch rules replay --from-archive --cloud-config cloud.toml --asset A --from T1 --to T2

WORLD is one JSON document with assets, zones, lots, routes and trips in the shapes the API
takes (:mod:`cloud.rules.replay`); FIXES lines are wire ``fix`` items, in arrival order. With
``--from-archive`` the world and the asset's fixes come from the archive of a cloud config (every
version of every zone, so last month is judged by last month's zones). RULES.toml sets
thresholds like the cloud config's ``[rules]`` table. Same input, same output, byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hazwatch.cli import Commands

if TYPE_CHECKING:
    import wire
    from cloud.rules.config import RulesConfig

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``hazwatch rules replay``."""
    commands.group("rules", help="run the rules engine outside the service")
    parser = commands.add(
        "rules replay",
        help="replay recorded fixes through the rules: one JSON line per event",
        handler=_replay,
    )
    parser.add_argument("--world", metavar="FILE", help="world JSON (assets, zones, lots, ...)")
    parser.add_argument(
        "--fixes", metavar="FILE", help="wire fix items, one JSON per line (- for stdin)"
    )
    parser.add_argument("--config", metavar="FILE", help="TOML of thresholds ([rules] keys)")
    parser.add_argument("--until", type=int, metavar="MS", help="run the clock on to this time")
    parser.add_argument("--grace-s", type=float, default=60.0, help="clock lag (as the service)")
    parser.add_argument(
        "--from-archive", action="store_true", help="world and fixes from a cloud archive"
    )
    parser.add_argument(
        "--cloud-config", metavar="FILE", help="the cloud TOML (for --from-archive)"
    )
    parser.add_argument("--asset", help="the asset to replay (with --from-archive)")
    parser.add_argument("--from", dest="start", type=int, metavar="MS", help="start (UTC epoch ms)")
    parser.add_argument("--to", dest="end", type=int, metavar="MS", help="end (UTC epoch ms)")


def _fail(message: str) -> int:
    print(f"hazwatch rules replay: {message}", file=sys.stderr)
    return 2


def _replay(args: argparse.Namespace) -> int:
    import msgspec

    from cloud.rules.config import RulesConfig, RulesConfigError
    from cloud.rules.replay import WorldFileError, replay, world_from_document

    try:
        config = RulesConfig.from_mapping(_toml(args.config) if args.config else None)
    except (OSError, tomllib.TOMLDecodeError, RulesConfigError) as exc:
        return _fail(f"{args.config}: {exc}")
    if args.from_archive:
        return _from_archive(args, config)
    if not args.world or not args.fixes:
        return _fail("give --world and --fixes (or --from-archive)")
    try:
        document = msgspec.json.decode(Path(args.world).read_bytes())
        world = world_from_document(document, config=config)
    except (OSError, msgspec.DecodeError, WorldFileError) as exc:
        return _fail(f"{args.world}: {exc}")
    bad: list[str] = []
    fixes = _fixes(args.fixes, bad)
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    for event in replay(world, fixes, until_ms=args.until, grace_s=args.grace_s):
        out.write(encoder.encode(event) + b"\n")
    out.flush()
    if bad:
        print(f"hazwatch rules replay: {len(bad)} lines skipped; first: {bad[0]}", file=sys.stderr)
    return 0


def _toml(path: str) -> dict[str, object]:
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    rules = data.get("rules", data)
    return dict(rules) if isinstance(rules, dict) else {}


def _fixes(path: str, bad: list[str]) -> Iterator[wire.Fix]:
    import wire

    with contextlib.ExitStack() as stack:
        stream = sys.stdin.buffer if path == "-" else stack.enter_context(Path(path).open("rb"))
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                item = wire.decode_item(line.strip())
            except wire.WireError as exc:
                bad.append(f"line {number}: {exc}")
                continue
            if isinstance(item, wire.Fix):
                yield item
            else:
                bad.append(f"line {number}: a {type(item).__name__.lower()}, not a fix")


def _from_archive(args: argparse.Namespace, config: RulesConfig) -> int:
    import asyncio

    import msgspec

    from cloud.archive import Store
    from cloud.config import CloudSettings, ConfigError, load_settings
    from cloud.rules.replay import replay
    from cloud.rules.world import World

    if not (args.asset and args.start is not None and args.end is not None):
        return _fail("--from-archive needs --asset, --from and --to")
    try:
        settings = load_settings(args.cloud_config) if args.cloud_config else CloudSettings()
    except ConfigError as exc:
        return _fail(str(exc))
    rules = config if args.config else settings.rules

    async def load() -> tuple[World, list[wire.Fix]]:
        store = await Store.connect(settings.database.url, schema=settings.database.schema)
        try:
            current = await store.list_geo(None, None)
            history = await store.geo_history(("zone", "lot"))
            assets = await store.list_assets(None)
            track = await store.track(args.asset, args.start, args.end)
        finally:
            await store.close()
        objects = [o for o in current if o.kind in ("route", "trip")] + history
        return World.build(objects, assets, config=rules), list(track)

    try:
        world, fixes = asyncio.run(load())
    except Exception as exc:  # the archive unreachable, a schema too new, a broken object
        return _fail(f"reading the archive ({settings.database.url.split('@')[-1]}): {exc}")
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    for event in replay(world, fixes, until_ms=args.until or args.end, grace_s=args.grace_s):
        out.write(encoder.encode(event) + b"\n")
    out.flush()
    return 0
