"""``hazwatch nmea decode`` run as a subprocess: stable JSON lines and a summary on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import wire

DATA = Path(__file__).parent / "data"
NOW = "2026-11-23T02:16:00Z"


def decode(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "hazwatch.cli", "nmea", "decode", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "name", ["ais_mixed", "gnss_noisy", "gnss_questionable", "marine_chartplotter", "ecdis_gll"]
)
def test_output_is_stable(name: str) -> None:
    result = decode(str(DATA / f"{name}.nmea"), "--now", NOW, "--asset", "LU-A12345")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (DATA / f"{name}.expected.jsonl").read_bytes()
    for line in result.stdout.splitlines():
        wire.decode_item(line)  # fields as in wire


def test_summary_counts_kinds_and_error_reasons() -> None:
    result = decode(str(DATA / "ais_mixed.nmea"), "--now", NOW)
    summary = json.loads(result.stderr.decode().strip().splitlines()[-1])
    assert summary == {
        "counts": {"fix_ais": 6, "sentences": 19, "vessel": 3},
        "errors": {"bad_checksum": 1, "fragment_lost": 1, "garbage": 1, "malformed": 1},
        "duplicates": {"ais_duplicates": 3},
        "skipped": {},
        "no_position": {"ais_no_position": 1},
    }


def test_summary_counts_duplicates_skipped_types_and_reports_without_position() -> None:
    result = decode(str(DATA / "marine_chartplotter.nmea"), "--now", NOW)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stderr.decode().strip().splitlines()[-1])
    assert summary["counts"] == {"fix_gnss": 5, "sentences": 25}
    assert summary["errors"] == {}
    # a GGA of an epoch already printed, and an old epoch replayed whole
    assert summary["duplicates"] == {"late_sentences": 1, "duplicate_epochs": 1}
    # depth, heading, GPS satellites in view, a Garmin altitude sentence
    assert summary["skipped"] == {"DPT": 1, "HDT": 1, "GSV": 1, "PGRMZ": 1}
    # the chartplotter starting: date and time but no fix yet
    assert summary["no_position"] == {
        "rmc_status_v": 1,
        "gga_quality_0": 1,
        "epochs_without_position": 1,
    }
    gll = decode(str(DATA / "ecdis_gll.nmea"), "--now", NOW)
    summary = json.loads(gll.stderr.decode().strip().splitlines()[-1])
    assert summary["no_position"] == {"gll_status_v": 2, "epochs_without_position": 1}
    assert summary["skipped"] == {"MWV": 1}


def test_reads_stdin_mixed_gnss_and_ais() -> None:
    data = (DATA / "gnss_beidou.nmea").read_bytes() + (DATA / "ais_mixed.nmea").read_bytes()
    result = decode("-", "--now", NOW, stdin=data)
    assert result.returncode == 0
    kinds = [json.loads(line)["kind"] for line in result.stdout.splitlines()]
    assert kinds.count("fix") == 9 + 6
    assert kinds.count("vessel") == 3
    summary = json.loads(result.stderr.decode().strip().splitlines()[-1])
    assert summary["counts"]["fix_gnss"] == 9


def test_bad_arguments() -> None:
    missing = decode("/nonexistent/file.nmea")
    assert missing.returncode == 1
    assert b"No such file" in missing.stderr
    bad_now = decode("-", "--now", "2026-11-23T02:16:00", stdin=b"")
    assert bad_now.returncode == 2
    assert b"time zone" in bad_now.stderr
