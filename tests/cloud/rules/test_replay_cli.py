"""``hazwatch rules replay`` on real files and a real archive: the example's events byte for
byte, clear errors for broken input, thresholds from a TOML file, the archive's tracks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest

import wire
from cloud.archive import Store
from cloud.models import Asset, Enterprise, Received
from hazwatch.cli import main
from tests.cloud.rules.scenario import T0, fix, zone

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "replay"


def run(capsys: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, str]:
    code = main(["rules", "replay", *args])
    out = capsys.readouterr()
    return code, out.out, out.err.decode() if isinstance(out.err, bytes) else out.err


def test_the_example_gives_its_events_byte_for_byte(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    args = ("--world", str(EXAMPLE / "world.json"), "--fixes", str(EXAMPLE / "fixes.jsonl"))
    code, first, _ = run(capsysbinary, *args)
    assert code == 0
    assert first == (EXAMPLE / "events.jsonl").read_bytes()
    assert run(capsysbinary, *args)[1] == first
    kinds = [json.loads(line)["kind"] for line in first.splitlines()]
    assert {"zone.forbidden", "parking.outside_lot", "trip.off_route"} <= set(kinds)


def test_a_broken_world_names_the_object_and_field(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    document = json.loads((EXAMPLE / "world.json").read_text())
    document["zones"][0]["properties"]["windows"] = [{"daily": "25:00-06:00"}]
    world = tmp_path / "world.json"
    world.write_text(json.dumps(document))
    code, out, err = run(
        capsysbinary, "--world", str(world), "--fixes", str(EXAMPLE / "fixes.jsonl")
    )
    assert (code, out) == (2, b"")
    assert "zones[0]" in err
    assert "windows" in err
    world.write_text("{not json")
    code, _, err = run(capsysbinary, "--world", str(world), "--fixes", str(EXAMPLE / "fixes.jsonl"))
    assert code == 2
    assert str(world) in err


def test_bad_fix_lines_are_counted_and_the_rest_replayed(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = (EXAMPLE / "fixes.jsonl").read_text().splitlines()
    broken = [
        lines[0],
        "{garbage",
        '{"kind":"reading","seq":1,"ts":1,"site":"s","point":"p","value":1}',
        *lines[1:],
    ]
    fixes = tmp_path / "fixes.jsonl"
    fixes.write_text("\n".join(broken) + "\n")
    code, out, err = run(
        capsysbinary, "--world", str(EXAMPLE / "world.json"), "--fixes", str(fixes)
    )
    assert code == 0
    assert out == (EXAMPLE / "events.jsonl").read_bytes()
    assert "2 lines skipped" in err
    assert "line 2" in err


def test_thresholds_from_a_toml_file(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    config = tmp_path / "rules.toml"
    config.write_text("[rules.classes.hazmat_truck]\nstop_s = 300\n")
    args = ("--world", str(EXAMPLE / "world.json"), "--fixes", str(EXAMPLE / "fixes.jsonl"))
    _, default, _ = run(capsysbinary, *args)
    code, shorter, _ = run(capsysbinary, *args, "--config", str(config))
    assert code == 0

    def parking(out: bytes) -> list[int]:
        events = [json.loads(line) for line in out.splitlines()]
        return [
            e["ts"] for e in events if e["kind"] == "parking.outside_lot" and e["action"] == "open"
        ]

    assert [t - 300_000 for t in parking(default)] == parking(shorter)
    config.write_text("[rules]\nstop_s = -1\n")
    code, _, err = run(capsysbinary, *args, "--config", str(config))
    assert code == 2
    assert "stop_s" in err


def test_replaying_the_archive(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """The archive's zones and track give what the same world and fixes give from files."""
    db = tmp_path / "cloud.db"
    ban = zone("ban", (0, 0, 400, 400))
    track = [fix(t, -100 + t * 2, 200) for t in range(0, 301, 10)]

    async def fill() -> None:
        store = await Store.connect(f"sqlite+aiosqlite:///{db}")
        try:
            await store.put_enterprise(Enterprise(id="e1", name="e1", region="320281"))
            await store.put_asset(Asset(id="truck", enterprise_id="e1", asset_class="hazmat_truck"))
            await store.put_geo(ban, now_ms=T0 - 1)
            await store.insert_fixes(
                [Received(item=f, gateway_id="g", enterprise_id="e1", recv_ms=f.ts) for f in track]
            )
        finally:
            await store.close()

    asyncio.run(fill())
    cloud = tmp_path / "cloud.toml"
    cloud.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n')
    code, archived, err = run(
        capsysbinary, "--from-archive", "--cloud-config", str(cloud), "--asset", "truck",
        "--from", str(T0), "--to", str(T0 + 400_000),
    )  # fmt: skip
    assert code == 0, err
    world = tmp_path / "world.json"
    feature = {
        "type": "Feature",
        "id": "ban",
        "geometry": ban.geometry,
        "properties": ban.properties,
    }
    world.write_text(json.dumps({
        "assets": [{"id": "truck", "enterprise_id": "e1", "asset_class": "hazmat_truck"}],
        "zones": [feature],
    }))  # fmt: skip
    fixes = tmp_path / "fixes.jsonl"
    fixes.write_bytes(b"".join(wire.encode_item(f) + b"\n" for f in track))
    code, from_files, _ = run(
        capsysbinary, "--world", str(world), "--fixes", str(fixes), "--until", str(T0 + 400_000)
    )
    assert code == 0
    assert archived == from_files
    opened = [msgspec.json.decode(line) for line in archived.splitlines()]
    assert [(e["kind"], e["action"]) for e in opened] == [
        ("zone.forbidden", "open"),
        ("zone.forbidden", "close"),
    ]


def test_the_archive_unreachable_is_a_clear_error(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    cloud = tmp_path / "cloud.toml"
    cloud.write_text('[database]\nurl = "postgresql+asyncpg://hz:secret@127.0.0.1:1/none"\n')
    code, out, err = run(
        capsysbinary, "--from-archive", "--cloud-config", str(cloud), "--asset", "truck",
        "--from", "0", "--to", "1",
    )  # fmt: skip
    assert (code, out) == (2, b"")
    assert "reading the archive" in err
    assert "secret" not in err
    code, _, err = run(capsysbinary, "--from-archive", "--asset", "truck")
    assert code == 2
    assert "--from" in err
