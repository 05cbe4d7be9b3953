"""The whole system on embedded defaults, in one process and one event loop (``hazwatch demo``).

What runs (every port on 127.0.0.1):

* the embedded MQTT broker (amqtt, :mod:`simulators.broker`);
* a Modbus TCP simulator for a tank farm in Jiangyin (region 320281): a combustible gas
  detector whose value ramps through its 25 %LEL first alarm and back, a radar level and a
  temperature transmitter (:mod:`simulators.modbus`);
* a GNSS receiver feed (NMEA over TCP, ``GN`` talker plus BeiDou ``BD`` GSA) of a hazmat truck
  driving a loop through Jiangyin, and an AIS feed (``!AIVDM`` over TCP) of two Class B fishing
  vessels on the Yangtze (:mod:`simulators.nmea`);
* the edge agent with a generated TOML config and its SQLite buffer in the work folder;
* the cloud app on uvicorn: SQLite archive in the work folder, in-process live state, the
  registry seeded and three API keys made (admin, regulator of Wuxi 320200, dispatcher).

The scenario (ids, routes, registry, agent config, feeds) is in :mod:`simulators.demo_scenario`.
:func:`run_demo` runs it all until :meth:`Demo.stop` (or SIGINT/SIGTERM, or ``duration_s``),
then stops the agent first (so it flushes and says ``offline``), then the cloud, the feeds and
the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from amqtt.errors import BrokerError

from cloud.archive import Store
from cloud.config import CloudSettings, DatabaseSettings, HttpSettings, MqttSettings
from cloud.main import create_app
from edge.agent import Agent
from edge.config import build_sources, load_config
from simulators.broker import embedded_broker
from simulators.demo_scenario import Lines, agent_config, ais_lines, gnss_lines, seed, tank_farm

__all__ = ["Demo", "DemoInfo", "DemoOptions", "free_port", "line_feed", "run_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """Where the demo keeps its files and listens; 0 for a port means any free port."""

    workdir: Path = Path("var/demo")
    host: str = "127.0.0.1"
    http_port: int = 8000
    mqtt_port: int = 1884
    modbus_port: int = 0
    duration_s: float | None = None
    tile_url: str | None = None


@dataclass(kw_only=True)
class DemoInfo:
    """What runs where, and the tokens made for this run (shown once)."""

    options: DemoOptions
    modbus_port: int
    gnss_port: int
    ais_port: int
    agent_config: Path
    database: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The cloud's HTTP root."""
        return f"http://{self.options.host}:{self.options.http_port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def line_feed(
    lines: Lines, *, host: str, interval_s: float, clock_ms: Callable[[], int]
) -> AsyncIterator[int]:
    """Serve ``lines(now_ms, tick)`` over TCP every ``interval_s`` to each client; yield the port."""

    closing = asyncio.Event()
    clients: set[asyncio.Task[Any]] = set()

    async def client(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        clients.add(task)
        tick = 0
        try:
            while not closing.is_set():
                text = "".join(line + "\r\n" for line in lines(clock_ms(), tick))
                writer.write(text.encode("ascii"))
                await writer.drain()
                tick += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closing.wait(), interval_s)
        except (ConnectionError, OSError):
            pass
        finally:
            clients.discard(task)
            writer.close()

    server = await asyncio.start_server(client, host, 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        closing.set()  # clients loop until then (Python 3.11 has no Server.close_clients)
        if clients:
            await asyncio.wait(list(clients), timeout=2.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)


@contextlib.contextmanager
def _listening(host: str, port: int) -> Iterator[socket.socket]:
    """A TCP socket bound to ``host:port`` for uvicorn to serve on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        yield sock


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Demo:
    """Runs the demo; :meth:`run` calls ``on_ready`` once everything listens."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self._stop = asyncio.Event()
        self._agent: Agent | None = None

    def stop(self) -> None:
        """Ask everything to stop (also what SIGINT/SIGTERM do)."""
        self._stop.set()
        if self._agent is not None:
            self._agent.stop()

    async def run(self, on_ready: Callable[[DemoInfo], None] = lambda _: None) -> None:
        """Start the pieces in dependency order, wait for a stop, stop them in reverse."""
        opts = self.options
        workdir = opts.workdir.resolve()
        (workdir / "edge").mkdir(parents=True, exist_ok=True)
        start_ms = _wall_ms()
        modbus_port = opts.modbus_port or free_port(opts.host)
        async with contextlib.AsyncExitStack() as stack:
            # Bound first, so a port in use fails before anything starts (as an OSError).
            http_socket = stack.enter_context(_listening(opts.host, opts.http_port))
            try:
                await stack.enter_async_context(
                    embedded_broker(host=opts.host, port=opts.mqtt_port)
                )
            except BrokerError as exc:  # its way of saying the port is taken
                raise OSError(f"MQTT broker on {opts.host}:{opts.mqtt_port}: {exc}") from exc
            await stack.enter_async_context(tank_farm().tcp(modbus_port, host=opts.host))
            feed = {"host": opts.host, "clock_ms": _wall_ms}
            gnss_port = await stack.enter_async_context(
                line_feed(gnss_lines(start_ms), interval_s=1.0, **feed)  # type: ignore[arg-type]
            )
            ais_port = await stack.enter_async_context(
                line_feed(ais_lines(start_ms), interval_s=2.0, **feed)  # type: ignore[arg-type]
            )
            info = DemoInfo(
                options=opts, modbus_port=modbus_port, gnss_port=gnss_port, ais_port=ais_port,
                agent_config=workdir / "edge.toml", database=workdir / "cloud.db",
            )  # fmt: skip
            server = await self._start_cloud(stack, info, http_socket)
            info.agent_config.write_text(
                agent_config(
                    mqtt_host=opts.host,
                    mqtt_port=opts.mqtt_port,
                    modbus_port=modbus_port,
                    gnss_port=gnss_port,
                    ais_port=ais_port,
                ),
                encoding="utf-8",
            )
            agent_task = self._start_agent(info.agent_config)
            on_ready(info)
            await self._wait(agent_task)
            server.should_exit = True

    async def _start_cloud(
        self, stack: contextlib.AsyncExitStack, info: DemoInfo, http_socket: socket.socket
    ) -> uvicorn.Server:
        opts = self.options
        settings = CloudSettings(
            database=DatabaseSettings(url=f"sqlite+aiosqlite:///{info.database}"),
            mqtt=MqttSettings(host=opts.host, port=opts.mqtt_port, client_id="hazwatch-cloud:demo"),
            http=HttpSettings(host=opts.host, port=opts.http_port),
        )
        store = await Store.connect(settings.database.url)
        stack.push_async_callback(store.close)
        info.tokens = await seed(store, now_ms=_wall_ms())
        app = create_app(settings, store=store)
        config = uvicorn.Config(
            app, host=opts.host, port=opts.http_port, log_level="warning", lifespan="on",
            ws="websockets-sansio",
        )  # fmt: skip
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[http_socket]), name="cloud-http")

        async def stop_server() -> None:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10.0)

        stack.push_async_callback(stop_server)
        while not server.started:
            if task.done():
                raise RuntimeError(f"the cloud API did not start on port {opts.http_port}")
            await asyncio.sleep(0.05)
        return server

    def _start_agent(self, config: Path) -> asyncio.Task[None]:
        settings = load_config(config)
        self._agent = Agent(settings, build_sources(settings), source_restart_s=1.0)
        if self._stop.is_set():
            self._agent.stop()
        return asyncio.create_task(self._agent.run(), name="edge-agent")

    async def _wait(self, agent_task: asyncio.Task[None]) -> None:
        stopper = asyncio.create_task(self._stop.wait(), name="demo-stop")
        waiters: set[asyncio.Task[Any]] = {agent_task, stopper}
        timeout = self.options.duration_s
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
        # The agent handles SIGINT itself (it stops and flushes): that ends the demo too.
        self.stop()
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
        try:
            await asyncio.wait_for(agent_task, 15.0)
        except TimeoutError:
            log.warning("the edge agent did not stop within 15 s")
        except Exception:
            log.exception("the edge agent failed")
        del done


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the demo (it shares the event loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_demo(
    options: DemoOptions, *, on_ready: Callable[[DemoInfo], None] = lambda _: None
) -> None:
    """Run the demo until SIGINT/SIGTERM or ``options.duration_s``."""
    import signal

    demo = Demo(options)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, demo.stop)
    try:
        await demo.run(on_ready)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
