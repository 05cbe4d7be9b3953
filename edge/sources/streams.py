"""Async byte streams for NMEA/AIS receivers: serial, TCP client, UDP listener, file replay.

Each stream yields raw chunks from :meth:`chunks` until cancelled (a file replay ends at the end
of the file unless it loops) and recovers from link faults by itself: a serial port is reopened
after the device was unplugged and comes back, a TCP client reconnects with capped, jittered
exponential backoff. Nothing here parses: chunks go to :class:`edge.decode.framing.LineFramer`,
which survives a line cut by a reconnect.

Receiver settings in the agent TOML (one ``[[gnss.receivers]]`` / ``[[ais.receivers]]`` entry,
read by :func:`stream_from_config`)::

    transport = "serial"          # serial | tcp | udp | file
    # serial
    device = "/dev/ttyUSB0"
    baud = 9600                   # 4800 for old GNSS, 38400 for AIS
    bytesize = 8                  # 5..8
    parity = "N"                  # N | E | O | M | S
    stopbits = 1                  # 1 | 1.5 | 2
    # tcp
    host = "192.168.1.20"
    port = 10110
    connect_timeout_s = 5
    idle_timeout_s = 60           # reconnect when silent this long (0: never)
    # udp
    bind = "0.0.0.0"
    port = 10110
    # file
    path = "recordings/day1.nmea" # relative to the config file
    pacing = "original"           # original (times in the sentences) | fast
    speed = 1.0                   # replay speed factor for original pacing
    loop = false
    # serial and tcp
    backoff_initial_s = 0.5
    backoff_max_s = 30
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from edge.errors import ConfigError

__all__ = [
    "Backoff",
    "ByteStream",
    "FileStream",
    "SerialStream",
    "Table",
    "TcpStream",
    "UdpStream",
    "stream_from_config",
]

log = logging.getLogger(__name__)

_READ_BYTES: Final = 4096


class ByteStream(Protocol):
    """A source of raw bytes that reconnects by itself."""

    name: str
    online: bool
    #: times the link was (re)established after a fault
    reconnects: int
    #: chunks dropped because the consumer fell behind (UDP datagrams)
    overflows: int

    def chunks(self) -> AsyncGenerator[bytes, None]:
        """Yield chunks of the stream until cancelled (or the end of a replayed file)."""


class Backoff:
    """Capped exponential backoff with full jitter: a delay in ``[d/2, d]``.

    Args:
        initial_s: delay after the first failure.
        max_s: cap of the delay.
        rng: random source (seeded in tests).
    """

    def __init__(
        self, *, initial_s: float = 0.5, max_s: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay_s(self) -> float:
        """The delay before the next attempt (grows until it reaches the cap)."""
        delay = min(self.max_s, self.initial_s * 2.0 ** min(self._attempt, 30))
        self._attempt += 1
        return delay * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        """The link works again: start from ``initial_s`` next time."""
        self._attempt = 0


class _Linked:
    """Shared bookkeeping of streams that connect and reconnect."""

    name: str

    def __init__(self, name: str, backoff: Backoff) -> None:
        self.name = name
        self.online = False
        self.reconnects = 0
        self.overflows = 0
        self.last_error = ""
        self._backoff = backoff
        self._ever_connected = False

    def _connected(self) -> None:
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self.online = True
        log.info("%s: connected", self.name)

    async def _pause(self, exc: BaseException | None) -> None:
        was_online, self.online = self.online, False
        self.last_error = repr(exc) if exc is not None else "end of stream"
        if was_online:
            log.warning("%s: link lost (%s)", self.name, self.last_error)
        delay = self._backoff.next_delay_s()
        log.debug("%s: retry in %.2f s (%s)", self.name, delay, self.last_error)
        await asyncio.sleep(delay)

    async def _read_all(
        self, reader: asyncio.StreamReader, idle_timeout_s: float
    ) -> AsyncGenerator[bytes, None]:
        # The backoff restarts only once bytes arrive: a peer that accepts and hangs up at
        # once (a converter busy with another client) must not be retried at the first delay.
        received = False
        while True:
            if idle_timeout_s > 0:
                async with asyncio.timeout(idle_timeout_s):
                    data = await reader.read(_READ_BYTES)
            else:
                data = await reader.read(_READ_BYTES)
            if not data:
                return
            if not received:
                received = True
                self._backoff.reset()
            yield data


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()


class SerialStream(_Linked):
    """A serial port (RS-232/USB); reopened after the device disappears and comes back."""

    def __init__(
        self,
        name: str,
        *,
        device: str,
        baud: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, backoff or Backoff())
        self.device = device
        self.settings: dict[str, Any] = {
            "baudrate": baud,
            "bytesize": bytesize,
            "parity": parity,
            "stopbits": stopbits,
        }

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        import serial
        import serial_asyncio_fast

        while True:
            error: BaseException | None = None
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    loop=asyncio.get_running_loop(), url=self.device, **self.settings
                )
            except (OSError, serial.SerialException) as exc:
                await self._pause(exc)
                continue
            self._connected()
            try:
                async for data in self._read_all(reader, 0):
                    yield data
            except (OSError, serial.SerialException) as exc:
                error = exc
            finally:
                await _close(writer)
            await self._pause(error)


class TcpStream(_Linked):
    """A TCP client (serial-to-Ethernet converters, AIS servers); reconnects with backoff."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        connect_timeout_s: float = 5.0,
        idle_timeout_s: float = 60.0,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, backoff or Backoff())
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        while True:
            error: BaseException | None = None
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
            except (OSError, TimeoutError) as exc:
                await self._pause(exc)
                continue
            self._connected()
            try:
                async for data in self._read_all(reader, self.idle_timeout_s):
                    yield data
            except (OSError, TimeoutError) as exc:
                error = exc
            finally:
                await _close(writer)
            await self._pause(error)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[bytes], on_overflow: Callable[[], None]) -> None:
        self._queue = queue
        self._on_overflow = on_overflow

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if data[-1:] not in (b"\n", b"\r"):
            data += b"\r\n"  # a datagram ends its last sentence
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            self._on_overflow()


