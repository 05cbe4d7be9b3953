"""The edge agent: sources -> durable buffer -> MQTT forwarder, in one task group.

Tasks (named, so a stack dump says who is who): ``buffer`` (group commits and limits),
``forwarder`` (MQTT connection, publishing and the health item) and one ``source:<name>`` per
source. SIGTERM or SIGINT stops the sources, commits what they produced, publishes the
``offline`` status and closes the buffer; whatever was not yet acknowledged stays on disk for
the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence

import wire
from edge.buffer import Buffer
from edge.config import AgentSettings
from edge.errors import EdgeError
from edge.forward import Forwarder, cancel_requests
from edge.pipeline import AlarmListener, AlarmTap, HoldingSink, Sink, Source, SourceHealth

__all__ = ["Agent"]

log = logging.getLogger(__name__)


class _StopError(Exception):
    """Raised inside the task group to end it cleanly."""


class Agent:
    """Runs the configured sources into the buffer and the buffer into the broker.

    Args:
        settings: the loaded configuration.
        sources: built sources (see :func:`edge.config.build_sources`).
        source_restart_s: pause before restarting a source whose ``run`` crashed.
        buffer_retry_s: first pause before trying again to open a buffer file that could not
            be opened (it doubles up to ``buffer_retry_max_s``).
        buffer_retry_max_s: longest pause between those attempts.
        clock: wall clock in seconds.
    """

    def __init__(
        self,
        settings: AgentSettings,
        sources: Sequence[Source],
        *,
        source_restart_s: float = 5.0,
        buffer_retry_s: float = 5.0,
        buffer_retry_max_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sources = list(sources)
        self.source_restart_s = source_restart_s
        self.buffer_retry_s = buffer_retry_s
        self.buffer_retry_max_s = buffer_retry_max_s
        self._clock = clock
        self.stop_event = asyncio.Event()
        self.buffer: Buffer | None = None
        self.forwarder: Forwarder | None = None

    def stop(self) -> None:
        """Ask the agent to stop (what SIGTERM does)."""
        self.stop_event.set()

    def _sources_health(self) -> list[tuple[str, SourceHealth]]:
        found = []
        for source in self.sources:
            try:
                found.append((source.name, source.health()))
            except Exception:
                log.exception("source %s failed to report its health", source.name)
        return found

    async def _run_source(self, source: Source, sink: Sink) -> None:
        while True:
            before = cancel_requests()  # not zero for good after some task-group failures
            try:
                await source.run(sink)
            except asyncio.CancelledError:
                if cancel_requests() > before:
                    raise  # the agent is stopping
                # A library cancelled one of its own futures: the task group would end this
                # task without a word, and the source would never run again.
                log.error(
                    "source %s ended cancelled from within; restarting in %.0f s",
                    source.name,
                    self.source_restart_s,
                )
            except Exception:
                log.exception(
                    "source %s crashed; restarting in %.0f s", source.name, self.source_restart_s
                )
            else:  # a finite source (a file replay) is done
                log.info("source %s finished", source.name)
                return
            await asyncio.sleep(self.source_restart_s)

    async def _until_stopped(self, source_tasks: Sequence[asyncio.Task[None]]) -> None:
        await self.stop_event.wait()
        log.info("stopping: ending the sources, then flushing the buffer")
        await _end(source_tasks)
        if self.forwarder is not None:
            self.forwarder.stop()
        raise _StopError

    def _install_signals(self) -> list[signal.Signals]:
        if threading.current_thread() is not threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
            installed.append(sig)
        return installed

    async def run(self) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT), then shut down cleanly.

        The sources start at once and never wait for the disk: until the buffer file opens,
        their items are held in memory (see :class:`HoldingSink`), so local alarms and safety
        outputs work even when the buffer's disk is missing, full or read-only.
        """
        installed = self._install_signals()
        holding = HoldingSink(max_items=self.settings.buffer.memory_items)
        listeners = [s for s in self.sources if isinstance(s, AlarmListener)]
        sink: Sink = AlarmTap(holding, listeners) if listeners else holding
        try:
            async with asyncio.TaskGroup() as group:
                source_tasks = [
                    group.create_task(self._run_source(source, sink), name=f"source:{source.name}")
                    for source in self.sources
                ]
                group.create_task(self._run_buffered(holding, source_tasks), name="buffered")
        finally:
            loop = asyncio.get_running_loop()
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _open_buffer(self) -> tuple[Buffer, str | None] | None:
        """Open the buffer, retrying with backoff; ``None`` when stopped before it opened.

        Returns:
            The open buffer and, when it took more than one attempt, what the first failure was.
        """
        settings = self.settings.buffer
        first_failure: str | None = None
        started = time.monotonic()
        delay = self.buffer_retry_s
        while True:
            buffer = Buffer(
                settings.path,
                quota_bytes=settings.quota_bytes,
                max_age_s=settings.max_age_s,
                durability=settings.durability,
                commit_interval_s=settings.commit_interval_s,
                reserve_bytes=settings.reserve_bytes,
                clock=self._clock,
            )
            try:
                await buffer.open()
            except (OSError, sqlite3.Error, EdgeError) as exc:
                if first_failure is None:
                    first_failure = f"{type(exc).__name__}: {exc}"
                log.error(
                    "buffer file %s cannot be opened (%s); sources keep running and their "
                    "items are held in memory; trying again in %.1f s (failing for %.0f s)",
                    settings.path,
                    exc,
                    delay,
                    time.monotonic() - started,
                )
            else:
                return buffer, first_failure
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stop_event.wait()
                    return None
            delay = min(delay * 2, self.buffer_retry_max_s)

    async def _run_buffered(
        self, holding: HoldingSink, source_tasks: Sequence[asyncio.Task[None]]
    ) -> None:
        """Open the buffer, hand it what was held, then run it and the forwarder until stopped."""
        settings = self.settings
        opened = await self._open_buffer()
        if opened is None:
            await _end(source_tasks)
            log.error(
                "stopped before the buffer file %s could be opened: %d items held in memory "
                "are lost",
                settings.buffer.path,
                holding.held,
            )
            return
        buffer, failure = opened
        try:
            handed = holding.attach(buffer)
            if failure is not None:
                self._put_unavailable_alarm(buffer, failure, handed, holding.dropped)
            self.buffer = buffer
            self.forwarder = Forwarder(
                buffer,
                gateway_id=settings.gateway_id,
                mqtt=settings.mqtt,
                health_interval_s=settings.health_interval_s,
                sources_health=self._sources_health,
                clock=self._clock,
            )
            log.info(
                "gateway %s: %d sources, buffer %s (%d items waiting, %d taken while opening, "
                "next seq %d)",
                settings.gateway_id,
                len(self.sources),
                settings.buffer.path,
                buffer.depth - handed,
                handed,
                buffer.next_seq,
            )
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(buffer.run(), name="buffer")
                    group.create_task(self.forwarder.run(), name="forwarder")
                    group.create_task(self._until_stopped(source_tasks), name="stop")
            except* _StopError:
                pass
        finally:
            await buffer.close()
        log.info("stopped; %d items kept in the buffer", buffer.depth)

    def _put_unavailable_alarm(self, buffer: Buffer, failure: str, held: int, dropped: int) -> None:
        lost = f"; {dropped} routine items dropped" if dropped else ""
        buffer.put(
            wire.Alarm(
                seq=0,
                ts=int(self._clock() * 1000),
                state="raise",
                level="fault",
                code="buffer_unavailable",
                message=(
                    f"buffer file could not be opened ({failure}); "
                    f"{held} items were held in memory{lost}"
                )[:500],
            )
        )


async def _end(tasks: Sequence[asyncio.Task[None]], *, again_s: float = 1.0) -> None:
    """Cancel ``tasks`` and wait until they have ended.

    A task still running ``again_s`` later is cancelled again: a library awaiting with
    ``asyncio.wait_for`` on Python 3.11 (pymodbus does) loses a cancellation that arrives just
    as what it waits for completes, and the source would go on polling for ever.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_s)
