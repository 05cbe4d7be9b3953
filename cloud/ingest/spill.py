"""Archive writes the database refused after their retries, kept on local disk until it takes them.

Ingest admits items into the de-duplication ledger before it archives them and acknowledges
MQTT on receipt, so a write given up was a loss: a PostgreSQL restart or fail-over longer than
the retries (a few seconds) dropped every gateway's data of that time. With a spill file the
records of such a write are appended to it instead (one JSON line per write, fsynced), and the
ingest writes them to the archive again once it answers, oldest first, removing each written
one. The file lives on the worker's own disk; one file per worker.

A write the archive can never take (a string PostgreSQL refuses, say) must not hold up the
ones behind it, yet a database that is away must not make every write look like such a one. So
a replay goes on past a refused write, and tells the two apart per kind of write (a table can be
away on its own):

* A refusal counts against a write (a *strike*, kept in its line of the file, so it survives a
  restart or a crash) only once a later write of the same kind succeeded in the same replay: the
  archive was answering. When ``outage_after`` writes of a kind in a row are refused, the
  replay writes the newest records of that kind it has written before (the *canary*; archive
  writes are idempotent, so that changes nothing): if that fails too, the archive is taken to be
  away for that kind and its remaining writes wait for the next replay, with no strike.
* A refused write of several records is split in halves (each keeping the strikes), so the good
  records of a round reach the archive and the refused one is isolated in a few replays.
* A single record with ``quarantine_after`` strikes is moved to ``<spill>.quarantine`` (JSON
  lines, fsynced, with the last error, kept for inspection) and counted in
  :attr:`Spill.quarantined`; so is a line that cannot be read (a crash mid-append).

The quarantine file is appended before the spill file is replaced (write, fsync, rename), so a
crash in between leaves a record in both, never in neither. Without a canary (right after a
start, before any spilled write of that kind succeeded) a run of refusals is taken for an
outage; the next replay then starts after it, so no run of refused writes blocks the file.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
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
_RAW_LIST: Final = msgspec.json.Decoder(list[msgspec.Raw])
#: How a line of each kind starts (msgspec writes the fields in order).
_STARTS: Final = tuple((what, b'{"what":"%s",' % what.encode()) for what in SPILLED_KINDS)
_ERROR_CHARS: Final = 1000

Write = Callable[[SpillKind, list[Received[Any]]], Awaitable[object]]


class _Entry(msgspec.Struct, frozen=True, omit_defaults=True):
    what: SpillKind
    records: msgspec.Raw
    #: replays in which the archive refused this write while it took others of its kind
    strikes: int = 0


class _Quarantined(msgspec.Struct, frozen=True, kw_only=True):
    what: SpillKind
    records: msgspec.Raw
    strikes: int
    error: str
    at_ms: int


class _Unreadable(msgspec.Struct, frozen=True, kw_only=True):
    line: str
    error: str
    at_ms: int


@dataclass
class _Slot:
    """One line of the file during a replay, and what becomes of it."""

    line: bytes
    entry: _Entry | None = None
    records: list[Received[Any]] = field(default_factory=list)
    #: ``waiting`` (not tried), ``refused`` (no verdict: kept as it was), ``struck`` (kept with
    #: one more strike, halved if several records), ``written``, ``quarantined``, ``unreadable``
    state: Literal["waiting", "refused", "struck", "written", "quarantined", "unreadable"] = (
        "waiting"
    )
    error: str = ""
    _kept: list[bytes] | None = None

    def kind(self) -> SpillKind | None:
        """The kind of write, from the line's start where it can (not decoding the records)."""
        if self.entry is not None:
            return self.entry.what
        return next((what for what, start in _STARTS if self.line.startswith(start)), None)

    def kept(self) -> list[bytes]:
        """The lines this slot leaves in the file (once the replay is over)."""
        if self._kept is None:
            self._kept = self._lines()
        return self._kept

    def _lines(self) -> list[bytes]:
        entry = self.entry
        if self.state in {"written", "quarantined", "unreadable"}:
            return []
        if entry is None or self.state != "struck":
            return [self.line]
        raws = _RAW_LIST.decode(entry.records)
        if len(raws) == 1:
            return [msgspec.json.encode(entry)]
        middle = len(raws) // 2
        return [
            msgspec.json.encode(_Entry(entry.what, _raw_list(half), entry.strikes))
            for half in (raws[:middle], raws[middle:])
        ]

    def moved(self, at_ms: int) -> list[bytes]:
        """The lines this slot adds to the quarantine file."""
        if self.state == "unreadable":
            text = self.line.decode("utf-8", "replace")
            return [msgspec.json.encode(_Unreadable(line=text, error=self.error, at_ms=at_ms))]
        if self.state != "quarantined" or self.entry is None:
            return []
        entry = self.entry
        record = _Quarantined(
            what=entry.what,
            records=entry.records,
            strikes=entry.strikes,
            error=self.error,
            at_ms=at_ms,
        )
        return [msgspec.json.encode(record)]


