"""The SQLite outbox behind :class:`edge.buffer.Buffer` (synchronous; used from one thread only).

One table per lane holds every item the cloud has not acknowledged yet, as the exact bytes that
will be sent (``wire.encode_item``), keyed by the gateway ``seq``. A ``meta`` table keeps the next
``seq`` (committed in the same transaction as the rows, so a killed process never leaves a gap:
items that were not committed were never sent, and their numbers are simply given again) and the
drop counters.

Durability (``PRAGMA synchronous`` in WAL mode):

* ``normal``: a commit reaches the operating system before ``put`` callers move on; a killed or
  crashed agent loses nothing that was committed. A power cut may lose the last commits (never
  corrupts the file), but never one already sent: the forwarder sends only what
  :meth:`Outbox.sync` made durable (one fsync per send round with new items, not one per
  commit). Cheapest on flash storage; the default.
* ``full``: every commit is fsynced; survives a power cut too, at the cost of one fsync per group
  commit (the buffer commits at most every ``commit_interval_s``, so the cost stays bounded).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final, Literal

import msgspec

import wire
from edge.buffer.thinning import StopPoint, thin_readings, thin_stops
from edge.errors import EdgeError

__all__ = [
    "KIND_CODES",
    "LANE_ALARM",
    "LANE_DATA",
    "ROW_OVERHEAD_BYTES",
    "Durability",
    "Outbox",
    "OutboxCorruptError",
    "Row",
    "move_aside",
    "to_row",
]

log = logging.getLogger(__name__)

Durability = Literal["normal", "full"]
LANE_ALARM: Final = 0
LANE_DATA: Final = 1
KIND_CODES: Final = {"reading": 0, "fix": 1, "vessel": 2, "alarm": 3, "health": 4}
#: Bytes a row costs beyond its body (key, integers, b-tree cells): counted against the quota.
ROW_OVERHEAD_BYTES: Final = 40
#: (seq, lane, kind, ts, key, body)
Row = tuple[int, int, int, int, str, bytes]

#: One table per lane (no secondary index to maintain: ``seq`` is the rowid).
_TABLES: Final = ("alarm_lane", "data_lane")
_SCHEMA: Final = (
    "".join(
        f"CREATE TABLE IF NOT EXISTS {table} (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, "
        "ts INTEGER NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL);\n"
        for table in _TABLES
    )
    + "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
)
_DATA: Final = _TABLES[LANE_DATA]
#: Rows per INSERT statement (5 parameters each; SQLite allows 32766 parameters).
_ROWS_PER_INSERT: Final = 1000
_FIX_DECODER: Final = msgspec.json.Decoder(wire.Fix)


def _point(item: wire.Item) -> str:
    assert isinstance(item, wire.Reading)
    return f"{item.site}/{item.point}"


def _asset(item: wire.Item) -> str:
    assert isinstance(item, wire.Fix)
    return item.asset


def _mmsi(item: wire.Item) -> str:
    assert isinstance(item, wire.Vessel)
    return str(item.mmsi)


def _no_key(item: wire.Item) -> str:
    return ""


def _alarm_key(item: wire.Item) -> str:
    assert isinstance(item, wire.Alarm)
    return item.point or item.asset or item.code or ""


#: item type -> (kind code, key used by thinning)
_KINDS: Final[dict[type, tuple[int, Callable[[wire.Item], str]]]] = {
    wire.Reading: (KIND_CODES["reading"], _point),
    wire.Fix: (KIND_CODES["fix"], _asset),
    wire.Vessel: (KIND_CODES["vessel"], _mmsi),
    wire.Alarm: (KIND_CODES["alarm"], _alarm_key),
    wire.Health: (KIND_CODES["health"], _no_key),
}
_SEQ_ZERO: Final = b'"seq":0,'
_ALARM_KIND: Final = KIND_CODES["alarm"]


def to_row(item: wire.Item, seq: int) -> Row:
    """Validate and encode an item with ``seq`` into a stored row.

    The item is encoded once and the ``seq`` spliced in: msgspec writes the tag and then the
    fields in declaration order, so the first ``"seq":0,`` of an item with ``seq=0`` (as sources
    build them) is its ``seq`` field.

    Raises:
        wire.WireError: the contract rejects the item.
    """
    if item.seq != 0:
        item = msgspec.structs.replace(item, seq=0)
    body = wire.encode_item(item).replace(_SEQ_ZERO, b'"seq":%d,' % seq, 1)
    kind, key = _KINDS[type(item)]
    lane = LANE_ALARM if kind == _ALARM_KIND else LANE_DATA
    return (seq, lane, kind, item.ts, key(item), body)


class OutboxCorruptError(EdgeError):
    """The database file is not a usable SQLite outbox."""


def _is_corruption(exc: sqlite3.Error) -> bool:
    """Malformed image or not a database, as opposed to a full disk or a lock."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.OperationalError | sqlite3.IntegrityError
    )


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Raise :class:`OutboxCorruptError` for a damaged file, other SQLite errors as they are."""
    try:
        yield
    except sqlite3.Error as exc:
        if _is_corruption(exc):
            raise OutboxCorruptError(f"{path}: {exc}") from exc
        raise


#: ``(first, last)`` seq ranges of the data lane being sent: limits leave them alone
Spared = Iterable[tuple[int, int]]


def _unspared(spared: Spared) -> tuple[str, list[int]]:
    """A ``WHERE`` condition (and its parameters) excluding the spared ranges."""
    ranges = list(spared)  # a snapshot: the forwarder's side changes the list meanwhile
    condition = " AND ".join(["seq NOT BETWEEN ? AND ?"] * len(ranges)) or "1"
    return condition, [seq for pair in ranges for seq in pair]


class Outbox:
    """An open outbox file.

    Args:
        path: the database file (created with its folder when missing).
        durability: ``normal`` or ``full``, see the module docstring.
        first_seq: the counter a brand-new file starts from.

    Raises:
        OutboxCorruptError: the file exists but is damaged.
    """

    def __init__(
        self,
        path: Path,
        *,
        durability: Durability,
        first_seq: int,
        wal_autocheckpoint_pages: int = 1000,
    ) -> None:
        self.path = path
        self.durability: Durability = durability
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            self._setup(durability, first_seq, wal_autocheckpoint_pages)
        except sqlite3.Error as exc:
            self._db.close()
            if _is_corruption(exc):
                raise OutboxCorruptError(f"{path}: {exc}") from exc
            raise

    def _setup(self, durability: Durability, first_seq: int, autocheckpoint: int) -> None:
        db = self._db
        check = db.execute("PRAGMA quick_check(1)").fetchone()
        if check is None or check[0] != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={durability.upper()}")
        db.execute("PRAGMA journal_size_limit=16777216")
        # The WAL grows to this many pages before it is copied into the database: on a small
        # disk it must stay well below the space the buffer keeps in reserve (see Buffer).
        db.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        # Sent items need no scrubbing, and some builds zero every deleted cell by default.
        db.execute("PRAGMA secure_delete=OFF")
        # A new file can give freed pages back to the file system (on a full disk); set before
        # its first table, ignored for an existing file.
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.executescript(_SCHEMA)
        # A new file records its first seq at once, so reopening it gives the same number.
        db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', ?)", (first_seq,))
        # Kept for good: every seq from it to next_seq - 1 was given out by this file (for a
        # file older than this record, from the first opening that wrote it).
        db.execute(
            "INSERT OR IGNORE INTO meta SELECT 'first_seq', value FROM meta WHERE name='next_seq'"
        )
        (stored,) = db.execute("SELECT value FROM meta WHERE name='next_seq'").fetchone()
        self.next_seq: int = stored
        self.depth = self.nbytes = 0
        for table in _TABLES:
            top, count, body = db.execute(
                f"SELECT max(seq), count(*), total(length(body)) FROM {table}"
            ).fetchone()
            self.next_seq = max(self.next_seq, (top or 0) + 1)
            self.depth += count
            self.nbytes += int(body) + count * ROW_OVERHEAD_BYTES
        #: whether this gateway's cloud has ever acknowledged archived seqs (see wire.acks)
        self.cloud_acks = (
            db.execute("SELECT 1 FROM meta WHERE name='cloud_acks'").fetchone() is not None
        )
        self.drops: dict[str, int] = {
            name.removeprefix("drop:"): value
            for name, value in db.execute("SELECT name, value FROM meta WHERE name LIKE 'drop:%'")
        }

    def _write(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        try:
            self._db.executemany(sql, args)
        except sqlite3.Error as exc:
            if _is_corruption(exc):
                raise OutboxCorruptError(f"{self.path}: {exc}") from exc
            raise

    def _transaction(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def _commit(self) -> None:
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if _is_corruption(exc):
                raise OutboxCorruptError(f"{self.path}: {exc}") from exc
            raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def append(self, rows: Sequence[Row], next_seq: int) -> None:
        """Insert rows and the counter in one transaction (a group commit)."""
        with _translated(self.path):  # a closed connection (a failed replacement) too
            self._transaction()
        try:
            for lane in (LANE_ALARM, LANE_DATA):
                self._insert(lane, [r for r in rows if r[1] == lane])
            self._write("INSERT OR REPLACE INTO meta VALUES ('next_seq', ?)", [(next_seq,)])
            self._commit()
        except BaseException:
            self._rollback()
            raise
        self.next_seq = next_seq
        self.depth += len(rows)
        self.nbytes += sum(len(r[5]) + ROW_OVERHEAD_BYTES for r in rows)

    def sync(self) -> None:
        """Make every committed transaction durable: fsync the WAL (and the database file).

        Under ``normal`` durability commits reach the operating system but not the disk. The
        forwarder calls this before it sends anything committed since the last call, so a power
        cut may lose items never sent but never rolls back a sent one, whose ``seq`` would then
        be given to a new item that the cloud drops as a duplicate. It writes nothing, so it
        works on a full disk too (a committed frame in a synced WAL survives; a checkpoint
        syncs the database file itself).
        """
        for suffix in ("-wal", ""):
            try:
                fd = os.open(f"{self.path}{suffix}", os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def checkpoint(self, *, truncate: bool = False) -> None:
        """Copy the WAL into the database file (``truncate``: and shrink the WAL to nothing)."""
        with _translated(self.path):
            self._db.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")

    def give_back(self) -> None:
        """Return the free pages of the file to the file system (files made since auto_vacuum
        was set; a no-op for older ones), and the WAL that took it."""
        with _translated(self.path):
            self._db.execute("PRAGMA incremental_vacuum").fetchall()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def room(self) -> tuple[int, int]:
        """Free bytes on the file system, and free pages inside the database (reused first)."""
        free = shutil.disk_usage(self.path.parent).free
        with _translated(self.path):
            (pages,) = self._db.execute("PRAGMA freelist_count").fetchone()
            (size,) = self._db.execute("PRAGMA page_size").fetchone()
        return free, int(pages) * int(size)

    def file_bytes(self) -> int:
        """Bytes the database and its WAL take on disk."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    def _insert(self, lane: int, rows: Sequence[Row]) -> None:
        """Insert with multi-row statements.

        ``executemany`` gives up the GIL around every row's step and must win it back each
        time; while the event loop thread is busy that costs up to a switch interval per row.
        A statement of :data:`_ROWS_PER_INSERT` rows takes the GIL once per chunk.
        """
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            values = ",".join(["(?,?,?,?,?)"] * len(chunk))
            params = [v for r in chunk for v in (r[0], r[2], r[3], r[4], r[5])]
            self._write(f"INSERT INTO {_TABLES[lane]} VALUES {values}", [params])

    def select(
        self, lane: int, *, above: int, below: int, newest: bool, limit: int
    ) -> list[tuple[int, bytes]]:
        """Rows of a lane with ``above < seq < below``, oldest or newest first."""
        order = "DESC" if newest else "ASC"
        try:
            rows: list[tuple[int, bytes]] = self._db.execute(
                f"SELECT seq, body FROM {_TABLES[lane]} WHERE seq > ? AND seq < ? "
                f"ORDER BY seq {order} LIMIT ?",
                (above, below, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            if _is_corruption(exc):
                raise OutboxCorruptError(f"{self.path}: {exc}") from exc
            raise
        return rows

    def _delete(self, sql: str, args: Sequence[object]) -> tuple[int, int]:
        """Run a ``DELETE ... RETURNING length(body)``; return (rows, bytes) removed."""
        self._transaction()
        try:
            sizes = self._db.execute(sql, args).fetchall()
            self._commit()
        except sqlite3.Error as exc:
            self._rollback()
            if _is_corruption(exc):
                raise OutboxCorruptError(f"{self.path}: {exc}") from exc
            raise
        freed = sum(s[0] for s in sizes) + len(sizes) * ROW_OVERHEAD_BYTES
        self.depth -= len(sizes)
        self.nbytes -= freed
        return len(sizes), freed

    def delete_ranges(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Delete the rows of both lanes whose ``seq`` lies in one of the inclusive ``ranges``
        (the cloud has them), in one transaction; return how many rows went."""
        deleted = freed = 0
        with _translated(self.path):
            self._transaction()
            try:
                for table in _TABLES:
                    for first, last in ranges:
                        sizes = self._db.execute(
                            f"DELETE FROM {table} WHERE seq BETWEEN ? AND ? RETURNING length(body)",
                            (first, last),
                        ).fetchall()
                        deleted += len(sizes)
                        freed += sum(size for (size,) in sizes)
                self._commit()
            except BaseException:
                self._rollback()
                raise
        self.depth -= deleted
        self.nbytes -= freed + deleted * ROW_OVERHEAD_BYTES
        return deleted

    def note_cloud_acks(self) -> None:
        """Remember for good that the cloud acknowledges (the forwarder never falls back then)."""
        with _translated(self.path):
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('cloud_acks', 1)")
        self.cloud_acks = True

    def _count_drops(self, reason: str, count: int) -> None:
        if count:
            self.drops[reason] = self.drops.get(reason, 0) + count
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"drop:{reason}", self.drops[reason])
            )

    def _delete_seqs(self, seqs: Sequence[int], reason: str) -> int:
        freed = 0
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            count, size = self._delete(
                f"DELETE FROM {_DATA} WHERE seq IN ({marks}) RETURNING length(body)",
                chunk,
            )
            self._count_drops(reason, count)
            freed += size
        return freed

    def purge_older(self, cutoff_ms: int, *, chunk: int = 5000, spared: Spared = ()) -> int:
        """Drop routine data observed before ``cutoff_ms`` (reason ``max_age``); alarms stay.

        Rows are examined from the oldest ``seq`` on, a chunk at a time, and the walk stops at
        the first chunk holding younger data: stored order follows observation time closely
        enough, and a full scan of a large buffer every few minutes would stall the forwarder.
        Rows being sent (``spared``) stay: the broker may already have them.
        """
        total = 0
        while True:
            condition, params = _unspared(spared)
            with _translated(self.path):
                count, _ = self._delete(
                    f"DELETE FROM {_DATA} WHERE seq IN (SELECT seq FROM {_DATA} "
                    f"WHERE {condition} ORDER BY seq LIMIT ?) AND ts < ? RETURNING length(body)",
                    (*params, chunk, cutoff_ms),
                )
                self._count_drops("max_age", count)
            total += count
            if count < chunk:
                return total

    def _oldest(self, kind: int, window: int, spared: Spared) -> list[tuple[int, str, bytes]]:
        condition, params = _unspared(spared)
        rows: list[tuple[int, str, bytes]] = self._db.execute(
            f"SELECT seq, key, body FROM (SELECT * FROM {_DATA} WHERE {condition} "
            "ORDER BY seq LIMIT ?) WHERE kind = ? ORDER BY seq",
            (*params, window, kind),
        ).fetchall()
        return rows

    def _stop_points(self, rows: Iterable[tuple[int, str, bytes]]) -> list[StopPoint]:
        points = []
        for seq, key, body in rows:
            fix = _FIX_DECODER.decode(body)
            points.append(StopPoint(seq, key, fix.lat, fix.lon, fix.speed_kmh))
        return points

    def thin(
        self, *, excess_bytes: int, window: int, spared: Spared = (), reason: str | None = None
    ) -> int:
        """Free at least ``excess_bytes`` of routine data, thinning the oldest first.

        Rows being sent (``spared``) stay: the broker may already have them, and a drop is
        counted only for an item that never reaches the cloud.

        ``reason`` counts every drop under that name (``disk_full``) instead of the strategy's.

        Returns:
            Bytes freed (less than asked only when no other routine data is left).
        """
        with _translated(self.path):
            return self._thin(excess_bytes, window, spared, reason)

    def _thin(self, excess_bytes: int, window: int, spared: Spared, reason: str | None) -> int:
        freed = 0
        while freed < excess_bytes:
            fixes = self._stop_points(self._oldest(KIND_CODES["fix"], window, spared))
            step = self._delete_seqs(thin_stops(fixes), reason or "stop_thinned")
            if step == 0:
                readings = self._oldest(KIND_CODES["reading"], window, spared)
                step = self._delete_seqs(
                    thin_readings([(s, k) for s, k, _ in readings]), reason or "reading_thinned"
                )
            if step == 0:
                condition, params = _unspared(spared)
                oldest = self._db.execute(
                    f"SELECT seq FROM {_DATA} WHERE {condition} ORDER BY seq LIMIT ?",
                    (*params, max(1, window // 4)),
                ).fetchall()
                step = self._delete_seqs([s for (s,) in oldest], reason or "quota_oldest")
            if step == 0:
                break
            freed += step
        return freed

    def oldest_ts(self) -> int | None:
        """Observation time of the oldest stored item of each lane, the smaller of the two."""
        with _translated(self.path):
            found = [
                row[0]
                for table in _TABLES
                if (
                    row := self._db.execute(
                        f"SELECT ts FROM {table} ORDER BY seq LIMIT 1"
                    ).fetchone()
                )
            ]
        return min(found) if found else None

    def close(self) -> None:
        """Close the connection (a checkpoint leaves the WAL empty)."""
        self._db.close()


def move_aside(path: Path, *, now_s: float | None = None) -> Path:
    """Rename a damaged database (and its WAL and shared-memory files) out of the way."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_s))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            part.rename(Path(f"{target}{suffix}"))
    return target
