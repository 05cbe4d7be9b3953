"""Archive writes the database refused after their retries, kept on local disk until it takes them.

Ingest admits items into the de-duplication ledger before it archives them and acknowledges
MQTT on receipt, so a write given up was a loss: a PostgreSQL restart or fail-over longer than
the retries (a few seconds) dropped every gateway's data of that time. With a spill file the
records of such a write are appended to it instead (one JSON line per write, fsynced), and the
ingest writes them to the archive again once it answers, oldest first, removing each written
one. The file lives on the worker's own disk; one file per worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

import wire
from cloud.models import Received

__all__ = ["SPILLED_KINDS", "Spill", "SpillKind"]

log = logging.getLogger(__name__)

SpillKind = Literal["fixes", "readings", "vessels"]
#: The archive writes that are spilled (rejects, gaps and alerts are counted when lost).
SPILLED_KINDS: Final[tuple[SpillKind, ...]] = ("fixes", "readings", "vessels")
_TYPES: Final[dict[str, Any]] = {
    "fixes": list[Received[wire.Fix]],
    "readings": list[Received[wire.Reading]],
    "vessels": list[Received[wire.Vessel]],
}


class _Entry(msgspec.Struct, frozen=True):
    what: SpillKind
    records: msgspec.Raw


class Spill:
    """A JSON-lines file of refused archive writes (see the module docstring).

    Args:
        path: the file (created with its folder on the first spill).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: writes waiting in the file
        self.pending = self._count()
        self._lock = asyncio.Lock()

    def _count(self) -> int:
        try:
            with self.path.open("rb") as handle:
                return sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            return 0

    async def add(self, what: SpillKind, records: Sequence[Received[Any]]) -> None:
        """Append one refused write (fsynced before returning)."""
        line = msgspec.json.encode(_Entry(what, msgspec.Raw(msgspec.json.encode(records))))
        async with self._lock:
            await asyncio.to_thread(self._append, line + b"\n")
            self.pending += 1

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    async def drain(
        self, write: Callable[[SpillKind, list[Received[Any]]], Awaitable[object]]
    ) -> dict[str, int]:
        """Write the spilled records with ``write``, oldest first, until one fails.

        Returns:
            Records written per kind (the failed write and those after it stay in the file).
        """
        written: dict[str, int] = {}
        async with self._lock:
            lines = await asyncio.to_thread(self._read)
            done = 0
            for line in lines:
                try:
                    entry = msgspec.json.decode(line, type=_Entry)
                    records = msgspec.json.decode(entry.records, type=_TYPES[entry.what])
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    # A torn last line (a crash mid-append): nothing to restore from it.
                    log.error("spill %s: unreadable entry dropped: %s", self.path, exc)
                    done += 1
                    continue
                try:
                    await write(entry.what, records)
                except Exception as exc:
                    log.warning(
                        "spill %s: archive still refuses %s: %s", self.path, entry.what, exc
                    )
                    break
                written[entry.what] = written.get(entry.what, 0) + len(records)
                done += 1
            if done:
                await asyncio.to_thread(self._keep, lines[done:])
                self.pending = len(lines) - done
        return written

    def _read(self) -> list[bytes]:
        try:
            return [line for line in self.path.read_bytes().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def _keep(self, lines: list[bytes]) -> None:
        if not lines:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as handle:
            handle.write(b"".join(line + b"\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
