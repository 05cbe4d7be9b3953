"""A device that stops answering is found within a few polls and never holds its bus.

A hung device keeps its TCP connection (or its place on the RS-485 line) but sends nothing:
:class:`HangingProxy` swallows the requests to a real simulator behind it and counts them, so
the tests count what reaches the device rather than what the poller says it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.pipeline import CollectingSink
from edge.sources.modbus import ModbusSource, build_sources
from simulators.modbus import ModbusSimulator, SimDevice
from tests.edge.modbus.conftest import HERE, SerialLine, profile
from tests.edge.modbus.test_poller_tcp import alarms, make_source, poll, readings, wait_until
from tests.support.procs import free_port

#: four coalesced reads per poll with the default max_gap, 35 without merging
GAS = "gas_controller_16ch_v2"


class HangingProxy:
    """A Modbus TCP relay in front of a simulator that can hang or refuse connections.

    Attributes:
        hung: Requests are swallowed while the connection stays open (a frozen device).
        refusing: Every connection is closed as soon as it is accepted.
        accepted: Connections accepted: the connection attempts that reached the socket.
        requests: Modbus TCP request frames received, forwarded or not.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.hung = False
        self.refusing = False
        self.accepted = 0
        self.requests = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    @contextlib.asynccontextmanager
    async def serve(self, port: int) -> AsyncIterator[HangingProxy]:
        """Listen on ``127.0.0.1:port`` while the context is open."""
        server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()  # the pumps see end of file and the handlers return
            await asyncio.gather(*self._handlers)
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        try:
            if not self.refusing:
                await self._relay(reader, writer)
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(handler)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.add(up_writer)
        pumps = [
            asyncio.create_task(self._requests(reader, up_writer)),
            asyncio.create_task(self._answers(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            up_writer.close()
            self._writers.discard(up_writer)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _requests(self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, OSError):
            while True:
                header = await reader.readexactly(6)  # MBAP: tid, protocol, length
                body = await reader.readexactly(int.from_bytes(header[4:6], "big"))
                self.requests += 1
                if not self.hung:
                    upstream.write(header + body)

    @staticmethod
    async def _answers(reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(4096):
                client.write(data)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("retries", [0, 2])
async def test_a_hung_device_costs_one_request_per_try_and_comes_back(
    tmp_path: Path, port: int, retries: int
) -> None:
    dev = SimDevice(profile(GAS), unit=1)
    dev.set("CH01", 5)
    proxy, proxy_port = HangingProxy(port), free_port()
    source = make_source(tmp_path, proxy_port, [{"name": "gc", "profile": GAS}],
                         retries=retries, retry_backoff_s=0.01, offline_after=3)  # fmt: skip
    async with ModbusSimulator([dev]).tcp(port), proxy.serve(proxy_port):
        await poll(source)
        assert proxy.requests == len(source.devices["gc"].reads) == 4
        proxy.hung = True
        sink = await poll(source, 3)
        # the first unanswered read ends each poll: its tries only, never the other 3 reads
        assert proxy.requests - 4 == 3 * (retries + 1)
        assert alarms(sink) == [("raise", "fault", "gc")]
        assert source.health().counters["polls_failed"] == 3
        proxy.hung = False
        sink = await poll(source)
    source.close()
    assert alarms(sink) == [("clear", "fault", "gc")]
    assert (readings(sink)["gc.CH01"].value, readings(sink)["gc.CH01"].quality) == (5, "good")
    assert source.health().devices == {"gc": "online"}


async def test_a_hung_device_is_offline_within_offline_after_polls(
    tmp_path: Path, port: int
) -> None:
    interval_s, timeout_s, retries, backoff_s, offline_after = 0.1, 0.2, 1, 0.05, 3
    dev = SimDevice(profile(GAS), unit=1)
    proxy, proxy_port = HangingProxy(port), free_port()
    devices = [{"name": "gc", "profile": GAS, "poll_interval_s": interval_s}]
    source = make_source(tmp_path, proxy_port, devices, timeout_s=timeout_s, retries=retries,
                         retry_backoff_s=backoff_s, offline_after=offline_after)  # fmt: skip
    sink = CollectingSink()
    async with ModbusSimulator([dev]).tcp(port), proxy.serve(proxy_port):
        task = asyncio.create_task(source.run(sink))
        await wait_until(lambda: "gc.CH01" in readings(sink))
        proxy.hung, hung_at, before = True, time.monotonic(), proxy.requests
        await wait_until(lambda: ("raise", "fault", "gc") in alarms(sink), timeout_s=30)
        elapsed_s = time.monotonic() - hung_at
        failed, sent = source.health().counters["polls_failed"], proxy.requests - before
        await _stop(task)
    tries = retries + 1
    assert failed == offline_after
    assert sent <= (offline_after + 1) * tries  # the next poll may have begun
    # each failed poll: one read's tries, then the next poll one interval later (~1.7 s here)
    assert elapsed_s < 2 * offline_after * (interval_s + tries * timeout_s + backoff_s)


@pytest.mark.parametrize("kind", ["rtu", "tcp"])
async def test_the_other_device_of_a_shared_bus_keeps_its_rate(
    tmp_path: Path, port: int, request: pytest.FixtureRequest, kind: str
) -> None:
    interval_s, window_s = 0.5, 3.0
    hung = SimDevice(profile(GAS), unit=1)
    other = SimDevice(profile("temperature_transmitter_v1"), unit=2)
    other.set("TEMP", 21.0)
    devices: list[dict[str, Any]] = [
        {"name": "gc", "profile": GAS, "unit": 1, "max_gap": -1},  # 35 reads a poll
        {"name": "tt", "profile": "temperature_transmitter_v1", "unit": 2},
    ]
    table: dict[str, Any] = {"site": "S1", "timeout_s": 0.15, "retries": 1, "offline_after": 3,
                             "poll_interval_s": interval_s, "devices": devices}  # fmt: skip
    sim = ModbusSimulator([hung, other])
    if kind == "rtu":
        line: SerialLine = request.getfixturevalue("serial_line")
        table["buses"] = {"line1": {"port": line.master_end, "inter_frame_delay_s": 0.002}}
        for dev in devices:
            dev["bus"] = "line1"
        serving = sim.rtu(line.device_end)
    else:
        for dev in devices:
            dev |= {"host": "127.0.0.1", "port": port}
        serving = sim.tcp(port)
    [source] = build_sources(table, file=HERE / "agent.toml", state_dir=tmp_path)
    assert isinstance(source, ModbusSource)
    sink = CollectingSink()
    async with serving:
        task = asyncio.create_task(source.run(sink))
        await wait_until(lambda: other.request_count >= 2 and hung.request_count >= 35)
        hung.silent, before = True, other.request_count
        await asyncio.sleep(window_s)
        polled = other.request_count - before
        await _stop(task)
    # 6 polls expected in the window; a hung poll holds the bus for one read's tries only
    assert polled >= window_s / interval_s / 2
    assert source.health().devices == {"gc": "offline", "tt": "online"}
    assert readings(sink)["tt.TEMP"].quality == "good"


async def test_a_closed_connection_costs_one_attempt_per_poll(tmp_path: Path, port: int) -> None:
    dev = SimDevice(profile(GAS), unit=1)
    proxy, proxy_port = HangingProxy(port), free_port()
    proxy.refusing = True  # accepts, then closes at once
    source = make_source(tmp_path, proxy_port, [{"name": "gc", "profile": GAS}], retries=2)
    async with ModbusSimulator([dev]).tcp(port), proxy.serve(proxy_port):
        sink = await poll(source, 3)
        assert proxy.accepted == 3
        assert alarms(sink) == [("raise", "fault", "gc")]
        proxy.refusing = False
        sink = await poll(source)
    source.close()
    assert alarms(sink) == [("clear", "fault", "gc")]
    assert proxy.accepted == 4


async def test_a_refused_connection_is_dialled_once_per_poll(tmp_path: Path, port: int) -> None:
    source = make_source(tmp_path, port, [{"name": "gc", "profile": GAS}], retries=2)
    started = time.monotonic()
    await poll(source, 3)  # nothing listens on the port
    elapsed_s = time.monotonic() - started
    source.close()
    counters = source.health().counters
    assert (counters["polls_failed"], counters["connect_failures"]) == (3, 3)
    assert counters.get("requests", 0) == 0
    assert elapsed_s < 3.0  # no request timeouts: loopback refuses at once


async def test_a_gateway_answering_for_a_silent_device_ends_the_poll(
    tmp_path: Path, port: int
) -> None:
    # Exception 11 from a TCP/RTU gateway: it waited for the device in vain. The other reads of
    # the poll would each make the gateway wait again.
    dev = SimDevice(profile(GAS), unit=1)
    dev.exception = 11
    source = make_source(tmp_path, port, [{"name": "gc", "profile": GAS}], retries=1)
    async with ModbusSimulator([dev]).tcp(port):
        await poll(source, 2)
    source.close()
    assert dev.request_count == 2
    assert source.health().counters["polls_failed"] == 2
