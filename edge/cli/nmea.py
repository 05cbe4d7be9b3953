"""``hazwatch nmea decode [FILE|-]``: check a receiver's feed by decoding a recording.

Writes one JSON object per decoded GNSS fix, AIS vessel fix or AIS static record to stdout, in
the wire encoding (:func:`wire.encode_item`, ``seq`` 0), in input order. At the end, a summary
goes to stderr as one JSON object: ``{"counts": {kind: n, ...}, "errors": {reason: n, ...}}``.
Both formats are stable: scripts may parse them.

Every GNSS fix is printed (no reporting strategy). ``--now`` fixes the clock (the date of
receivers without RMC, the time of AIS messages without tag block) for reproducible output.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from hazwatch.cli import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``nmea decode``."""
    commands.group("nmea", help="NMEA 0183 / AIS tools")
    parser = commands.add(
        "nmea decode",
        help="decode NMEA/AIS sentences to JSON lines (summary on stderr)",
        handler=_decode,
    )
    parser.add_argument("file", nargs="?", default="-", help="input file, - for stdin")
    parser.add_argument("--asset", default="gnss", help="asset id of GNSS fixes (default gnss)")
    parser.add_argument(
        "--now",
        default=None,
        help="clock: ISO 8601 UTC time or epoch seconds (default: the system clock)",
    )
    parser.add_argument("--hdop-limit", type=float, default=5.0, help="flag fixes above (5)")
    parser.add_argument("--min-sats", type=int, default=4, help="flag fixes with fewer (4)")


def _now_s(text: str | None) -> float:
    import time

    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            raise ValueError(f"--now needs a time zone (append Z for UTC): {text}") from None
        return stamp.timestamp()


def _is_ais(sentence: bytes) -> bool:
    if sentence[:1] == b"\\":
        return sentence[sentence.find(b"\\", 1) + 1 : sentence.find(b"\\", 1) + 2] == b"!"
    return sentence[:1] == b"!"


def _decode(args: argparse.Namespace) -> int:
    import wire
    from edge.decode.ais import AisDecoder
    from edge.decode.framing import LineFramer
    from edge.decode.nmea import NmeaDecoder

    try:
        now_s = _now_s(args.now)
    except ValueError as exc:
        print(f"hazwatch nmea decode: {exc}", file=sys.stderr)
        return 2
    framer = LineFramer()
    gnss = NmeaDecoder(asset=args.asset, hdop_limit=args.hdop_limit, min_sats=args.min_sats)
    ais = AisDecoder()
    out = sys.stdout.buffer
    counts: dict[str, int] = {}
    now_ms = int(now_s * 1000)

    def emit(item: wire.Item) -> None:
        kind = type(item).__name__.lower()
        if isinstance(item, wire.Fix):
            kind = f"fix_{item.source}"
        counts[kind] = counts.get(kind, 0) + 1
        out.write(wire.encode_item(item) + b"\n")

    def handle(sentence: bytes) -> None:
        if _is_ais(sentence):
            for item in ais.feed(sentence, now_s=now_s):
                emit(item)
        else:
            fix = gnss.feed(sentence, now_ms=now_ms)
            if fix is not None:
                emit(fix)

    try:
        source: BinaryIO = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"hazwatch nmea decode: {exc}", file=sys.stderr)
        return 1
    try:
        with source:
            while chunk := source.read(65536):
                for sentence in framer.feed(chunk):
                    handle(sentence)
        for sentence in framer.flush():
            handle(sentence)
        ais.flush()
        last = gnss.flush(now_ms=now_ms)
        if last is not None:
            emit(last)
        out.flush()
    except BrokenPipeError:
        # The reader (head, less) has gone: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    _summary(counts, framer.sentences, (framer.errors, gnss.errors, ais.errors))
    return 0


def _summary(counts: dict[str, int], sentences: int, tables: tuple[dict[str, int], ...]) -> None:
    import orjson

    errors: dict[str, int] = {}
    for table in tables:
        for reason, count in table.items():
            errors[reason] = errors.get(reason, 0) + count
    summary = {"counts": {"sentences": sentences, **counts}, "errors": errors}
    sys.stderr.write(orjson.dumps(summary, option=orjson.OPT_SORT_KEYS).decode() + "\n")
