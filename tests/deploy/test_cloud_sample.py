"""The shipped cloud sample configuration loads as documented."""

from __future__ import annotations

from pathlib import Path

from cloud.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_cloud_sample_config_is_valid() -> None:
    settings = load_settings(REPO / "deploy" / "cloud" / "cloud.sample.toml")
    assert settings.database.url.startswith("postgresql+asyncpg://")
    assert settings.state.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.mqtt.share_group == "replace-with-a-random-secret"
    assert settings.mqtt.tls is not None
    assert settings.mqtt.tls.ca_file == "/etc/hazwatch/ca.crt"
    assert settings.retention.positions_days >= 183
    assert settings.retention.alerts_days >= 3 * 365
