"""Measure the Mosquitto behaviours README.md relies on, against the installed mosquitto.

Usage: python deploy/mosquitto/broker-facts.py [MOSQUITTO_BINARY]   (needs paho-mqtt 2)

Starts throw-away brokers (anonymous, loopback, a temporary folder) and prints:
  1. how many unacknowledged QoS 1 messages a subscriber gets: MQTT 3.1.1, and MQTT 5 with and
     without a Receive Maximum, under max_inflight_messages 100;
  2. what a full queue does (max_queued_messages 5) and what the publisher's PUBACK says;
  3. whether a shared subscription gives an offline member (persistent session) its share;
  4. which persistent sessions, subscriptions and queued messages survive a SIGKILL after an
     autosave: MQTT 5 with clean start 1 or 0, plain or $share, and MQTT 3.1.1.
Re-run it after a Mosquitto upgrade: 2.0.11 gave the results quoted in README.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

BINARY = sys.argv[1] if len(sys.argv) > 1 else "mosquitto"
SETTLE_S = 0.5


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Broker:
    """A throw-away mosquitto: ``config`` plus an anonymous loopback listener; ``{folder}`` in
    ``config`` becomes its temporary folder."""

    def __init__(self, config: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hz-facts-"))
        self.folder.chmod(0o777)  # mosquitto started as root drops to user "mosquitto"
        self.port = free_port()
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            + config.format(folder=self.folder)
        )
        self.conf.chmod(0o644)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([BINARY, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{BINARY} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextmanager
def running(config: str) -> Iterator[Broker]:
    broker = Broker(config)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
        shutil.rmtree(broker.folder, ignore_errors=True)


@dataclass
class Peer:
    """A connected paho client, what it received and its PUBACK reason codes."""

    paho: mqtt.Client
    got: list[str] = field(default_factory=list)
    pubacks: list[str] = field(default_factory=list)


def client(
    port: int, client_id: str, *, v5: bool = True, clean: bool = True, manual_ack: bool = False,
    props: dict[str, int] | None = None,
) -> Peer:  # fmt: skip
    """Connect; ``manual_ack`` leaves deliveries unacknowledged; ``props``: v5 CONNECT props."""
    protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    paho = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
        clean_session=None if v5 else clean, manual_ack=manual_ack,
    )  # fmt: skip
    peer = Peer(paho)
    paho.on_message = lambda _c, _u, m: peer.got.append(m.payload.decode())
    paho.on_publish = lambda _c, _u, _mid, rc, _p: peer.pubacks.append(str(rc))
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        for name, value in (props or {}).items():
            setattr(properties, name, value)
        paho.connect("127.0.0.1", port, clean_start=clean, properties=properties)
    else:
        paho.connect("127.0.0.1", port)
    paho.loop_start()
    time.sleep(0.2)
    return peer


def session(port: int, client_id: str, *, v5: bool = True, clean: bool = False) -> Peer:
    """A persistent session: v5 with a one-hour expiry, or v3.1.1 with clean session 0."""
    if v5:
        return client(port, client_id, clean=clean, props={"SessionExpiryInterval": 3600})
    return client(port, client_id, v5=False, clean=False)


def stop(peer: Peer) -> None:
    peer.paho.disconnect()
    time.sleep(0.1)
    peer.paho.loop_stop()


def subscribed(peer: Peer, topic: str) -> Peer:
    peer.paho.subscribe(topic, qos=1)
    time.sleep(0.2)
    return peer


def publish(port: int, topic: str, payloads: list[str]) -> list[str]:
    """Publish with QoS 1; return the PUBACK reason codes."""
    pub = client(port, "facts-pub")
    for payload in payloads:
        pub.paho.publish(topic, payload, qos=1)
    time.sleep(SETTLE_S)
    stop(pub)
    return list(pub.pubacks)


def inflight() -> None:
    say("1. unacknowledged deliveries to a subscriber, max_inflight_messages 100:")
    cases: list[tuple[str, bool, int | None]] = [
        ("MQTT 3.1.1", False, None), ("MQTT 5, no Receive Maximum", True, None),
        ("MQTT 5, Receive Maximum 10", True, 10), ("MQTT 5, Receive Maximum 1000", True, 1000),
    ]  # fmt: skip
    with running("max_inflight_messages 100\nmax_queued_messages 100000\n") as broker:
        for index, (name, v5, receive_max) in enumerate(cases):
            props = {"ReceiveMaximum": receive_max} if receive_max else {}
            sub = client(broker.port, f"facts-sub-{index}", v5=v5, manual_ack=True, props=props)
            subscribed(sub, f"facts/{index}")
            publish(broker.port, f"facts/{index}", [str(i) for i in range(3000)])
            time.sleep(1.0)
            say(f"   {name:30} {len(sub.got):5} of 3000 in flight")
            stop(sub)


def queue_full() -> None:
    say("2. max_queued_messages 5, offline persistent subscriber, 8 messages published:")
    with running("max_queued_messages 5\n") as broker:
        stop(subscribed(session(broker.port, "facts-sub", clean=True), "facts/q"))
        pubacks = publish(broker.port, "facts/q", [str(i) for i in range(8)])
        sub = session(broker.port, "facts-sub")
        time.sleep(SETTLE_S)
        say(f"   delivered on return: {sub.got}; publisher's PUBACKs: {sorted(set(pubacks))}")
        stop(sub)


def shared_offline() -> None:
    say("3. $share group of two persistent sessions, one offline, 10 messages published:")
    with running("max_queued_messages 1000\n") as broker:
        online = subscribed(session(broker.port, "facts-w1"), "$share/g/facts/s")
        stop(subscribed(session(broker.port, "facts-w2"), "$share/g/facts/s"))
        publish(broker.port, "facts/s", [str(i) for i in range(10)])
        back = session(broker.port, "facts-w2")
        time.sleep(SETTLE_S)
        say(f"   online member got {online.got}; offline member got on return {back.got}")
        stop(online)
        stop(back)


def restart() -> None:
    say("4. sessions across a SIGKILL after an autosave (3 queued before, 3 published after):")
    cases: list[tuple[str, bool, bool, str]] = [
        ("MQTT 5, clean start 1 + expiry", True, True, "facts/r"),
        ("MQTT 5, clean start 0 + expiry", True, False, "facts/r"),
        ("MQTT 5, clean start 0 + expiry, $share", True, False, "$share/g5/facts/r"),
        ("MQTT 3.1.1, clean session 0", False, False, "facts/r"),
        ("MQTT 3.1.1, clean session 0, $share", False, False, "$share/g3/facts/r"),
    ]
    config = "persistence true\npersistence_location {folder}/\nautosave_interval 1\n"
    with running(config + "max_queued_messages 1000\n") as broker:
        for index, (_, v5, clean, topic) in enumerate(cases):
            stop(subscribed(session(broker.port, f"facts-r{index}", v5=v5, clean=clean), topic))
        publish(broker.port, "facts/r", ["before-0", "before-1", "before-2"])
        time.sleep(2.5)  # more than autosave_interval: all of it is on disk
        broker.kill()
        broker.start()
        publish(broker.port, "facts/r", ["after-0", "after-1", "after-2"])
        for index, (name, v5, _, _) in enumerate(cases):
            sub = session(broker.port, f"facts-r{index}", v5=v5)
            time.sleep(SETTLE_S)
            say(f"   {name:40} got {sub.got}")
            stop(sub)


if __name__ == "__main__":
    say(subprocess.run([BINARY, "-h"], capture_output=True, text=True).stdout.splitlines()[0])
    inflight()
    queue_full()
    shared_offline()
    restart()
