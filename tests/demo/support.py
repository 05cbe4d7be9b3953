"""Run ``hazwatch demo`` as a subprocess on free ports and read what it prints.

Shared by the demo tests and the map page tests (``from tests.demo.support import ...``).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

__all__ = ["DemoProcess", "listen_port", "poll", "running_demo"]

T = TypeVar("T")
_HAZWATCH = Path(sys.executable).with_name("hazwatch")


def listen_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999).

    A port taken from the ephemeral range and released can be handed to an outgoing
    connection (the demo's own MQTT clients) before the demo listens on it.
    """
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class DemoProcess:
    """A ``hazwatch demo`` child: its ports, the tokens it printed and its output."""

    def __init__(self, workdir: Path, *, duration_s: float) -> None:
        self.workdir = workdir
        self.http_port = listen_port()
        self.mqtt_port = listen_port()
        self.tokens: dict[str, str] = {}
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        command = [
            str(_HAZWATCH), "demo", "--workdir", str(workdir), "--duration-s", str(duration_s),
            "--http-port", str(self.http_port), "--mqtt-port", str(self.mqtt_port),
            "--modbus-port", str(listen_port()),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        threading.Thread(target=self._read, daemon=True, name="demo-output").start()

    @property
    def base_url(self) -> str:
        """The cloud API's root URL."""
        return f"http://127.0.0.1:{self.http_port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _next_line(self, deadline: float) -> str | None:
        try:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("the demo printed nothing new in time:\n" + self.output) from None
        if line is not None:
            self.lines.append(line)
        return line

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)

    def wait_ready(self, *, timeout_s: float = 30.0) -> None:
        """Read the banner until the three tokens have been printed."""
        deadline = time.monotonic() + timeout_s
        while len(self.tokens) < 3:
            line = self._next_line(deadline)
            if line is None:
                raise RuntimeError("the demo ended before it was ready:\n" + self.output)
            role, _, token = line.strip().partition(": ")
            if role in ("admin", "regulator", "dispatcher") and token.strip().startswith("hzk_"):
                self.tokens[role] = token.strip()

    def wait_exit(self, *, timeout_s: float = 30.0) -> int:
        """Wait for the process to end by itself, reading the rest of its output."""
        deadline = time.monotonic() + timeout_s
        while self._next_line(deadline) is not None:
            pass
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def stop(self) -> None:
        """Ctrl-C the demo (if still running) and wait for it; kill it if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def client(self, role: str) -> httpx.Client:
        """An API client with the printed token of ``role``."""
        return httpx.Client(
            base_url=self.base_url + "/api/v1",
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            timeout=5.0,
        )


@contextmanager
def running_demo(workdir: Path, *, duration_s: float) -> Iterator[DemoProcess]:
    """A ready demo child process, stopped at the end of the block."""
    demo = DemoProcess(workdir, duration_s=duration_s)
    try:
        demo.wait_ready()
        yield demo
    finally:
        demo.stop()


def poll(check: Callable[[], T | None], *, timeout_s: float, what: str) -> T:
    """Call ``check`` every 0.25 s until it returns something other than None/False/empty."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not seen within {timeout_s} s")
        time.sleep(0.25)
