"""deploy/mosquitto/README.md's set-up, run as written: the broker starts and the users log in.

The README's commands run in deploy/mosquitto with only these changes: no ``sudo`` (the test is
root in CI), ``/etc/mosquitto`` is a temporary folder (holding Debian's own main file, which the
set-up keeps a copy of), the certificate names the test host, and the test starts its own
broker on the installed file instead of ``systemctl restart mosquitto``; in the installed file
only paths and ports change. Started as root, Mosquitto drops to the user ``mosquitto`` before
it reads the password files: the test checks that it did, so it proves those files readable by
the broker and by no one else.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.support.procs import Mosquitto, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
IS_ROOT = os.getuid() == 0
#: The group the broker reads its files as: Debian's ``mosquitto``, or (not root) the caller's.
GROUP = "mosquitto" if IS_ROOT else grp.getgrgid(os.getgid()).gr_name
#: Debian 12's /etc/mosquitto/mosquitto.conf (package mosquitto 2.0.11-1.2+deb12u2).
DEBIAN_MAIN_CONF = """\
# Place your local configuration in /etc/mosquitto/conf.d/
pid_file /run/mosquitto/mosquitto.pid
persistence true
persistence_location /var/lib/mosquitto/
log_dest file /var/log/mosquitto/mosquitto.log
include_dir /etc/mosquitto/conf.d
"""


class InstalledBroker(Mosquitto):
    """A test-owned broker run as the service runs it: ``mosquitto -c <main file>``."""

    def __init__(self, logdir: Path, config: Path, *, port: int) -> None:
        super().__init__(logdir, listener=False, port=port)
        self.installed = config

    def command(self) -> list[str]:
        return ["mosquitto", "-c", str(self.installed)]


def _readme_commands() -> list[str]:
    text = (DEPLOY / "README.md").read_text()
    found = re.search(r"```sh\n(.*?)```", text, flags=re.S)
    assert found, "README.md has no sh block"
    return [line for line in found.group(1).splitlines() if line.strip()]


def _adapt(command: str, etc: Path) -> str | None:
    """The README's ``command`` as the test runs it (``None``: the test does it itself)."""
    assert command.startswith("sudo "), f"README command without sudo: {command!r}"
    command = command.removeprefix("sudo ")
    if command == "systemctl restart mosquitto":
        return None
    command = command.replace("broker.example.cn 10.0.0.5", "localhost 127.0.0.1")
    command = command.replace(" -g mosquitto ", f" -g {GROUP} ")
    return command.replace("/etc/mosquitto/", f"{etc}/")


def _rewrite(text: str, pattern: str, replacement: str) -> str:
    text, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, f"mosquitto.conf changed: no single line matches {pattern!r}"
    return text


