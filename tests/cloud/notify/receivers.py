"""Real local receivers for the notification tests: an HTTP server and an SMTP server, each in a
thread on a free port, recording what they get and answering as told."""

from __future__ import annotations

import contextlib
import http.server
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any


@dataclass
class Received:
    """One HTTP request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """An HTTP server answering POSTs with ``status(request_number)`` after ``delay_s``."""

    status: Callable[[int], int] = lambda _n: 200
    delay_s: float = 0.0
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    number = len(receiver.received)
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                code = receiver.status(number)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def start(self) -> None:
        """Listen (on the same port again after :meth:`stop`)."""
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening (connections are then refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextlib.contextmanager
    def running(self) -> Iterator[HttpReceiver]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


@dataclass
class SmtpReceiver:
    """A minimal SMTP server: answers ``RCPT TO`` with ``rcpt_code(address)``, keeps mails."""

    rcpt_code: Callable[[str], int] = lambda _a: 250
    mails: list[EmailMessage] = field(default_factory=list)
    port: int = 0
    _server: socketserver.ThreadingTCPServer | None = None

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode("ascii") + b"\r\n")

            def handle(self) -> None:
                self.reply("220 test ESMTP")
                while raw := self.rfile.readline():
                    verb = raw.decode("utf-8", "replace").strip()
                    upper = verb.upper()
                    if upper.startswith(("EHLO", "HELO")):
                        self.reply("250-test\r\n250 8BITMIME")
                    elif upper.startswith("RCPT TO:"):
                        address = verb[8:].strip().strip("<>")
                        code = receiver.rcpt_code(address)
                        self.reply(f"{code} {'ok' if code < 300 else 'refused'}")
                    elif upper == "DATA":
                        self.reply("354 go on")
                        self.data()
                    elif upper == "QUIT":
                        self.reply("221 bye")
                        return
                    else:  # MAIL FROM, RSET, NOOP
                        self.reply("250 ok")

            def data(self) -> None:
                lines: list[bytes] = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                mail = message_from_bytes(b"".join(lines), policy=policy.default)
                assert isinstance(mail, EmailMessage)
                receiver.mails.append(mail)
                self.reply("250 queued")

        return Handler

    @contextlib.contextmanager
    def running(self) -> Iterator[SmtpReceiver]:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
