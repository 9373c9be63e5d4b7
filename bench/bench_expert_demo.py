"""The visual expert on the demo benchmark: AD, DL, Overkill and Miss, and the CPU time of fitting and answering.

Builds `mmad demo`'s benchmark (synthetic data, seed 0) in a temporary folder, or uses ``--data``,
then for each ``--sizes`` input side fits the expert (`expert`, each query's one template) and runs
it in process as the demo does (concurrency 2). Torch runs on one thread (``--threads``), as in the
demo: the run's two workers fill the cores. CPU seconds are this process's; wall seconds swing with
whatever else shares the machine. Recorded in docs/benchmarks.md (the demo's section).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from mmad.api import evaluate_async
from mmad.builder.build import build_benchmark
from mmad.builder.synthetic import DATASET_NAME, make_synthetic_dataset
from mmad.data.official import load_benchmark
from mmad.data.schema import Subtask
from mmad.models.expert_model import ExpertModel
from mmad.run.config import RunConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a built benchmark's mmad.json (default: build the demo's)")
    parser.add_argument("--sizes", default="224,320", help="input sides, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data
        if data is None:
            source = make_synthetic_dataset(Path(scratch) / "source", seed=0)
            build_benchmark(source.root, Path(scratch) / "bench", name=DATASET_NAME, seed=0, knowledge=source.knowledge)
            data = Path(scratch) / "bench" / "mmad.json"
        benchmark = load_benchmark(data)
        for size in (int(s) for s in args.sizes.split(",")):
            model = ExpertModel.from_name("", options={"image_size": size})
            cpu, wall = time.process_time(), time.perf_counter()
            model.prepare(benchmark)
            fit = (time.process_time() - cpu, time.perf_counter() - wall)
            config = RunConfig.from_flat("expert", str(data), concurrency=2, cache=False)
            cpu, wall = time.process_time(), time.perf_counter()
            run = asyncio.run(evaluate_async(config, out=Path(scratch) / f"run-{size}", model=model))
            answer = (time.process_time() - cpu, time.perf_counter() - wall)
            row = run.table.rows[0]
            detection = row.detection
            figures = {
                "input": size,
                "AD": round(row.cells[Subtask.ANOMALY_DISCRIMINATION] or 0.0, 2),
                "DL": round(row.cells[Subtask.DEFECT_LOCALIZATION] or 0.0, 2),
                "overkill": f"{detection.normal.total - detection.normal.correct}/{detection.normal.total}",
                "miss": f"{detection.abnormal.total - detection.abnormal.correct}/{detection.abnormal.total}",
                "fit_cpu_s": round(fit[0], 1),
                "fit_wall_s": round(fit[1], 1),
                "answer_cpu_s": round(answer[0], 1),
                "answer_wall_s": round(answer[1], 1),
            }
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
