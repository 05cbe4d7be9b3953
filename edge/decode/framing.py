"""Pure line framer for NMEA 0183 / AIS byte streams: bytes in, complete sentences out.

Serial ports, TCP sockets and UDP datagrams hand over arbitrary slices of a stream. The framer
keeps the unfinished tail between calls ("need more" is not an error), splits on CR, LF or any
mix of them, and recovers a sentence from a line that starts with noise (``\\x00\\x00$GPGGA,...``)
or with the cut-off remains of a previous sentence (``$GPGGA,1234$GPRMC,...``). Each line it cannot
use is counted once by reason in :attr:`LineFramer.errors`:

``garbage``
    bytes before the start of a sentence that are not just NULs or blanks;
``truncated``
    the remains of a sentence cut off by the next one;
``binary_noise``
    a sentence with a control or non-ASCII byte inside;
``trailing_garbage``
    bytes after the ``*hh`` checksum (the sentence itself is kept);
``too_long``
    a line longer than ``max_line_bytes`` (its bytes are discarded up to the next line end).

A sentence is emitted with its optional NMEA 4 tag block (``\\s:rx1,c:1700000000*hh\\!AIVDM,...``)
and without line terminator. Checksums are verified by the decoders, not here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_MAX_LINE_BYTES", "LineFramer"]

#: NMEA 0183 allows 82 characters; AIS sentences with tag blocks reach ~200. Anything far
#: beyond is noise or a stuck stream.
DEFAULT_MAX_LINE_BYTES: Final = 1024

#: Printable ASCII; ``bytes.translate(None, _PRINTABLE)`` leaves only the bad bytes.
_PRINTABLE: Final = bytes(range(0x20, 0x7F))
_IGNORABLE: Final = b"\x00 \t"
_TAG: Final = 0x5C  # backslash, start and end of an NMEA 4 tag block


class LineFramer:
    """Split a byte stream into candidate NMEA/AIS sentences.

    Args:
        max_line_bytes: longest line accepted; longer ones are dropped and counted.
    """

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 16:
            raise ValueError("max_line_bytes must be at least 16")
        self.max_line_bytes = max_line_bytes
        self._tail = b""
        self._discarding = False
        #: reason -> number of lines (or line parts) that could not be used.
        self.errors: dict[str, int] = {}
        #: number of sentences emitted.
        self.sentences = 0

    def _count(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream and return the sentences completed by them."""
        if not data:
            return []
        lines = (self._tail + data).replace(b"\r", b"\n").split(b"\n")
        tail = lines.pop()
        out: list[bytes] = []
        for line in lines:
            if self._discarding:
                # The rest of an over-long line, already counted: only a sentence that
                # starts near its end is worth keeping.
                self._discarding = False
                line = self._salvage(line)
            if line:
                self._line(line, out)
        if len(tail) > self.max_line_bytes:
            if not self._discarding:
                self._count("too_long")
            tail = self._salvage(tail)
            self._discarding = not tail
        self._tail = tail
        return out

    def flush(self) -> list[bytes]:
        """End of stream: return the last sentence if it lacked only its line terminator."""
        tail, self._tail = self._tail, b""
        discarding, self._discarding = self._discarding, False
        out: list[bytes] = []
        if tail and not discarding:
            self._line(tail, out)
        return out

    def _salvage(self, line: bytes) -> bytes:
        """The sentence (with its tag block) that starts within the last ``max_line_bytes`` of
        an over-long line, so noise without line ends does not take the next sentence with it;
        empty when there is none."""
        limit = max(0, len(line) - self.max_line_bytes)
        start = max(line.rfind(b"$", limit), line.rfind(b"!", limit))
        if start < 0:
            return b""
        if start > limit and line[start - 1] == _TAG:
            tag_start = line.rfind(b"\\", limit, start - 1)
            if tag_start >= 0:
                start = tag_start
        return line[start:]

    def _line(self, line: bytes, out: list[bytes]) -> None:
        if len(line) > self.max_line_bytes:
            self._count("too_long")
            line = self._salvage(line)
            if not line:
                return
        delim = max(line.rfind(b"$"), line.rfind(b"!"))
        if delim < 0:
            if line.strip(_IGNORABLE):
                self._count("garbage")
            return
        start = self._prefix(line, delim) if delim else 0
        sentence = line[start:] if start else line
        star = sentence.rfind(b"*")
        if delim - start < star < len(sentence) - 3:
            if sentence[star + 3 :].strip(_IGNORABLE):
                self._count("trailing_garbage")
            sentence = sentence[: star + 3]
        if sentence.translate(None, _PRINTABLE):
            self._count("binary_noise")
            return
        self.sentences += 1
        out.append(sentence)

    def _prefix(self, line: bytes, start: int) -> int:
        """Where the sentence starting at ``start`` really starts; count what comes before."""
        if line[start - 1] == _TAG:
            tag_start = line.rfind(b"\\", 0, start - 1)
            if tag_start >= 0:
                start = tag_start
        if start:
            prefix = line[:start].strip(_IGNORABLE)
            if prefix:
                truncated = b"$" in prefix or b"!" in prefix
                self._count("truncated" if truncated else "garbage")
        return start
