"""``hazwatch edge --config FILE``: run the edge agent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hazwatch.cli import Commands

__all__ = ["register", "run_agent"]


def run_agent(args: argparse.Namespace) -> int:
    """Load the config, build the sources and run the agent until SIGTERM.

    Returns:
        0 after a clean stop, 2 when the configuration is wrong (file, key and reason printed).
    """
    import asyncio

    from edge.agent import Agent
    from edge.config import build_sources, load_config
    from edge.errors import ConfigError

    try:
        settings = load_config(Path(args.config))
        sources = build_sources(settings)
    except ConfigError as exc:
        print(f"hazwatch edge: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{settings.file}: ok, gateway {settings.gateway_id}, {len(sources)} sources")
        return 0
    asyncio.run(Agent(settings, sources).run())
    return 0


def register(commands: Commands) -> None:
    """Add the ``edge`` command."""
    parser = commands.add(
        "edge", help="run the edge agent (sources -> buffer -> MQTT)", handler=run_agent
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="agent TOML file")
    parser.add_argument(
        "--check", action="store_true", help="only check the configuration and exit"
    )
