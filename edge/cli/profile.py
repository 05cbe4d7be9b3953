"""``hazwatch profile check FILE...``: validate firmware profiles before a site uses them."""

from __future__ import annotations

import argparse

from hazwatch.cli import Commands


def register(commands: Commands) -> None:
    """Add ``profile check``."""
    commands.group("profile", help="firmware profiles of Modbus device models")
    parser = commands.add(
        "profile check",
        help="validate profile files; every error names the file, point and key",
        handler=_check,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="profile TOML files")


def _check(args: argparse.Namespace) -> int:
    from edge.errors import ProfileError
    from edge.profiles import load_profile

    failed = 0
    for name in args.files:
        try:
            profile = load_profile(name)
        except ProfileError as exc:
            print(f"error: {exc}")
            failed += 1
            continue
        print(
            f"ok: {name}: {profile.vendor} {profile.model} firmware {profile.firmware}, "
            f"{len(profile.points)} points, {len(profile.statuses)} status registers"
        )
    return 1 if failed else 0
