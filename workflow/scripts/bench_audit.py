"""Time `iapo audit` on one scale's summary tables (the committed mini study by default).

Usage: python workflow/scripts/bench_audit.py [SCALE] [REPEATS] [OUT.json]
Runs the audit REPEATS times in fresh processes (as a user runs it: start-up, reading the tables,
every claim, the power simulations, writing the report into a temporary folder), prints each wall
time and writes them, with the machine, to OUT.json (default results/bench_audit.json).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def main(scale: str = "mini", repeats: int = 3, out: str = "results/bench_audit.json") -> int:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "iapo.cli", "audit", "--scale", scale, "--out",
                            str(Path(tmp) / "audit.md")], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
            print(f"iapo audit --scale {scale}: run {i + 1}/{repeats}: {times[-1]:.2f} s", flush=True)
    record = {"scale": scale, "seconds": times, "median_s": statistics.median(times),
              "date": str(date.today()), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine()}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"median {record['median_s']:.2f} s over {repeats} runs; wrote {out}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[0] if args else "mini", int(args[1]) if len(args) > 1 else 3,
                  args[2] if len(args) > 2 else "results/bench_audit.json"))
