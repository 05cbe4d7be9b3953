"""The spill against the real PostgreSQL: a record it refuses is quarantined, an outage is not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import wire
from cloud.archive import Store
from cloud.ingest import Spill
from cloud.ingest.spill import SpillKind
from cloud.models import Received
from tests.cloud.conftest import open_store, register

pytestmark = pytest.mark.services

T0 = 1_764_806_400_000
GW = "gw-spill"


def fix(seq: int, asset: str = "truck") -> Received[wire.Fix]:
    """A fix as ingest hands it to the archive; built directly, so the wire checks are bypassed."""
    item = wire.Fix(seq=seq, ts=T0 + seq, asset=asset, lat=31.0 + seq / 1000, lon=120.0)
    return Received(item, GW, "e1", T0 + seq)


def poison(seq: int) -> Received[wire.Fix]:
    """A fix PostgreSQL can never take: U+0000 in the asset id."""
    return fix(seq, asset="truck\x00")


def reading(seq: int) -> Received[wire.Reading]:
    item = wire.Reading(seq=seq, ts=T0 + seq, site="tank-farm-1", point="T101.LT01", value=1.5)
    return Received(item, GW, "e1", T0 + seq)


class Writer:
    """The archive writes the ingest replays spilled records with, counting the calls."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls = 0

    async def __call__(self, what: SpillKind, records: list[Received[Any]]) -> object:
        self.calls += 1
        if what == "fixes":
            return await self.store.insert_fixes(records)
        if what == "readings":
            return await self.store.insert_readings(records)
        return await self.store.insert_vessels(records)


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store("postgresql", tmp_path) as store:
        await register(store, "e1", GW)
        yield store


async def archived(store: Store, asset: str = "truck") -> list[int]:
    return [f.seq for f in await store.track(asset, 0, T0 + 10_000)]


def quarantined_lines(spill: Spill) -> list[dict[str, Any]]:
    return [json.loads(line) for line in spill.quarantine_path.read_bytes().splitlines()]


