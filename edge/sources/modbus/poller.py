"""Modbus acquisition: poll devices described by firmware profiles, alarm locally, drive outputs.

The agent calls :func:`build_sources` with the ``[modbus]`` section of its TOML::

    [modbus]
    site = "SH-TANKFARM-01"        # wire site id of every reading (required)
    name = "modbus"                # source name; also names the alarm state file
    poll_interval_s = 1.0          # default of every device
    timeout_s = 1.0                # one request, or one connection attempt
    retries = 1                    # extra attempts per request, with exponential backoff
    retry_backoff_s = 0.05         # first backoff, doubled each retry
    offline_after = 3              # failed polls in a row before "device_offline" is raised
    offline_backoff_max_s = 30.0   # polls of an offline device back off up to this
    max_gap = 8                    # unused registers a coalesced read may span (-1: no merging)
    max_registers = 125            # registers per read

    [modbus.buses.rs485a]          # an RS-485 line (Modbus RTU): one request at a time
    port = "/dev/ttyUSB0"
    baud = 9600                    # parity "N"|"E"|"O", stop_bits 1|2, byte_size 7|8
    inter_frame_delay_s = 0.005    # silence between the end of one answer and the next request

    [[modbus.devices]]
    name = "T101-radar"            # unique; names the device in health and offline alarms
    profile = "radar_level_v3"     # a shipped profile, or a path relative to this file
    bus = "rs485a"                 # ... or host = "10.0.0.5" and port = 502 for Modbus TCP
    unit = 1
    poll_interval_s = 2.0
    [modbus.devices.points.LEVEL]  # per point: tag, enabled, LL/L/H/HH, deadband, delay_s
    tag = "T101.LT01"              # default "<device name>.<POINT>"
    HH = 19.6

    [[modbus.devices]]
    name = "relay-1"
    profile = "relay_output_8ch_v1"
    host = "10.0.0.9"
    unit = 1

    [[modbus.safety]]              # write an output while a point is in some alarm levels
    point = "T101.LT01"            # a tag
    levels = ["HH"]
    device = "relay-1"             # a configured device ...
    output = "DO01"                # ... and its coil or holding-register point
    on = 1                         # written on entering; `off` (default 0) on clear

Devices on one bus (an RS-485 line, or one TCP host:port) are polled one request at a time;
buses run in parallel; device schedules are staggered over their interval. Each device's
registers are coalesced into the fewest reads (:func:`edge.decode.registers.plan_reads`); a
device that rejects a read spanning a gap (exception 2) is re-planned without gaps.

A poll fails at the first read the device leaves unanswered after its ``retries`` (no answer
in ``timeout_s``, or a gateway's exception 10/11 for it): the poll's other reads are not
sent, so a hung device holds its bus for one read's tries per poll, and ``device_offline``
follows about ``offline_after`` poll intervals (each plus those tries) after the hang. The
link is opened at most once per request, retries included: a refused or unreachable device
costs one connection attempt per poll, and its polls back off while it is offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

import wire
from edge.alarms import LEVELS, AlarmStateStore, PointAlarms, evaluate, restore
from edge.decode.registers import (
    Decoded,
    Image,
    Read,
    decode_points,
    encode_point,
    exception_quality,
    plan_reads,
)
from edge.pipeline import Sink, Source, SourceHealth
from edge.sources.modbus.config import BusConfig, DeviceConfig, ModbusConfig, parse_config
from edge.sources.modbus.safety import SafetyOutputs

__all__ = ["ModbusSource", "build_sources", "stagger"]

log = logging.getLogger(__name__)

Client = AsyncModbusTcpClient | AsyncModbusSerialClient
#: Exceptions a TCP/RTU gateway sends for the device behind it: path unavailable (10), target
#: failed to respond (11). The device did not answer: they count towards going offline.
_TARGET_SILENT: Final = frozenset({10, 11})


class _Counters(dict[str, int]):
    def add(self, name: str, n: int = 1) -> None:
        self[name] = self.get(name, 0) + n


class _Bus:
    """One link: a pymodbus client used by one request at a time."""

    def __init__(self, cfg: BusConfig, top: ModbusConfig, counters: _Counters) -> None:
        self.cfg = cfg
        self.top = top
        self.counters = counters
        self.lock = asyncio.Lock()
        self.client: Client | None = None
        self.last_end_s = 0.0

    def _make_client(self) -> Client:
        # pymodbus would resend a request ``retries`` times itself, and reconnect in a
        # background task when ``reconnect_delay`` > 0: both off, so every attempt is ours,
        # counted and backed off here. (It still drops a TCP link after retries+3 unanswered
        # requests in a row; the next call then dials once.)
        cfg, timeout = self.cfg, self.top.timeout_s
        if cfg.kind == "tcp":
            return AsyncModbusTcpClient(
                cfg.host, port=cfg.port, timeout=timeout, retries=0, reconnect_delay=0
            )
        return AsyncModbusSerialClient(
            cfg.serial,
            baudrate=cfg.baud,
            parity=cfg.parity,
            stopbits=cfg.stop_bits,
            bytesize=cfg.byte_size,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
        )

    async def call(self, op: Callable[[Client], Awaitable[ModbusPDU]]) -> ModbusPDU | None:
        """Run one request with retries and backoff; ``None`` when the device never answered.

        The link is opened at most once per call: retries are for requests lost on a live
        link, and a refused or unreachable peer is not back a few milliseconds later.
        """
        async with self.lock:
            client = self.client = self.client or self._make_client()
            dialled = False
            for attempt in range(self.top.retries + 1):
                if not client.connected:
                    if dialled or not await self._connect(client):
                        return None
                    dialled = True
                if attempt:
                    self.counters.add("retries")
                    await asyncio.sleep(self.top.retry_backoff_s * 2 ** (attempt - 1))
                response = await self._send(client, op)
                if response is not None:
                    return response
            return None

    async def _connect(self, client: Client) -> bool:
        try:
            if await client.connect():
                return True
        except (TimeoutError, ModbusException, OSError) as exc:
            log.debug("%s: cannot connect: %s", self.cfg.name, exc)
        self.counters.add("connect_failures")
        return False

    async def _send(
        self, client: Client, op: Callable[[Client], Awaitable[ModbusPDU]]
    ) -> ModbusPDU | None:
        gap = self.last_end_s + self.cfg.inter_frame_delay_s - time.monotonic()
        if gap > 0:
            await asyncio.sleep(gap)
        self.counters.add("requests")
        try:
            return await op(client)
        except (TimeoutError, ModbusException, OSError) as exc:
            self.counters.add("timeouts")
            log.debug("%s: no answer: %s", self.cfg.name, exc)
            return None
        finally:
            self.last_end_s = time.monotonic()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class _Device:
    """Runtime state of one polled device."""

    def __init__(self, cfg: DeviceConfig, top: ModbusConfig, store: AlarmStateStore) -> None:
        self.cfg = cfg
        self.top = top
        self.max_gap = cfg.max_gap
        self.reads = self._plan()
        self.failures = 0
        self.online: bool | None = False if store.active(self.offline_key) else None
        self.due_s = 0.0
        #: every point of the last answered poll, strings included (for field tools)
        self.last: dict[str, Decoded] = {}
        self.alarms: dict[str, PointAlarms] = {
            point: restore({lv for lv in store.active(tag) if lv in LEVELS})
            for point, tag in cfg.tags.items()
        }

    @property
    def offline_key(self) -> str:
        return f"device_offline:{self.cfg.name}"

    def _plan(self) -> list[Read]:
        profile = self.cfg.profile
        wanted = [n for n, p in profile.points.items() if n in self.cfg.tags or self.cfg.all_points]
        regs = [profile.points[name].register for name in wanted]
        used = {profile.points[name].status for name in wanted}
        regs += [s.register for name, s in profile.statuses.items() if name in used]
        return plan_reads(regs, max_registers=self.top.max_registers, max_gap=self.max_gap)

    def replan_without_gaps(self) -> None:
        self.max_gap = 0
        self.reads = self._plan()

    def next_delay_s(self) -> float:
        interval = self.cfg.poll_interval_s
        extra = self.failures - self.top.offline_after
        if self.online is False and extra >= 0:
            return min(
                interval * 2.0 ** min(extra, 16), max(self.top.offline_backoff_max_s, interval)
            )
        return interval


def stagger(intervals_s: list[float]) -> list[float]:
    """First-poll offsets that spread devices evenly over their intervals (device i of n
    starts at ``interval * i / n``), so a gateway never fires every request at once."""
    n = len(intervals_s)
    return [interval * i / n for i, interval in enumerate(intervals_s)]


async def _read(client: Client, read: Read, unit: int) -> ModbusPDU:
    fn = {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }[read.kind]
    return await fn(read.address, count=read.count, device_id=unit)


class ModbusSource:
    """The Modbus side of the edge agent (a :class:`edge.pipeline.Source`).

    Args:
        config: The validated ``[modbus]`` section.
        state_dir: Where the active alarm state is kept across restarts.
        clock: Wall clock in epoch seconds, for item timestamps.
    """

    def __init__(
        self, config: ModbusConfig, *, state_dir: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = config.name
        self.config = config
        self.clock = clock
        self.counters = _Counters()
        self.parse_errors = _Counters()
        self.store = AlarmStateStore(Path(state_dir) / f"{config.name}-alarms.json")
        self.buses = {n: _Bus(b, config, self.counters) for n, b in config.buses.items()}
        self.devices = {d.name: _Device(d, config, self.store) for d in config.devices}
        self.safety = SafetyOutputs(config.safety, self.store.all())
        self._safety_wake = asyncio.Event()
        configured = {tag for d in config.devices for tag in d.tags.values()}
        configured |= {dev.offline_key for dev in self.devices.values()}
        #: alarms persisted for points or devices no longer configured: cleared at start
        self._stale = {k: v for k, v in self.store.all().items() if k not in configured}

    def health(self) -> SourceHealth:
        """Devices online/offline and the request, quality and safety counters."""
        devices = {n: "online" if d.online else "offline" for n, d in self.devices.items()}
        counters = dict(self.counters) | self.safety.counters()
        counters["alarm_state_corrupt"] = self.store.corrupt
        counters["alarm_state_save_failures"] = self.store.save_failures
        return SourceHealth(
            devices=devices, counters=counters, parse_errors=dict(self.parse_errors)
        )

    async def run(self, sink: Sink) -> None:
        """Poll every bus until cancelled, and keep the safety outputs written."""
        self._clear_stale(sink)
        try:
            async with asyncio.TaskGroup() as tg:
                devices = list(self.devices.values())
                offsets = stagger([d.cfg.poll_interval_s for d in devices])
                start = time.monotonic()
                for dev, offset in zip(devices, offsets, strict=True):
                    dev.due_s = start + offset
                for name in self.buses:
                    devs = [d for d in self.devices.values() if d.cfg.bus == name]
                    if devs:
                        tg.create_task(self._run_bus(devs, sink), name=f"modbus bus {name}")
                tg.create_task(self._run_safety(), name="modbus safety outputs")
        finally:
            self.close()

    async def poll_once(self, sink: Sink) -> None:
        """Poll every device once (buses in parallel), then write pending safety outputs."""
        self._clear_stale(sink)
        async with asyncio.TaskGroup() as tg:
            for name in self.buses:
                devs = [d for d in self.devices.values() if d.cfg.bus == name]
                tg.create_task(self._poll_all(devs, sink))
        await self.safety.drain(self._write_output)

    async def _poll_all(self, devices: list[_Device], sink: Sink) -> None:
        for dev in devices:
            await self._poll(dev, sink)

    def close(self) -> None:
        """Close every client (``run`` does this when cancelled)."""
        for bus in self.buses.values():
            bus.close()

    async def _run_bus(self, devices: list[_Device], sink: Sink) -> None:
        while True:
            dev = min(devices, key=lambda d: d.due_s)
            delay = dev.due_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self._poll(dev, sink)
            except Exception:  # a bug in one poll must not stop the gateway's acquisition
                log.exception("poll of %s failed", dev.cfg.name)
                self.counters.add("poll_errors")
            dev.due_s += dev.next_delay_s()
            now = time.monotonic()
            if dev.due_s < now:
                self.counters.add("overruns")
                dev.due_s = now + dev.next_delay_s()

    async def _run_safety(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # not wait_for: on 3.11 it can lose a cancel
                    await self._safety_wake.wait()
            self._safety_wake.clear()
            try:
                await self.safety.drain(self._write_output)
            except Exception:
                log.exception("safety outputs: drain failed")
                self.counters.add("safety_errors")

    async def _write_output(self, device: str, output: str, value: float) -> bool:
        dev = self.devices[device]
        point = dev.cfg.profile.points[output]
        words = encode_point(point, value)
        unit, address = dev.cfg.unit, point.register.address

        async def op(client: Client) -> ModbusPDU:
            if point.register.kind == "coil":
                return await client.write_coil(address, bool(words[0]), device_id=unit)
            if point.register.type == "bit":
                # One relay per bit of a word: read, change that bit, write back (under the
                # bus lock), so the other bits (other relays) keep their state.
                mask = encode_point(point, 1)[0]
                current = await client.read_holding_registers(address, count=1, device_id=unit)
                if current.isError():
                    return current
                if not current.registers:
                    raise ModbusException("no register in the answer")
                word = (current.registers[0] & ~mask & 0xFFFF) | (words[0] & mask)
                return await client.write_register(address, word, device_id=unit)
            return await client.write_registers(address, words, device_id=unit)

        response = await self.buses[dev.cfg.bus].call(op)
        ok = response is not None and not response.isError()
        if not ok:
            log.warning("safety output %s.%s = %s not confirmed", device, output, value)
        return ok

    async def _poll(self, dev: _Device, sink: Sink) -> None:
        self.counters.add("polls")
        image = await self._read_device(dev)
        ts = int(self.clock() * 1000)
        if image is None:
            self._failed(dev, sink, ts)
            return
        self._answered(dev, sink, ts)
        dev.last = decode_points(dev.cfg.profile, image)
        self._emit(dev, dev.last, sink, ts)

    async def _read_device(self, dev: _Device) -> Image | None:
        """Every planned read of one poll, or ``None`` when the device left one unanswered.

        The first unanswered read (after its retries) ends the poll: the device is hung or
        gone, and its other reads would only hold the bus from the other devices on it.
        """
        if not dev.reads:
            return None  # nothing is asked, so nothing ever answers
        image, bus = Image(), self.buses[dev.cfg.bus]
        for read in list(dev.reads):
            response = await bus.call(lambda c, r=read: _read(c, r, dev.cfg.unit))  # type: ignore[misc]
            if response is None or not self._store(dev, read, response, image):
                return None
        return image

    def _store(self, dev: _Device, read: Read, response: ModbusPDU, image: Image) -> bool:
        """Put one answer into ``image``; false when a gateway answered for a silent device."""
        if not response.isError():
            values = response.bits if read.kind in ("coil", "discrete") else response.registers
            if len(values) < read.count:
                self.parse_errors.add("short_response")
                image.fail(read, "bad")
            else:
                image.store(read, values[: read.count])
            return True
        code = int(response.exception_code)
        self.parse_errors.add(f"exception_{code}")
        if code in _TARGET_SILENT:
            return False
        image.fail(read, exception_quality(code))
        if code == 2 and dev.max_gap != 0:
            log.info("%s rejects reads across gaps: re-planning", dev.cfg.name)
            self.counters.add("replans")
            dev.replan_without_gaps()
        return True

    def _clear_stale(self, sink: Sink) -> None:
        """Clear the alarms of points and devices removed from the config while active: no
        sample will ever clear them, and upstream their alerts would stay open for good."""
        stale, self._stale = self._stale, {}
        ts = int(self.clock() * 1000)
        for key, levels in sorted(stale.items()):
            if key.startswith("device_offline:"):
                device = key.removeprefix("device_offline:")
                sink.put(wire.Alarm(seq=0, ts=ts, state="clear", level="fault",
                                    code="device_offline", site=self.config.site,
                                    device=device, message=device))  # fmt: skip
            else:
                for level in (lv for lv in LEVELS if lv in levels):
                    sink.put(wire.Alarm(seq=0, ts=ts, state="clear", level=level,
                                        site=self.config.site, point=key,
                                        message="no longer configured"))  # fmt: skip
            log.info("alarm state of %s cleared: no longer configured", key)
            self.store.update(key, frozenset())

    def _failed(self, dev: _Device, sink: Sink, ts: int) -> None:
        self.counters.add("polls_failed")
        dev.failures += 1
        if dev.online is not False:
            no_answer = Decoded(None, "comm_error")
            self._emit(dev, dict.fromkeys(dev.cfg.tags, no_answer), sink, ts)
        if dev.failures >= self.config.offline_after and dev.online is not False:
            dev.online = False
            self._device_alarm(dev, "raise", sink, ts)

    def _answered(self, dev: _Device, sink: Sink, ts: int) -> None:
        dev.failures = 0
        if dev.online is False:
            self._device_alarm(dev, "clear", sink, ts)
        dev.online = True

    def _device_alarm(self, dev: _Device, state: str, sink: Sink, ts: int) -> None:
        log.warning("device %s %s", dev.cfg.name, "offline" if state == "raise" else "online")
        sink.put(
            wire.Alarm(
                seq=0,
                ts=ts,
                state="raise" if state == "raise" else "clear",
                level="fault",
                code="device_offline",
                site=self.config.site,
                device=dev.cfg.name,
                message=dev.cfg.name,
            )
        )
        self.store.update(dev.offline_key, frozenset({"fault"} if state == "raise" else ()))

    def _emit(self, dev: _Device, decoded: Mapping[str, Decoded], sink: Sink, ts: int) -> None:
        now_s = ts / 1000
        for point, tag in dev.cfg.tags.items():
            d = decoded[point]
            unit = dev.cfg.profile.points[point].unit
            sink.put(wire.Reading(seq=0, ts=ts, site=self.config.site, point=tag, value=d.value,
                                  unit=unit, quality=d.quality))  # fmt: skip
            self.counters.add("readings")
            if d.quality != "good":
                self.parse_errors.add(f"quality_{d.quality}")
            self._alarm(dev, point, tag, d, sink, ts, now_s)

    def _alarm(
        self, dev: _Device, point: str, tag: str, d: Decoded, sink: Sink, ts: int, now_s: float
    ) -> None:
        limits = dev.cfg.limits[point]
        before = dev.alarms[point]
        after, events = evaluate(limits, before, d.value, good=d.quality == "good", now_s=now_s)
        dev.alarms[point] = after
        for ev in events:
            self.counters.add(f"alarms_{ev.state}")
            sink.put(wire.Alarm(seq=0, ts=ts, state=ev.state, level=ev.level, site=self.config.site,
                                point=tag, value=ev.value, limit=ev.limit))  # fmt: skip
        if after.active != before.active:
            self.safety.alarm_levels(tag, after.active)  # first: the siren never waits on disk
            self._safety_wake.set()
            self.store.update(tag, frozenset(after.active))


def build_sources(table: Mapping[str, Any], *, file: Path, state_dir: Path) -> list[Source]:
    """The Modbus sources of an agent config's ``[modbus]`` section (one source).

    Args:
        table: The ``[modbus]`` table as parsed from the agent TOML.
        file: The config file (names it in errors; relative profile paths start there).
        state_dir: The agent's state folder (active alarms are kept there).

    Raises:
        edge.errors.ConfigError: naming the file and the dotted key at fault.
    """
    return [ModbusSource(parse_config(table, file=file), state_dir=state_dir)]