class Spill:
    """A JSON-lines file of refused archive writes (see the module docstring).

    Args:
        path: the file (created with its folder on the first spill); the quarantine file is
            ``<path>.quarantine`` beside it.
        quarantine_after: strikes after which a single refused record is quarantined.
        outage_after: refusals of one kind in a row after which the canary tells whether the
            archive is away for that kind.
    """

    def __init__(self, path: Path, *, quarantine_after: int = 5, outage_after: int = 3) -> None:
        self.path = path
        self.quarantine_path = path.with_name(path.name + ".quarantine")
        self.quarantine_after = max(1, quarantine_after)
        self.outage_after = max(1, outage_after)
        #: writes waiting in the file
        self.pending = self._count()
        #: records this process moved to the quarantine file, per kind (and ``unreadable``:
        #: lines that could not be read)
        self.quarantined: collections.Counter[str] = collections.Counter()
        #: per kind, the newest records written from the file (written again as the canary)
        self._canary: dict[SpillKind, list[Received[Any]]] = {}
        self._start = 0
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
            await asyncio.to_thread(_append, self.path, line + b"\n")
            self.pending += 1

    async def drain(self, write: Write) -> dict[str, int]:
        """Write the spilled records with ``write``, oldest first, past the ones refused.

        Returns:
            Records written per kind (refused writes stay in the file, or go to the quarantine).
        """
        async with self._lock:
            slots = [_Slot(line) for line in await asyncio.to_thread(self._read)]
            start = self._start if self._start < len(slots) else 0
            order = slots[start:] + slots[:start]
            replay = _Replay(self, write)
            resume = await replay.run(order)
            if replay.changed:
                await asyncio.to_thread(self._settle, slots)
            self.pending = sum(len(slot.kept()) for slot in slots)
            self._start = _line_index(slots, order[resume:]) if resume is not None else 0
        return dict(replay.written)

    def _read(self) -> list[bytes]:
        try:
            return [line for line in self.path.read_bytes().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def _settle(self, slots: list[_Slot]) -> None:
        """Quarantine what has to go, then replace the file with what stays (crash-safe order)."""
        at_ms = time.time_ns() // 1_000_000
        moved = [line for slot in slots for line in slot.moved(at_ms)]
        if moved:
            _append(self.quarantine_path, b"".join(line + b"\n" for line in moved))
        lines = [line for slot in slots for line in slot.kept()]
        if not lines:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as handle:
            handle.write(b"".join(line + b"\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        _fsync_dir(self.path.parent)


class _Replay:
    """One pass over the file: write, strike, give up a kind when its archive is away."""

    def __init__(self, spill: Spill, write: Write) -> None:
        self.spill = spill
        self.write = write
        self.written: collections.Counter[str] = collections.Counter()
        self.changed = False
        #: per kind, the writes refused since the last one that succeeded
        self._unconfirmed: dict[SpillKind, list[_Slot]] = collections.defaultdict(list)
        self._away: set[SpillKind] = set()

    async def run(self, order: list[_Slot]) -> int | None:
        """Replay ``order``; when a kind was away, return where the next replay should start."""
        last_tried: int | None = None
        for index, slot in enumerate(order):
            if slot.kind() in self._away:
                continue  # not even decoded: during an outage, most of the file is skipped
            entry = self._open(slot)
            if entry is None or entry.what in self._away:
                continue
            last_tried = index
            await self._try(slot, entry)
        for what in list(self._unconfirmed):
            if what not in self._away and not await self._confirm(what):
                self._give_up(what)
        if not self._away or last_tried is None or last_tried + 1 >= len(order):
            return None
        return last_tried + 1

    def _open(self, slot: _Slot) -> _Entry | None:
        try:
            entry = msgspec.json.decode(slot.line, type=_Entry)
            slot.records = msgspec.json.decode(entry.records, type=_TYPES[entry.what])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # A torn last line (a crash mid-append): nothing to restore from it.
            log.error("spill %s: unreadable entry quarantined: %s", self.spill.path, exc)
            slot.state, slot.error = "unreadable", str(exc)[:_ERROR_CHARS]
            self.spill.quarantined["unreadable"] += 1
            self.changed = True
            return None
        slot.entry = entry
        return entry

    async def _try(self, slot: _Slot, entry: _Entry) -> None:
        try:
            await self.write(entry.what, slot.records)
        except Exception as exc:
            slot.state, slot.error = "refused", f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
            refused = self._unconfirmed[entry.what]
            refused.append(slot)
            if len(refused) >= self.spill.outage_after and not await self._confirm(entry.what):
                self._give_up(entry.what)
            return
        slot.state = "written"
        self.changed = True
        self.written[entry.what] += len(slot.records)
        self.spill._canary[entry.what] = slot.records
        self._strike(entry.what)

    async def _confirm(self, what: SpillKind) -> bool:
        """Whether the archive takes writes of ``what`` now (the canary); strike if it does."""
        canary = self.spill._canary.get(what)
        if canary is None:
            return False
        try:
            await self.write(what, canary)
        except Exception:
            return False
        self._strike(what)
        return True

    def _strike(self, what: SpillKind) -> None:
        """The archive took a write of ``what``: the refusals before it were the records'."""
        for slot in self._unconfirmed.pop(what, []):
            assert slot.entry is not None
            entry = msgspec.structs.replace(slot.entry, strikes=slot.entry.strikes + 1)
            slot.entry = entry
            self.changed = True
            if len(slot.records) == 1 and entry.strikes >= self.spill.quarantine_after:
                slot.state = "quarantined"
                self.spill.quarantined[what] += 1
                log.error(
                    "spill %s: a record of %s refused %d times while the archive took others, "
                    "moved to %s: %s",
                    self.spill.path,
                    what,
                    entry.strikes,
                    self.spill.quarantine_path,
                    slot.error,
                )
                continue
            slot.state = "struck"
            log.warning(
                "spill %s: %d %s refused while the archive takes others (strike %d of %d): %s",
                self.spill.path,
                len(slot.records),
                what,
                entry.strikes,
                self.spill.quarantine_after,
                slot.error,
            )

    def _give_up(self, what: SpillKind) -> None:
        """The archive seems away for ``what``: no strikes; the rest waits for the next replay."""
        refused = self._unconfirmed.pop(what, [])
        self._away.add(what)
        log.warning(
            "spill %s: archive refuses %s (%d in a row, last: %s); retrying later",
            self.spill.path,
            what,
            len(refused),
            refused[-1].error if refused else "",
        )


def _line_index(slots: list[_Slot], following: list[_Slot]) -> int:
    """Index in the new file of the first line of ``following`` that stays (0 if none)."""
    first = {id(slot): index for index, slot in enumerate(slots)}
    offsets = list(itertools.accumulate((len(slot.kept()) for slot in slots), initial=0))
    for candidate in following:
        if candidate.kept():
            return offsets[first[id(candidate)]]
    return 0


def _raw_list(raws: list[msgspec.Raw]) -> msgspec.Raw:
    return msgspec.Raw(b"[" + b",".join(bytes(raw) for raw in raws) + b"]")


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
