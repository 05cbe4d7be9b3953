"""Agent configuration: typed settings, and every error names file, key and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import build_sources, load_config
from edge.errors import ConfigError
from tests.edge.agent.ticker import Ticker

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private CA, a server certificate and a client certificate (deploy's script)."""
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(
        ["sh", str(REPO / "deploy" / "mosquitto" / "make-certs.sh"), str(out)],
        check=True, capture_output=True, timeout=60, env={"CLIENT": "gw-1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return out


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, '[gateway]\nid = "gw-1"\n'))
    assert settings.gateway_id == "gw-1"
    assert settings.buffer.path == tmp_path / "buffer.db"
    assert settings.buffer.max_age_s == 30 * 86400
    assert settings.buffer.durability == "normal"
    assert settings.buffer.memory_items == 100_000
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls) == ("127.0.0.1", 1883, False)
    assert settings.health_interval_s == 60
    assert settings.state_dir == tmp_path


def test_full_config(tmp_path: Path, certs: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "ca.pem").write_bytes((certs / "ca.crt").read_bytes())
    text = f"""
[gateway]
id = "farm.7"
state_dir = "{tmp_path}/state"
[mqtt]
host = "broker"
port = 8883
username = "farm7"
password_file = "pw"
keepalive_s = 20
window = 4
[mqtt.tls]
ca = "ca.pem"
[buffer]
path = "data/b.db"
quota_mb = 2.5
max_age_days = 31
durability = "full"
memory_items = 5000
[health]
interval_s = 30
[plugins.tick]
module = "tests.edge.agent.ticker"
per_tick = 3
"""
    settings = load_config(write(tmp_path, text))
    assert settings.mqtt.password == "s3cret"
    assert settings.mqtt.username == "farm7"
    assert settings.mqtt.tls
    assert settings.mqtt.tls_ca == tmp_path / "ca.pem"
    assert settings.buffer.path == tmp_path / "data" / "b.db"
    assert settings.buffer.quota_bytes == int(2.5 * 1024 * 1024)
    assert settings.buffer.durability == "full"
    assert settings.buffer.memory_items == 5000
    assert settings.state_dir == tmp_path / "state"
    (source,) = build_sources(settings)
    assert isinstance(source, Ticker)
    assert source.per_tick == 3


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[mqtt]\nhost='x'\n", "gateway", "required"),
        ("[gateway]\n", "gateway.id", "required"),
        ("[gateway]\nid='a/b'\n", "gateway.id", "letters"),
        ("[gateway]\nid='a'\nfoo=1\n", "gateway.foo", "unknown key"),
        ("[gateway]\nid='a'\n[mqtt]\nport='x'\n", "mqtt.port", "integer"),
        ("[gateway]\nid='a'\n[mqtt]\nport=70000\n", "mqtt.port", "1-65535"),
        ("[gateway]\nid='a'\n[mqtt]\nwindow=0\n", "mqtt.window", "greater than 0"),
        ("[gateway]\nid='a'\n[mqtt]\nprotocol='3'\n", "mqtt.protocol", "'5' or '3.1.1'"),
        (
            "[gateway]\nid='a'\n[mqtt]\npassword='p'\npassword_file='f'\n",
            "mqtt.password_file",
            "either",
        ),
        ("[gateway]\nid='a'\n[mqtt]\npassword_file='nope'\n", "mqtt.password_file", "cannot read"),
        ("[gateway]\nid='a'\n[mqtt]\npassword='p'\n", "mqtt.username", "needs a username"),
        ("[gateway]\nid='a'\n[mqtt.tls]\nca='nope.pem'\n", "mqtt.tls.ca", "no such file"),
        (
            "[gateway]\nid='a'\n[buffer]\ndurability='sometimes'\n",
            "buffer.durability",
            "'normal' or 'full'",
        ),
        ("[gateway]\nid='a'\n[buffer]\nquota_mb=-1\n", "buffer.quota_mb", "greater than 0"),
        ("[gateway]\nid='a'\n[buffer]\nmemory_items=0\n", "buffer.memory_items", "greater than 0"),
        ("[gateway]\nid='a'\n[health]\ninterval_s=true\n", "health.interval_s", "number"),
        ("[gateway]\nid='a'\n[bogus]\n", "bogus", "unknown section"),
        ("[gateway]\nid='a'\n[plugins.x]\nper_tick=1\n", "plugins.x.module", "required"),
    ],
)
def test_errors_name_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.file == str(path)
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[gateway\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_missing_source_module_is_a_config_error(tmp_path: Path) -> None:
    settings = load_config(
        write(tmp_path, "[gateway]\nid='a'\n[plugins.x]\nmodule='no.such.mod'\n")
    )
    with pytest.raises(ConfigError) as caught:
        build_sources(settings)
    assert caught.value.key == "plugins.x"
    assert "cannot import" in caught.value.reason


def test_cli_prints_file_key_reason_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "[gateway]\nid='a'\n[buffer]\ndurability='sometimes'\n")
    done = subprocess.run(
        [sys.executable, "-m", "hazwatch.cli", "edge", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert str(path) in done.stderr
    assert "buffer.durability" in done.stderr
    assert "must be 'normal' or 'full'" in done.stderr


def test_shipped_sample_config_is_valid(tmp_path: Path, certs: Path) -> None:
    text = (REPO / "deploy" / "edge" / "edge.sample.toml").read_text()
    (tmp_path / "mqtt.password").write_text("x")
    for name, made in (("ca.pem", "ca.crt"), ("client.pem", "client.crt"), ("client.key", "")):
        (tmp_path / name).write_bytes((certs / (made or name)).read_bytes())
    text = text.replace("/etc/hazwatch/", f"{tmp_path}/").replace(
        "/var/lib/hazwatch", str(tmp_path)
    )
    settings = load_config(write(tmp_path, text))
    assert settings.mqtt.tls
    assert settings.mqtt.password == "x"
    assert settings.buffer.durability == "normal"
    sources = build_sources(settings)
    assert [s.name for s in sources] == ["modbus"]


def test_cli_check_accepts_a_good_config(tmp_path: Path) -> None:
    path = write(tmp_path, "[gateway]\nid='gw-ok'\n[plugins.t]\nmodule='tests.edge.agent.ticker'\n")
    done = subprocess.run(
        [sys.executable, "-m", "hazwatch.cli", "edge", "--config", str(path), "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "gateway gw-ok, 1 sources" in done.stdout


@pytest.mark.parametrize(
    ("tls", "key", "reason"),
    [
        ("ca = 'junk.pem'", "mqtt.tls.ca", "cannot load"),
        ("cert = '{certs}/client.crt'\nkey = '{certs}/server.key'", "mqtt.tls.cert", "cannot load"),
        ("cert = 'junk.pem'\nkey = '{certs}/client.key'", "mqtt.tls.cert", "cannot load"),
    ],
)
def test_tls_files_that_cannot_be_used_stop_the_agent_at_start(
    tmp_path: Path, certs: Path, tls: str, key: str, reason: str
) -> None:
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnot one\n")
    text = f"[gateway]\nid='a'\n[mqtt.tls]\n{tls.format(certs=certs)}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_good_tls_files_are_accepted(tmp_path: Path, certs: Path) -> None:
    text = (
        f"[gateway]\nid='a'\n[mqtt.tls]\nca = '{certs}/ca.crt'\n"
        f"cert = '{certs}/client.crt'\nkey = '{certs}/client.key'\n"
    )
    settings = load_config(write(tmp_path, text))
    assert settings.mqtt.tls_key == certs / "client.key"