class UdpStream(_Linked):
    """A UDP listener (AIS receivers commonly push UDP); each datagram ends a line.

    Binding is retried with backoff (the address may not exist yet at boot).
    """

    def __init__(
        self,
        name: str,
        *,
        bind: str = "0.0.0.0",
        port: int,
        max_queue: int = 4096,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, backoff or Backoff())
        self.bind = bind
        self.port = port
        self._max_queue = max_queue
        #: the port actually bound (useful with ``port=0``)
        self.bound_port: int | None = None

    def _overflow(self) -> None:
        self.overflows += 1

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._max_queue)
        loop = asyncio.get_running_loop()
        while True:
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(queue, self._overflow), local_addr=(self.bind, self.port)
                )
                break
            except OSError as exc:
                await self._pause(exc)
        self.bound_port = transport.get_extra_info("sockname")[1]
        self._connected()
        try:
            while True:
                yield await queue.get()
        finally:
            self.online = False
            transport.close()


_TIME_RE: Final = re.compile(
    rb"^(?:\\[^\\]*c:(?P<c>\d+)[^\\]*\\)?(?:\$..(?:GGA|RMC|GNS),(?P<t>\d{6}(?:\.\d+)?)|)"
)


def _line_time_s(line: bytes) -> float | None:
    """Time of a recorded line: tag block ``c:`` (s or ms) or the NMEA time of day."""
    match = _TIME_RE.match(line)
    if match is None:
        return None
    if match["c"]:
        value = int(match["c"])
        return value / 1000.0 if value > 100_000_000_000 else float(value)
    if match["t"]:
        text = match["t"].decode()
        return int(text[0:2]) * 3600 + int(text[2:4]) * 60 + float(text[4:])
    return None


class FileStream:
    """Replay a recorded file: with its original pacing or as fast as possible.

    Original pacing reads the times in the lines (tag block ``c:``, or the time of GGA/RMC/GNS)
    and sleeps for their differences divided by ``speed``; gaps longer than ``max_gap_s`` (a
    recording paused, midnight) are shortened to it.
    """

    def __init__(
        self,
        name: str,
        *,
        path: Path,
        pacing: Literal["original", "fast"] = "fast",
        speed: float = 1.0,
        max_gap_s: float = 5.0,
        loop: bool = False,
    ) -> None:
        self.name = name
        self.path = path
        self.pacing = pacing
        self.speed = speed
        self.max_gap_s = max_gap_s
        self.loop = loop
        self.online = False
        self.reconnects = 0
        self.overflows = 0
        #: times the file was read (one per pass when looping)
        self.passes = 0

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        self.online = True
        try:
            while True:
                try:
                    data = await asyncio.to_thread(self.path.read_bytes)
                except OSError as exc:
                    log.error("%s: cannot replay %s: %s", self.name, self.path, exc)
                    return
                self.passes += 1
                if not data.strip() and self.loop:  # would spin: wait for the file to fill
                    if self.passes == 1:
                        log.warning(
                            "%s: %s is empty; looking again every second", self.name, self.path
                        )
                    await asyncio.sleep(1.0)
                    continue
                if self.pacing == "fast":
                    for start in range(0, len(data), 65536):
                        yield data[start : start + 65536]
                        await asyncio.sleep(0)
                else:
                    async for line in self._paced(data):
                        yield line
                if not self.loop:
                    return
        finally:
            self.online = False

    async def _paced(self, data: bytes) -> AsyncGenerator[bytes, None]:
        previous: float | None = None
        for line in data.splitlines(keepends=True):
            stamp = _line_time_s(line.lstrip())
            if stamp is not None:
                if previous is not None and stamp > previous:
                    await asyncio.sleep(min(stamp - previous, self.max_gap_s) / self.speed)
                previous = stamp
            yield line


