"""Peak memory of `mmad eval` over HTTP: the whole of MMAD against 10,000 questions.

Target (issue #17): under 600 MB for 39,672 questions at concurrency 64 with 512-px JPEG images,
and the same within 10% for 10,000 questions: memory bounded by concurrency, not by the run's
size. The server (`mmad serve`, 200 ms latency) runs in its own process; the client's peak
resident memory is read by GNU time. The data root is made once (bench/fullsize_data.py).

    python bench/bench_memory.py [--cache DIR] [--limits 10000,39672]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fullsize_data import fullsize_root
from serve_process import serving

TARGET_MB = 600
CONCURRENCY = 64
LATENCY = 0.2


def measure(data: Path, base_url: str, out: Path, limit: int) -> tuple[float, float, int]:
    """(peak resident MB, wall seconds, exit code) of one `mmad eval` process."""
    command = [
        "/usr/bin/time",
        "-f",
        "%M",
        sys.executable,
        "-m",
        "mmad",
        "eval",
        "-m",
        "mmad:random",
        "--base-url",
        base_url,
        "-d",
        str(data),
        "--out",
        str(out),
        "-c",
        str(CONCURRENCY),
        "--no-cache",
        "--limit",
        str(limit),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    wall = time.perf_counter() - started
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return peak_kb / 1024, wall, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mmad-bench")
    parser.add_argument("--limits", default="10000,39672")
    args = parser.parse_args()
    data = fullsize_root(args.cache, size=512, suffix=".jpg")
    limits = [int(x) for x in args.limits.split(",")]
    print(f"data: {data} (8,366 images, 512-px JPEG); server latency {LATENCY} s; concurrency {CONCURRENCY}")
    peaks = {}
    with serving(latency=LATENCY) as base_url, tempfile.TemporaryDirectory() as scratch:
        for limit in limits:
            out = Path(scratch) / f"run-{limit}"
            peak, wall, code = measure(data, base_url, out, limit)
            peaks[limit] = peak
            print(f"{limit:>6} questions: peak {peak:.0f} MB, {wall:.0f} s ({limit / wall:.0f} q/s), exit {code}")
            shutil.rmtree(out, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cores shared by the client and the server")
    worst = max(peaks.values())
    spread = worst / min(peaks.values()) - 1 if len(peaks) > 1 else 0.0
    print(
        f"largest peak {worst:.0f} MB (target < {TARGET_MB}); spread between sizes {100 * spread:.0f}% (target < 10%)"
    )
    if worst >= TARGET_MB or spread >= 0.10:
        sys.exit("a target was missed")


if __name__ == "__main__":
    main()
