"""The rules benchmarks run in their quick mode and print their figures.

Benchmarks are never judged by their times here: the machine is shared and noisy, and a test
that failed on a slow run would teach nothing. What is checked is that each one runs to the
end, prints every figure it promises, and that its own cross-checks agree.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: what a benchmark exits with when a service it needs is missing (it prints why)
SKIPPED = 77
NUMBER = r"[\d,]+"


def run_quick(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def test_rules_engine_bench_prints_its_figures() -> None:
    done = run_quick("bench_rules.py")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"World\.build \+ Engine in [\d.]+ s, RSS \+[\d,]+ MB", out), out
    assert re.search(rf"warm-up: {NUMBER} fixes .* \({NUMBER} fixes/s\)", out), out
    for batch in ("100", "1,000"):  # batch, calls, engine, decode, encode, with codec
        row = rf"^\s*{batch}\s+{NUMBER}\s+{NUMBER}\s+[\d.]+\s+[\d.]+\s+{NUMBER}$"
        assert re.search(row, out, re.MULTILINE), out
    assert re.search(rf"baseline, no index: .*: {NUMBER} fixes/s", out), out
    assert "answers agree" in out, out
    assert re.search(r"aim 100,000 fixes/s through the engine: (met|NOT met)", out), out


@pytest.mark.services
def test_postgis_bench_prints_its_figures() -> None:
    done = run_quick("bench_rules_postgis.py")
    # `make services` installs PostGIS for the running server: without it the comparison the
    # rules are benchmarked by is gone, and that is a failure of the set-up, not a skip.
    assert done.returncode != SKIPPED, "PostGIS missing: " + done.stdout.strip()
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"PostGIS \d+\.\d+", out), out
    for question in ("zones (metric plane)", "zones (geography)", "route, fix by fix",
                     "route, vectorized"):  # fmt: skip
        row = rf"^{re.escape(question)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+[\d,.]+x\s+\d+"
        assert re.search(row, out, re.MULTILINE), out
    # The same geometry in the same plane: the engine and PostGIS agree on every membership.
    assert re.search(r"^zones \(metric plane\).*x\s+0$", out, re.MULTILINE), out
