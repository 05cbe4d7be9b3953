"""Run every benchmark in this folder (``bench_*.py``) one after another; `make bench` calls this.

Each benchmark is a script that prints its own figures (medians of several runs and ratios
against a baseline measured in the same run). Pass names to run only some: ``python bench/run.py
wire modbus``. A benchmark that needs something this machine lacks (PostGIS) says so and exits
with 77: it is reported as skipped, not failed. Modules without the ``bench_`` prefix are
helpers the benchmarks share (``rules_world.py``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

#: the exit code of a benchmark that cannot run here (it prints why)
SKIPPED = 77


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(name in s.stem for name in argv)]
    failed = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=here.parent)
        status = "skipped" if code == SKIPPED else f"exit {code}"
        print(f"-- {script.name}: {status} after {time.monotonic() - started:.1f} s\n", flush=True)
        failed += code not in (0, SKIPPED)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
