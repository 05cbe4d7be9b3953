"""``hazwatch cloud``: run the cloud service (API, ingest, retention) under uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import sys

from hazwatch.cli import Commands


def register(commands: Commands) -> None:
    """Add ``hazwatch cloud``."""
    parser = commands.add(
        "cloud", help="run the cloud service: API, MQTT ingest, live state, archive", handler=_run
    )
    parser.add_argument("--config", metavar="FILE", help="cloud TOML (default: embedded settings)")
    parser.add_argument("--host", help="listen address (overrides [http] host)")
    parser.add_argument("--port", type=int, help="listen port (overrides [http] port)")
    parser.add_argument(
        "--no-ingest", action="store_true", help="serve the API only (no MQTT ingest)"
    )


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from cloud.config import CloudSettings, ConfigError, load_settings
    from cloud.main import create_app

    try:
        settings = load_settings(args.config) if args.config else CloudSettings()
    except ConfigError as exc:
        print(f"hazwatch cloud: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, run_ingest=False if args.no_ingest else None)
    config = uvicorn.Config(
        app,
        host=args.host or settings.http.host,
        port=args.port if args.port is not None else settings.http.port,
        ws="websockets-sansio",
        log_config=None,  # keep the logging hazwatch.cli set up
        lifespan="on",
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve())
    return 0 if server.started else 1
