"""Start and stop test-owned ``mosquitto`` and ``redis-server`` processes on free ports.

Tests that need their own broker configuration (ACL, TLS, a broker to kill) use these; the
shared services on the standard ports are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Mosquitto", "RedisServer", "free_port", "wait_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, *, timeout_s: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listening on {host}:{port} after {timeout_s} s"
                ) from None
            time.sleep(0.02)


class _Process:
    """A server process owned by one test, stopped by pid."""

    binary = ""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} is not installed: run `make services`")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> None:
        """Start (or restart after :meth:`stop`/:meth:`kill`) on the same port."""
        log = (self.workdir / f"{self.binary}.log").open("ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        try:
            wait_port(self.port)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"{self.binary} did not start: {self.log_text()[-2000:]}") from None

    def log_text(self) -> str:
        path = self.workdir / f"{self.binary}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Kill without warning (SIGKILL), as a crash or power cut would."""
        self._signal(signal.SIGKILL)

    @contextlib.contextmanager
    def running(self) -> Iterator[_Process]:
        self.start()
        try:
            yield self
        finally:
            self.kill()


class Mosquitto(_Process):
    """A test-owned Mosquitto broker.

    Args:
        workdir: folder for its config and log.
        extra_config: lines appended to the generated config (ACLs, passwords, TLS listeners).
        listener: when False the caller's ``extra_config`` declares every listener itself.
    """

    binary = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        extra_config: str = "",
        listener: bool = True,
        port: int | None = None,
    ) -> None:
        super().__init__(workdir, port=port)
        base = f"listener {self.port} 127.0.0.1\n" if listener else ""
        if "allow_anonymous" not in extra_config:
            base += "allow_anonymous true\n"
        self.config_path = self.workdir / "mosquitto.conf"
        self.config_path.write_text(base + "persistence false\n" + extra_config)

    def command(self) -> list[str]:
        return ["mosquitto", "-c", str(self.config_path)]


class RedisServer(_Process):
    """A test-owned redis-server that keeps nothing on disk."""

    binary = "redis-server"

    def command(self) -> list[str]:
        return [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir),
        ]  # fmt: skip
