"""``hazwatch admin`` on a real SQLite archive and ``hazwatch cloud`` as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from cloud.live import RedisLiveState
from hazwatch.cli import main
from tests.conftest import REDIS_URL
from tests.support.procs import free_port, wait_port


def admin(db: Path, *args: str) -> int:
    return main(["admin", *args, "--database", f"sqlite+aiosqlite:///{db}"])


def test_admin_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cloud.db"
    assert (
        admin(db, "enterprise", "add", "jy", "--name", "Jiangyin Chem", "--region", "320281") == 0
    )
    assert admin(db, "enterprise", "add", "bad", "--name", "X", "--region", "32") == 1
    assert "GB/T 2260" in capsys.readouterr().err
    assert admin(db, "gateway", "add", "gw-1", "--enterprise", "jy") == 0
    assert admin(db, "gateway", "add", "gw-2", "--enterprise", "nope") == 1
    assert "unknown enterprise" in capsys.readouterr().err
    assert (
        admin(db, "key", "create", "--name", "wuxi", "--role", "regulator", "--region", "320200")
        == 0
    )
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("hzk_")
    assert "shown only now" in out.err
    assert (
        admin(db, "key", "create", "--name", "d", "--role", "dispatcher", "--enterprise", "nope")
        == 1
    )
    assert admin(db, "key", "create", "--name", "d", "--role", "dispatcher") == 1
    capsys.readouterr()
    assert admin(db, "key", "list") == 0
    listed = capsys.readouterr().out
    assert "wuxi\tregulator\t320200\tactive" in listed
    assert token not in listed
    prefix = listed.split("\t")[0]
    assert admin(db, "key", "revoke", prefix) == 0
    assert admin(db, "key", "list") == 0
    assert "revoked" in capsys.readouterr().out

    registry = tmp_path / "registry.toml"
    registry.write_text(
        '[[assets]]\nid = "truck-1"\nenterprise_id = "jy"\nasset_class = "hazmat_truck"\n'
    )
    assert admin(db, "import", str(registry)) == 0
    assert "1 assets, 0 sites" in capsys.readouterr().out
    broken = tmp_path / "broken.toml"
    broken.write_text('[[assets]]\nid = "t"\nenterprise_id = "nope"\nasset_class = "coach"\n')
    assert admin(db, "import", str(broken)) == 1
    assert str(broken) in capsys.readouterr().err
    assert admin(db, "enterprise", "list") == 0
    assert "jy\t320281\tJiangyin Chem" in capsys.readouterr().out


def test_admin_reports_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text("[database]\nurl = 5\n")
    assert main(["admin", "enterprise", "list", "--config", str(config)]) == 2
    assert "database.url" in capsys.readouterr().err


def test_cloud_command_serves_the_api(tmp_path: Path) -> None:
    db = tmp_path / "cloud.db"
    assert admin(db, "enterprise", "add", "jy", "--name", "J", "--region", "320281") == 0
    port = free_port()
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n[http]\nport = {port}\n[mqtt]\nenabled = false\n'
    )
    token_file = tmp_path / "token"
    with token_file.open("w") as out:
        subprocess.run(
            [sys.executable, "-m", "hazwatch.cli", "admin", "key", "create", "--name", "ops",
             "--role", "admin", "--config", str(config)],
            stdout=out, check=True, timeout=60,
        )  # fmt: skip
    token = token_file.read_text().strip()
    log = (tmp_path / "cloud.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hazwatch.cli", "cloud", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, timeout_s=30)
        auth = {"Authorization": f"Bearer {token}"}
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/enterprises", headers=auth, timeout=10
        )
        assert response.status_code == 200
        assert [e["id"] for e in response.json()] == ["jy"]
        assert (
            httpx.get(f"http://127.0.0.1:{port}/api/v1/enterprises", timeout=10).status_code == 401
        )
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    text = (tmp_path / "cloud.log").read_text()
    assert proc.returncode in (0, -signal.SIGTERM), text
    assert "Application shutdown complete" in text


def test_cloud_command_reports_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text("[http]\nport = 'eighty'\n")
    assert main(["cloud", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err
    assert "http.port" in err


def test_admin_gateway_changes_tell_running_workers(tmp_path: Path, unique_id: str) -> None:
    db = tmp_path / "cloud.db"
    config = tmp_path / "cloud.toml"
    prefix = f"t:{unique_id}:"
    config.write_text(f'[state]\nredis_url = "{REDIS_URL}"\nkey_prefix = "{prefix}"\n')
    assert admin(db, "enterprise", "add", "jy", "--name", "J", "--region", "320281") == 0
    assert admin(db, "gateway", "add", "gw-1", "--enterprise", "jy", "--config", str(config)) == 0

    async def version() -> int:
        client = aioredis.from_url(REDIS_URL)
        try:
            state = RedisLiveState(client, prefix)
            found = await state.registry_version()
            await client.delete(prefix + "registry_version")
            return found
        finally:
            await client.aclose()

    assert asyncio.run(version()) == 1, "ingest workers drop their cached gateway owners"
