"""The Ray engine's overhead: the same run on the local engine and on Ray, against one `mmad serve`.

The server answers after a fixed latency in its own process; both runs ask the same questions at
the same concurrency on the same machine. Reported: each run's asking time (first request to last
record, `EngineStats.elapsed_s`: for Ray this includes placing the actors, not starting Ray) and
the ratio Ray / local, plus the time Ray itself took to start. Ray runs locally with two CPUs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 only
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_eval_throughput import free_port, make_benchmark
from mmad import evaluate

QUESTIONS = 2000
CONCURRENCY = 32
LATENCY = 0.1
ACTORS = 2


def main() -> None:
    import ray

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = make_benchmark(root / "data", QUESTIONS)
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mmad",
                "serve",
                "--model",
                "fixed:A",
                "--port",
                str(port),
                "--latency",
                str(LATENCY),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            common = {"base_url": f"http://127.0.0.1:{port}/v1", "concurrency": CONCURRENCY, "cache": False}
            local = evaluate("mmad:fixed", data, out=root / "local", **common)
            started = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            ray_start = time.perf_counter() - started
            try:
                on_ray = evaluate("mmad:fixed", data, out=root / "ray", engine="ray", ray_actors=ACTORS, **common)
            finally:
                ray.shutdown()
        finally:
            server.terminate()
            server.wait(10)
    assert local.complete and on_ray.complete and local.stats.done == on_ray.stats.done
    ideal = QUESTIONS / (CONCURRENCY / LATENCY)
    print(f"{local.stats.done} questions, concurrency {CONCURRENCY}, server latency {LATENCY * 1000:.0f} ms")
    print(f"ideal (concurrency / latency): {ideal:.1f} s")
    print(f"local engine: {local.stats.elapsed_s:.1f} s asking")
    print(
        f"Ray engine ({ACTORS} actors): {on_ray.stats.elapsed_s:.1f} s asking; "
        f"Ray itself took {ray_start:.1f} s to start"
    )
    print(f"ratio Ray / local: {on_ray.stats.elapsed_s / local.stats.elapsed_s:.2f}")
    print(f"machine: {os.cpu_count()} cores shared by the server, the driver and Ray")


if __name__ == "__main__":
    main()
