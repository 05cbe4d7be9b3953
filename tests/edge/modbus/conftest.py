"""Fixtures of the Modbus tests: quiet pymodbus, a pseudo-terminal RS-485 line, helpers."""

from __future__ import annotations

import logging
import os
import select
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.profiles import Profile, find_profile, load_profile
from tests.support.procs import free_port

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> Iterator[None]:
    """pymodbus logs every timeout at ERROR with frame dumps; the tests provoke many."""
    logger = logging.getLogger("pymodbus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def profile(name: str) -> Profile:
    """A shipped profile, or one of the test profiles in tests/edge/modbus/profiles."""
    local = HERE / "profiles" / f"{name}.toml"
    return load_profile(local if local.exists() else find_profile(name))


@pytest.fixture
def port() -> int:
    """A free TCP port for a simulator."""
    return free_port()


@dataclass
class SerialLine:
    """Two serial device paths joined like the two ends of an RS-485 line."""

    device_end: str
    master_end: str


def _relay(a: int, b: int, stop: threading.Event) -> None:
    while not stop.is_set():
        ready, _, _ = select.select([a, b], [], [], 0.05)
        for fd in ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                continue
            os.write(b if fd == a else a, data)


@pytest.fixture
def serial_line() -> Iterator[SerialLine]:
    """Two pseudo-terminals whose master sides a thread cross-connects (no socat needed)."""
    m1, s1 = os.openpty()
    m2, s2 = os.openpty()
    for fd in (s1, s2):
        tty.setraw(fd)
    stop = threading.Event()
    thread = threading.Thread(target=_relay, args=(m1, m2, stop), daemon=True)
    thread.start()
    try:
        yield SerialLine(device_end=os.ttyname(s1), master_end=os.ttyname(s2))
    finally:
        stop.set()
        thread.join(timeout=2)
        for fd in (m1, s1, m2, s2):
            os.close(fd)
