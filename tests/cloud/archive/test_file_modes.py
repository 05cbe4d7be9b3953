"""The SQLite archive and its -wal and -shm files are the service user's only (mode 0600)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.archive import Store
from cloud.archive._files import sqlite_path
from tests.cloud.conftest import register


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask a service usually runs with (022): files are world-readable unless made not."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("usual_umask")
async def test_a_new_archive_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    db = tmp_path / "cloud.db"
    store = await Store.connect(f"sqlite+aiosqlite:///{db}")
    try:
        await register(store, "e1", "g1", region="320281")  # a write: the WAL has data now
        files = [db, tmp_path / "cloud.db-wal", tmp_path / "cloud.db-shm"]
        assert {f: _mode(f) for f in files} == dict.fromkeys(files, 0o600)
    finally:
        await store.close()
    assert _mode(db) == 0o600


@pytest.mark.usefixtures("usual_umask")
async def test_an_archive_left_readable_is_made_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{db}"
    store = await Store.connect(url)
    await register(store, "e1", "g1", region="320281")
    await store.close()
    db.chmod(0o644)  # as an earlier version created it
    wal = tmp_path / "old.db-wal"
    wal.write_bytes(b"")
    wal.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="cloud.archive._files"):
        store = await Store.connect(url)
    try:
        await register(store, "e2", "g2", region="320281")
        assert _mode(db) == 0o600
        assert _mode(wal) == 0o600
        assert _mode(tmp_path / "old.db-shm") == 0o600
    finally:
        await store.close()
    assert f"{db} was mode 0644" in caplog.text


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite+aiosqlite:///cloud.db", Path("cloud.db")),
        ("sqlite+aiosqlite:////var/lib/hazwatch/cloud.db", Path("/var/lib/hazwatch/cloud.db")),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite://", None),
        ("postgresql+asyncpg://postgres@127.0.0.1/test", None),
    ],
)
def test_sqlite_path(url: str, path: Path | None) -> None:
    assert sqlite_path(url) == path
