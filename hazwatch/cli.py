"""The ``hazwatch`` console script.

Subcommands plug in without touching this file or each other: every module in the packages of
:data:`COMMAND_PACKAGES` that defines ``register(commands: Commands) -> None`` is imported and
asked to add its commands. Command modules keep heavy imports inside their handlers so that
``hazwatch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Final

from hazwatch import __version__

__all__ = ["COMMAND_PACKAGES", "Commands", "Handler", "build_parser", "main"]

#: Packages whose modules contribute subcommands.
COMMAND_PACKAGES: Final = ("edge.cli", "cloud.cli", "simulators.cli")

#: A command handler gets the parsed arguments and returns the process exit code.
Handler = Callable[[argparse.Namespace], int]


class Commands:
    """Registry handed to each command module's ``register`` function."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._root = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
        self._groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    def group(self, name: str, *, help: str) -> None:
        """Declare a command group such as ``sim`` (idempotent: several modules may share it)."""
        if name not in self._groups:
            parser = self._root.add_parser(name, help=help, description=help)
            self._groups[name] = parser.add_subparsers(
                dest=f"{name}_command", metavar="COMMAND", required=True
            )

    def add(self, name: str, *, help: str, handler: Handler) -> argparse.ArgumentParser:
        """Add a command; ``"sim modbus"`` adds ``modbus`` to the ``sim`` group.

        Returns:
            The command's parser, to add its arguments to.
        """
        group, _, leaf = name.rpartition(" ")
        if group and group not in self._groups:
            raise ValueError(f"command group {group!r} must be declared with Commands.group first")
        subparsers = self._groups[group] if group else self._root
        parser = subparsers.add_parser(leaf, help=help, description=help)
        parser.set_defaults(handler=handler)
        return parser


def _command_modules() -> list[str]:
    names: list[str] = []
    for package_name in COMMAND_PACKAGES:
        package = importlib.import_module(package_name)
        names.extend(
            f"{package_name}.{info.name}"
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name)
            if not info.name.startswith("_")
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="hazwatch",
        description="Edge gateway and tracking/alerting service for work-safety supervision.",
    )
    parser.add_argument("--version", action="version", version=f"hazwatch {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level",
    )
    commands = Commands(parser)
    for module_name in _command_modules():
        register = getattr(importlib.import_module(module_name), "register", None)
        if callable(register):
            register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hazwatch`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