async def rename_fixes(store: Store, old: str, new: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_a_refused_record_lets_the_rest_through_and_is_quarantined_after_n_strikes(
    postgres: Store, tmp_path: Path
) -> None:
    path = tmp_path / "spill" / "archive.jsonl"
    spill = Spill(path)
    await spill.add("fixes", [poison(1)])
    await spill.add("fixes", [fix(2)])
    await spill.add("fixes", [fix(3), fix(4)])
    write = Writer(postgres)
    assert await spill.drain(write) == {"fixes": 3}  # the poison no longer blocks them
    assert await archived(postgres) == [2, 3, 4]
    assert spill.pending == 1
    for strike in range(2, 6):
        # A restart each time: the strikes are in the file; new spilled writes succeed.
        spill = Spill(path)
        await spill.add("fixes", [fix(10 * strike)])
        assert await spill.drain(write) == {"fixes": 1}
        if strike < 5:
            assert json.loads(path.read_bytes())["strikes"] == strike
    assert spill.quarantined == {"fixes": 1}
    assert spill.pending == 0
    assert not path.exists()
    [moved] = quarantined_lines(spill)
    assert moved["what"] == "fixes"
    assert moved["strikes"] == 5
    assert [r["item"]["asset"] for r in moved["records"]] == ["truck\x00"]
    assert "0x00" in moved["error"]
    assert await archived(postgres) == [2, 3, 4, 20, 30, 40, 50]


async def test_a_refused_record_alone_is_quarantined_once_the_archive_is_seen_to_answer(
    postgres: Store, tmp_path: Path
) -> None:
    spill = Spill(tmp_path / "archive.jsonl", quarantine_after=3)
    await spill.add("fixes", [fix(1)])
    await spill.add("fixes", [poison(2)])
    write = Writer(postgres)
    assert await spill.drain(write) == {"fixes": 1}
    # Only the refused record is left: the records written last show the archive answers.
    for _ in range(2):
        assert await spill.drain(write) == {}
    assert spill.pending == 0
    assert spill.quarantined == {"fixes": 1}
    assert await archived(postgres) == [1]


async def test_only_the_refused_record_of_a_round_is_quarantined(
    postgres: Store, tmp_path: Path
) -> None:
    spill = Spill(tmp_path / "archive.jsonl")
    round_ = [fix(n) for n in range(1, 9)]
    round_[5] = poison(6)
    await spill.add("fixes", round_)
    await spill.add("fixes", [fix(9)])
    write = Writer(postgres)
    for _ in range(5):
        await spill.drain(write)
    assert spill.pending == 0
    assert spill.quarantined == {"fixes": 1}
    [moved] = quarantined_lines(spill)
    assert [r["item"]["seq"] for r in moved["records"]] == [6]
    assert await archived(postgres) == [1, 2, 3, 4, 5, 7, 8, 9]


async def test_an_outage_quarantines_nothing_and_loses_nothing(
    postgres: Store, tmp_path: Path
) -> None:
    path = tmp_path / "archive.jsonl"
    spill = Spill(path, quarantine_after=2)
    await spill.add("fixes", [fix(1)])
    write = Writer(postgres)
    assert await spill.drain(write) == {"fixes": 1}  # the archive has answered (a canary)
    await spill.add("fixes", [poison(2)])
    for seq in range(3, 9):
        await spill.add("fixes", [fix(seq)])
    await spill.add("readings", [reading(9)])
    await rename_fixes(postgres, "fixes", "fixes_away")
    for _ in range(4):
        write.calls = 0
        # The fixes wait (tried a few times, then the canary fails too); the readings go on.
        assert await spill.drain(write) in ({"readings": 1}, {})
        assert write.calls <= spill.outage_after + 2
    assert spill.pending == 7
    spill = Spill(path, quarantine_after=2)  # a restart during the outage: no canary now
    for _ in range(3):
        assert await spill.drain(write) == {}
    assert spill.pending == 7
    assert not spill.quarantine_path.exists()
    await rename_fixes(postgres, "fixes_away", "fixes")
    assert await spill.drain(write) == {"fixes": 6}
    assert await archived(postgres) == [1, 3, 4, 5, 6, 7, 8]
    assert len(await postgres.readings("tank-farm-1", "T101.LT01", 0, T0 + 100)) == 1
    assert spill.pending == 1  # the poison: one strike, not quarantined in the outage
    assert not spill.quarantine_path.exists()
    assert json.loads(path.read_bytes())["strikes"] == 1


async def test_a_crash_while_quarantining_keeps_the_record(
    postgres: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "archive.jsonl"
    spill = Spill(path, quarantine_after=1)
    await spill.add("fixes", [poison(1)])
    await spill.add("fixes", [fix(2)])

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("power cut")

    # The spill file is about to be replaced (or removed, once empty) when the power goes.
    monkeypatch.setattr(Path, "replace", crash)
    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(OSError, match="power cut"):
        await spill.drain(Writer(postgres))
    monkeypatch.undo()
    # The quarantine has it, and so does the spill file still: in both, never in neither.
    assert len(quarantined_lines(spill)) == 1
    again = Spill(path, quarantine_after=1)
    assert again.pending == 2
    await again.add("fixes", [fix(3)])
    assert await again.drain(Writer(postgres)) == {"fixes": 2}
    assert again.pending == 0
    assert await archived(postgres) == [2, 3]


async def test_an_unreadable_line_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    spill = Spill(path)
    path.write_bytes(b'{"what":"fixes","records":[{"item":\n')  # a crash mid-append

    async def never(what: SpillKind, records: list[Received[Any]]) -> object:
        raise AssertionError("nothing to write")

    assert await spill.drain(never) == {}
    assert spill.quarantined == {"unreadable": 1}
    assert not path.exists()
    [moved] = quarantined_lines(spill)
    assert moved["line"] == '{"what":"fixes","records":[{"item":'