_MISSING: Final = object()


class Table:
    """Typed access to one TOML table; every problem raises :class:`ConfigError` naming the key.

    Args:
        table: the parsed table.
        file: the config file (for messages).
        key: the table's dotted path, ``gnss.receivers[0]``.
    """

    def __init__(self, table: Mapping[str, Any], *, file: str | Path | None, key: str) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError(file, key, "must be a table")
        self.table = table
        self.file = file
        self.key = key
        self.used: set[str] = set()

    def error(self, name: str, reason: str) -> ConfigError:
        """A :class:`ConfigError` for ``name`` in this table."""
        return ConfigError(self.file, f"{self.key}.{name}" if name else self.key, reason)

    def _value(self, name: str, default: Any) -> Any:
        self.used.add(name)
        if name in self.table:
            return self.table[name]
        if default is _MISSING:
            raise self.error(name, "missing")
        return default

    def text(self, name: str, default: Any = _MISSING, *, choices: tuple[str, ...] = ()) -> str:
        """A non-empty string (one of ``choices`` if given)."""
        value = self._value(name, default)
        if not isinstance(value, str) or not value:
            raise self.error(name, "must be a non-empty string")
        if choices and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}")
        return value

    def number(self, name: str, default: Any = _MISSING, *, low: float = 0.0) -> float:
        """A number >= ``low``."""
        value = self._value(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise self.error(name, f"must be a number >= {low:g}")
        return float(value)

    def integer(self, name: str, default: Any = _MISSING, *, low: int, high: int) -> int:
        """An integer in ``[low, high]``."""
        value = self._value(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(name, f"must be an integer in {low}..{high}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        """A boolean."""
        value = self._value(name, default)
        if not isinstance(value, bool):
            raise self.error(name, "must be true or false")
        return value

    def sub(self, name: str) -> Mapping[str, Any]:
        """A nested table (empty if absent)."""
        value = self._value(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, "must be a table")
        return value

    def tables(self, name: str) -> list[Table]:
        """An array of tables (``[[section.name]]``), each keyed ``<key>.<name>[i]``."""
        value = self._value(name, [])
        if not isinstance(value, list):
            raise self.error(name, "must be an array of tables")
        return [
            Table(entry, file=self.file, key=f"{self.key}.{name}[{index}]")
            for index, entry in enumerate(value)
        ]

    def check_unknown(self) -> None:
        """Reject keys nobody asked for (typos must not pass silently)."""
        for name in self.table:
            if name not in self.used:
                raise self.error(name, "unknown key")


_TRANSPORTS: Final = ("serial", "tcp", "udp", "file")


def stream_from_config(table: Table, *, name: str) -> ByteStream:
    """Build the stream of one receiver entry (keys in the module docstring).

    The caller reads its own keys from ``table`` first and calls ``table.check_unknown()`` after.
    """
    transport = table.text("transport", choices=_TRANSPORTS)
    if transport == "udp":
        port = table.integer("port", low=0, high=65535)
        return UdpStream(name, bind=table.text("bind", "0.0.0.0"), port=port)
    if transport == "file":
        base = Path(table.file).parent if table.file is not None else Path()
        path = base / table.text("path")
        if not path.is_file():
            raise table.error("path", f"no such file: {path}")
        return FileStream(
            name,
            path=path,
            pacing="fast"
            if table.text("pacing", "original", choices=("original", "fast")) == "fast"
            else "original",
            speed=table.number("speed", 1.0, low=0.001),
            loop=table.flag("loop", False),
        )
    backoff = Backoff(
        initial_s=table.number("backoff_initial_s", 0.5, low=0.01),
        max_s=table.number("backoff_max_s", 30.0, low=0.01),
    )
    if transport == "tcp":
        return TcpStream(
            name,
            host=table.text("host"),
            port=table.integer("port", low=1, high=65535),
            connect_timeout_s=table.number("connect_timeout_s", 5.0, low=0.01),
            idle_timeout_s=table.number("idle_timeout_s", 60.0),
            backoff=backoff,
        )
    return SerialStream(
        name,
        device=table.text("device"),
        baud=table.integer("baud", 9600, low=50, high=4_000_000),
        bytesize=table.integer("bytesize", 8, low=5, high=8),
        parity=table.text("parity", "N", choices=("N", "E", "O", "M", "S")),
        stopbits=_stopbits(table),
        backoff=backoff,
    )


def _stopbits(table: Table) -> float:
    value = table.number("stopbits", 1, low=1)
    if value not in (1, 1.5, 2):
        raise table.error("stopbits", "must be 1, 1.5 or 2")
    return value
