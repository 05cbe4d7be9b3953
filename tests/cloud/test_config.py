"""Cloud TOML settings: defaults, full file, and errors naming file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import CloudSettings, ConfigError, load_settings

FULL = """
[database]
url = "sqlite+aiosqlite:///data/cloud.db"
spill_path = "data/spill.jsonl"

[state]
redis_url = "redis://127.0.0.1:6379/0"
key_prefix = "site1:"

[mqtt]
host = "broker.local"
port = 8883
username = "hazwatch-cloud"
password = "secret"
share_group = "cloud"

[mqtt.tls]
ca_file = "/etc/hazwatch/ca.crt"

[http]
host = "0.0.0.0"
port = 9000

[retention]
positions_days = 200
readings_days = 45
"""


def test_defaults() -> None:
    settings = CloudSettings()
    assert settings.database.url.startswith("sqlite+aiosqlite:///")
    assert settings.state.redis_url is None
    assert settings.mqtt.share_group is None
    assert settings.retention.positions_days == 183
    assert settings.retention.alerts_days == 1096
    assert settings.database.spill_path is None


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(FULL)
    settings = load_settings(path)
    assert settings.database.url == f"sqlite+aiosqlite:///{tmp_path}/data/cloud.db"
    assert settings.database.spill_path == f"{tmp_path}/data/spill.jsonl"
    assert settings.state.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.mqtt.port == 8883
    assert settings.mqtt.tls is not None
    assert settings.mqtt.tls.ca_file == "/etc/hazwatch/ca.crt"
    assert settings.mqtt.share_group == "cloud"
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 9000)
    assert settings.retention.positions_days == 200
    assert settings.retention.readings_days == 45


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[mqtt]\nport = 'x'\n", "mqtt.port", "expected int"),
        ("[mqtt]\nport = 70000\n", "mqtt.port", "must lie in 1..65535"),
        ("[mqtt]\nprot = 1\n", "mqtt.prot", "unknown key"),
        ("[mqtt.tls]\ncert_file = 'a'\n", "mqtt.tls", "go together"),
        ("[mqtt.tls]\ncafile = 'a'\n", "mqtt.tls.cafile", "unknown key"),
        ("[web]\nport = 1\n", "web", "unknown section"),
        ("[database]\nurl = 'mysql://x'\n", "database.url", "postgresql+asyncpg"),
        ("[state]\nredis_url = 'http://x'\n", "state.redis_url", "redis://"),
        ("[retention]\nreadings_days = 0\n", "retention.readings_days", "must lie in"),
        ("[mqtt]\nenabled = 1\n", "mqtt.enabled", "expected bool"),
        # $share/cloud/eu/hz/v1/# would share "eu/hz/v1/#": the cloud would read nothing.
        ("[mqtt]\nshare_group = 'cloud/eu'\n", "mqtt.share_group", "'/', '+' or '#'"),
        # A gateway whose user name is the worker's id could knock the worker off the broker.
        ("[mqtt]\nclient_id = 'hazwatch-cloud-1'\n", "mqtt.client_id", "could be a gateway"),
        ("[mqtt]\nshare_group = '+'\n", "mqtt.share_group", "'/', '+' or '#'"),
        ("[mqtt]\nshare_group = 'a#'\n", "mqtt.share_group", "'/', '+' or '#'"),
        ("database = 3\n", "database", "expected a table"),
        ("[mqtt\n", None, "not valid TOML"),
    ],
)
def test_errors_name_file_key_reason(
    tmp_path: Path, text: str, key: str | None, reason: str
) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")