def _run_readme(etc: Path) -> dict[str, str]:
    """Run the README's set-up; return the password ``add-user.sh`` printed for each user."""
    passwords: dict[str, str] = {}
    commands = _readme_commands()
    assert "sudo systemctl restart mosquitto" in commands
    for command in commands:
        adapted = _adapt(command, etc)
        if adapted is None:
            continue
        done = subprocess.run(
            ["sh", "-c", adapted], cwd=DEPLOY, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        words = shlex.split(adapted, comments=True)
        if words[:2] == ["sh", "add-user.sh"]:
            passwords[words[3]] = done.stdout.split()[-1]
    return passwords


def _install_ports_and_paths(config: Path, etc: Path, data: Path, ports: dict[str, int]) -> None:
    text = config.read_text().replace("/etc/mosquitto/hazwatch/", f"{etc}/hazwatch/")
    text = _rewrite(
        text, r"^persistence_location /var/lib/mosquitto/$", f"persistence_location {data}/"
    )
    for shipped, name in (
        (r"^listener 1883 127\.0\.0\.1$", "cloud"),
        (r"^listener 8884$", "cloud_tls"),
        (r"^listener 8883$", "gateways"),
    ):
        text = _rewrite(text, shipped, f"listener {ports[name]} 127.0.0.1")
    config.write_text(text)


@pytest.fixture
def etc() -> Iterator[Path]:
    # Not under tmp_path: its parents are private (0700) and the broker, once it is the user
    # "mosquitto", must reach the files as it would under /etc/mosquitto.
    root = Path(tempfile.mkdtemp(prefix="hz-etc-mosquitto-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _broker_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^Uid:\s+(\d+)", status, flags=re.M)
    assert found
    return int(found.group(1))


def _assert_broker_only(path: Path) -> None:
    info = path.stat()
    assert info.st_uid == os.getuid(), path
    assert grp.getgrgid(info.st_gid).gr_name == GROUP, path
    assert stat.S_IMODE(info.st_mode) == 0o640, f"{path}: {stat.S_IMODE(info.st_mode):o}"


async def test_broker_set_up_as_the_readme_says_starts_and_logs_users_in(
    etc: Path, tmp_path: Path
) -> None:
    (etc / "mosquitto.conf").write_text(DEBIAN_MAIN_CONF)
    passwords = _run_readme(etc)
    assert set(passwords) == {"hazwatch-cloud", "gw-jy-001"}
    hazwatch = etc / "hazwatch"
    for name in ("cloud.passwd", "gateways.passwd", "acl"):
        _assert_broker_only(hazwatch / name)
    assert (etc / "mosquitto.conf.dist").read_text() == DEBIAN_MAIN_CONF

    data = etc / "data"  # /var/lib/mosquitto, which the package gives to the broker's user
    data.mkdir()
    if IS_ROOT:
        os.chown(data, pwd.getpwnam("mosquitto").pw_uid, -1)
    ports = {"cloud": free_port(), "cloud_tls": free_port(), "gateways": free_port()}
    _install_ports_and_paths(etc / "mosquitto.conf", etc, data, ports)
    broker = InstalledBroker(tmp_path / "log", etc / "mosquitto.conf", port=ports["cloud"])
    with broker.running():
        if IS_ROOT:
            assert _broker_uid(broker.pid) == pwd.getpwnam("mosquitto").pw_uid
        cloud = aiomqtt.Client(
            "127.0.0.1", ports["cloud"], username="hazwatch-cloud",
            password=passwords["hazwatch-cloud"], identifier="hazwatch-cloud:1", timeout=10,
        )  # fmt: skip
        gateway = aiomqtt.Client(
            "localhost", ports["gateways"], username="gw-jy-001", password=passwords["gw-jy-001"],
            tls_params=aiomqtt.TLSParameters(ca_certs=str(hazwatch / "certs" / "ca.crt")),
            timeout=10,
        )  # fmt: skip
        async with cloud, gateway:
            await cloud.subscribe("hz/v1/gw-jy-001/data", qos=1)
            await gateway.publish("hz/v1/gw-jy-001/data", b"set up as documented", qos=1)
            async with asyncio.timeout(10):
                message = await anext(aiter(cloud.messages))
        assert message.payload == b"set up as documented"
        wrong = aiomqtt.Client(
            "127.0.0.1", ports["cloud"], username="hazwatch-cloud", password="wrong", timeout=10
        )
        with pytest.raises(aiomqtt.MqttError):
            async with wrong:
                pass


def _add_user(passwd: Path, user: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DEPLOY / "add-user.sh"), str(passwd), user, "secret"],
        capture_output=True, text=True, timeout=30, env={**os.environ, **env},
    )  # fmt: skip


def test_add_user_keeps_the_file_for_the_broker_only(tmp_path: Path) -> None:
    passwd = tmp_path / "gateways.passwd"
    old_umask = os.umask(0)  # even a careless umask makes no readable file
    try:
        assert _add_user(passwd, "gw-1").returncode == 0
        _assert_broker_only(passwd)
        assert _add_user(passwd, "gw-2").returncode == 0  # an update rewrites the file
    finally:
        os.umask(old_umask)
    _assert_broker_only(passwd)
    assert [line.split(":")[0] for line in passwd.read_text().splitlines()] == ["gw-1", "gw-2"]


def test_add_user_refuses_an_unknown_broker_group(tmp_path: Path) -> None:
    done = _add_user(tmp_path / "cloud.passwd", "hazwatch-cloud", MOSQUITTO_GROUP="hz-no-such")
    assert done.returncode == 2
    assert "no group 'hz-no-such'" in done.stderr
    assert not (tmp_path / "cloud.passwd").exists()
