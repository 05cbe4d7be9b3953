"""The cloud app's ingest through the shipped broker config: TLS, password, shared subscription.

The cloud connects on its own TLS listener with a worker id containing ':' (which no gateway id
may contain), the gateway on the gateways' listener. A gateway's own fix reaches the API; a fix
it forges under another gateway's id is refused by the broker and never reaches the archive.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import httpx

import wire
from cloud.auth import make_key
from cloud.config import CloudSettings, DatabaseSettings, MqttSettings, TlsSettings
from cloud.main import create_app
from cloud.models import Asset, Enterprise, Gateway
from tests.security.conftest import CLOUD_USER, Broker

NOW_MS = 1_780_000_000_000


async def test_ingest_over_tls_with_acl(broker: Broker, tmp_path: Path, unique_id: str) -> None:
    gw_a, gw_b = f"{unique_id}a", f"{unique_id}b"
    ca_file = str(broker.certs / "ca.crt")
    settings = CloudSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"),
        mqtt=MqttSettings(
            host="localhost", port=broker.cloud_tls_port, username=CLOUD_USER,
            password=broker.passwords[CLOUD_USER], client_id=f"hazwatch-cloud:{unique_id}",
            share_group="cloud", tls=TlsSettings(ca_file=ca_file),
        ),
    )  # fmt: skip
    app = create_app(settings, run_retention=False)
    async with app.router.lifespan_context(app):
        store = app.state.services.store
        await store.put_enterprise(Enterprise(id="ent-a", name="A", region="320281"))
        await store.put_enterprise(Enterprise(id="ent-b", name="B", region="320281"))
        await store.put_gateway(Gateway(id=gw_a, enterprise_id="ent-a"))
        await store.put_gateway(Gateway(id=gw_b, enterprise_id="ent-b"))
        await store.put_asset(
            Asset(id="truck-a", enterprise_id="ent-a", asset_class="hazmat_truck")
        )
        await store.put_asset(
            Asset(id="truck-b", enterprise_id="ent-b", asset_class="hazmat_truck")
        )
        token, key = make_key(name="ops", role="admin", now_ms=NOW_MS)
        await store.put_api_key(key)

        own = wire.Fix(seq=1, ts=NOW_MS, asset="truck-a", lat=31.9, lon=120.3)
        forged = wire.Fix(seq=1, ts=NOW_MS, asset="truck-b", lat=0.0, lon=0.0)
        tls = aiomqtt.TLSParameters(ca_certs=ca_file)
        transport = httpx.ASGITransport(app=app)
        auth = {"Authorization": f"Bearer {token}"}
        async with (
            aiomqtt.Client(
                "localhost", broker.tls_port, username=gw_a, password=broker.passwords[gw_a],
                tls_params=tls, timeout=10,
            ) as gateway,
            httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth) as http,
            asyncio.timeout(15),
        ):  # fmt: skip
            # The ingest may still be subscribing: resend (de-duplicated on seq) until seen.
            while True:
                forged_batch = wire.assemble_batch(gw_b, [wire.encode_item(forged)], sent_ms=NOW_MS)
                await gateway.publish(wire.data_topic(gw_b), forged_batch, qos=1)
                own_batch = wire.assemble_batch(gw_a, [wire.encode_item(own)], sent_ms=NOW_MS)
                await gateway.publish(wire.data_topic(gw_a), own_batch, qos=1)
                latest = (await http.get("/api/v1/assets/truck-a")).json()["latest"]
                if latest is not None:
                    break
                await asyncio.sleep(0.05)
            assert (latest["lat"], latest["lon"]) == (31.9, 120.3)
            assert (await http.get("/api/v1/assets/truck-b")).json()["latest"] is None
            counts = (await http.get("/api/v1/ingest/counters")).json()["ingest"]
        assert counts.get("accepted.fix") == 1
        assert await store.track("truck-b", 0, NOW_MS + 1) == []
