"""The edge agent: sources -> durable buffer -> MQTT forwarder, in one task group.

Tasks (named, so a stack dump says who is who): ``buffer`` (group commits and limits),
``forwarder`` (MQTT connection, publishing and the health item) and one ``source:<name>`` per
source. SIGTERM or SIGINT stops the sources, commits what they produced, publishes the
``offline`` status and closes the buffer; whatever was not yet acknowledged stays on disk for
the next start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence

from edge.buffer import Buffer
from edge.config import AgentSettings
from edge.forward import Forwarder
from edge.pipeline import AlarmListener, AlarmTap, Sink, Source, SourceHealth

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
        clock: wall clock in seconds.
    """

    def __init__(
        self,
        settings: AgentSettings,
        sources: Sequence[Source],
        *,
        source_restart_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sources = list(sources)
        self.source_restart_s = source_restart_s
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
            try:
                await source.run(sink)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
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

    async def _until_stopped(self) -> None:
        await self.stop_event.wait()
        log.info("stopping: flushing the buffer")
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
        """Run until :meth:`stop` (or SIGTERM/SIGINT), then shut down cleanly."""
        settings = self.settings
        installed = self._install_signals()
        try:
            async with Buffer(
                settings.buffer.path,
                quota_bytes=settings.buffer.quota_bytes,
                max_age_s=settings.buffer.max_age_s,
                durability=settings.buffer.durability,
                commit_interval_s=settings.buffer.commit_interval_s,
                clock=self._clock,
            ) as buffer:
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
                    "gateway %s: %d sources, buffer %s (%d items waiting, next seq %d)",
                    settings.gateway_id,
                    len(self.sources),
                    settings.buffer.path,
                    buffer.depth,
                    buffer.next_seq,
                )
                await self._run_tasks(buffer, self.forwarder)
                log.info("stopped; %d items kept in the buffer", buffer.depth)
        finally:
            loop = asyncio.get_running_loop()
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _run_tasks(self, buffer: Buffer, forwarder: Forwarder) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(buffer.run(), name="buffer")
                group.create_task(forwarder.run(), name="forwarder")
                listeners = [s for s in self.sources if isinstance(s, AlarmListener)]
                sink = AlarmTap(buffer, listeners) if listeners else buffer
                for source in self.sources:
                    group.create_task(self._run_source(source, sink), name=f"source:{source.name}")
                group.create_task(self._until_stopped(), name="stop")
        except* _StopError:
            pass
