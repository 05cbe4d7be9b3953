"""``hazwatch nmea decode [FILE|-]``: check a receiver's feed by decoding a recording.

Writes one JSON object per decoded GNSS fix, AIS vessel fix or AIS static record to stdout, in
the wire encoding (:func:`wire.encode_item`, ``seq`` 0), in input order. At the end, a summary
goes to stderr as one JSON object::

    {"counts": {kind: n, ...}, "errors": {reason: n, ...},
     "duplicates": {name: n, ...}, "skipped": {type: n, ...}, "no_position": {name: n, ...}}

``duplicates`` are valid input dropped as repeats (``late_sentences`` of a GNSS epoch already
printed, ``duplicate_epochs`` of a time already printed, ``ais_duplicates`` heard twice);
``skipped`` are valid sentences of types the decoders do not use, by type (``GSV``, ``PGRMZ``,
``ais_other_types``); ``no_position`` are position reports without a position, by why
(``rmc_status_v``, ``gga_quality_0``, ``gll_status_v``, ``gns_mode_n``, ``empty_position``,
``epochs_without_position``, ``ais_no_position``). Every key is always there; names with a
count of 0 are left out. Both formats are stable: scripts may parse them.

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
    from edge.decode.ais import AisDecoder
    from edge.decode.nmea import NmeaDecoder
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
    _summary(
        counts, framer.sentences, (framer.errors, gnss.errors, ais.errors), _dropped(gnss, ais)
    )
    return 0


def _dropped(gnss: NmeaDecoder, ais: AisDecoder) -> dict[str, dict[str, int]]:
    """Valid input that printed nothing: repeats, types not used, reports without a position."""
    nmea, vdm = gnss.counters, ais.counters
    tables = {
        "duplicates": {
            "late_sentences": nmea.get("late_sentences", 0),
            "duplicate_epochs": nmea.get("duplicate_epochs", 0),
            "ais_duplicates": vdm.get("duplicates", 0),
        },
        "skipped": {**gnss.skipped, "ais_other_types": vdm.get("other_types", 0)},
        "no_position": {
            **gnss.no_position,
            "epochs_without_position": nmea.get("epochs_without_position", 0),
            "ais_no_position": vdm.get("no_position", 0),
        },
    }
    return {name: {k: n for k, n in table.items() if n} for name, table in tables.items()}


def _summary(
    counts: dict[str, int],
    sentences: int,
    tables: tuple[dict[str, int], ...],
    dropped: dict[str, dict[str, int]],
) -> None:
    import orjson

    errors: dict[str, int] = {}
    for table in tables:
        for reason, count in table.items():
            errors[reason] = errors.get(reason, 0) + count
    summary = {"counts": {"sentences": sentences, **counts}, "errors": errors, **dropped}
    sys.stderr.write(orjson.dumps(summary, option=orjson.OPT_SORT_KEYS).decode() + "\n")
