"""No API key (nor stream ticket) in any log line of a running cloud service.

The map page used to open its live stream with ``?token=hzk_...``, and uvicorn's access log kept
the whole URL: an admin's and a regulator's key were in the service log in plain text. The
service here is ``hazwatch cloud`` as its own process, logging at INFO (access log on) to a file;
every way a client reaches the API and the live streams is used, including the old mistake of a
key in a query, and every line of the log is searched.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from cloud.archive import Store
from cloud.auth import make_key
from tests.support.procs import free_port, wait_port

NOW_MS = 1_790_000_000_000


async def _keys(db: Path) -> dict[str, str]:
    store = await Store.connect(f"sqlite+aiosqlite:///{db}")
    tokens = {}
    try:
        for role, region in (("admin", None), ("regulator", "320200")):
            token, key = make_key(name=role, role=role, region=region, now_ms=NOW_MS)
            await store.put_api_key(key)
            tokens[role] = token
    finally:
        await store.close()
    return tokens


async def _use_everything(base: str, token: str) -> list[str]:
    """Every way in: headers, tickets for both streams, and a key put in a query by mistake."""
    auth = {"Authorization": f"Bearer {token}"}
    tickets = []
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert (await http.get("/api/v1/assets", headers=auth)).status_code == 200
        assert (await http.get(f"/api/v1/assets?token={token}")).status_code == 401
        assert (await http.get("/api/v1/live/sse", params={"token": token})).status_code == 401
        for kind in ("sse", "ws"):
            made = await http.post("/api/v1/live/tickets", headers=auth)
            tickets.append(made.json()["ticket"])
            if kind == "sse":
                url = f"/api/v1/live/sse?ticket={tickets[-1]}"
                async with http.stream("GET", url) as stream:
                    assert stream.status_code == 200
                    async for line in stream.aiter_lines():
                        if line.startswith("data: "):
                            assert json.loads(line[6:])["kind"] == "ready"
                            break
            else:
                ws_url = base.replace("http", "ws") + f"/api/v1/live/ws?ticket={tickets[-1]}"
                async with websockets.connect(ws_url) as ws:
                    assert json.loads(await ws.recv())["kind"] == "ready"
    return tickets


@pytest.mark.slow
async def test_no_key_or_ticket_reaches_the_service_log(tmp_path: Path) -> None:
    db = tmp_path / "cloud.db"
    tokens = await _keys(db)
    port = free_port()
    config = tmp_path / "cloud.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n[mqtt]\nenabled = false\n')
    log = tmp_path / "cloud.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220  # started once, awaited with to_thread
            [sys.executable, "-m", "hazwatch.cli", "--log-level", "INFO", "cloud", "--config",
             str(config), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        await asyncio.to_thread(wait_port, port, timeout_s=30)
        tickets = []
        for token in tokens.values():
            tickets += await _use_everything(f"http://127.0.0.1:{port}", token)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lines = log.read_text().splitlines()
    assert any("/api/v1/live/tickets" in line for line in lines), "the access log is on"
    assert any("/api/v1/assets?" in line for line in lines), "queries are marked, not kept"
    for secret in [*tokens.values(), *tickets]:
        leaking = [line for line in lines if secret in line or secret[4:20] in line]
        assert leaking == [], leaking
