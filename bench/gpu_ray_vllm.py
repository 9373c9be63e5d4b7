"""vllm-local on Ray Data LLM for real, on a GPU machine (not run by `make bench`: it needs CUDA GPUs).

Needs ``pip install 'mmad[ray-llm]'`` (ray[llm] 2.60 with its vLLM) and a model that vLLM can load
from the local disk or the Hub cache (HF_HUB_OFFLINE=1 on a machine without internet). Runs the
same questions twice, in-process vLLM (``--engine local``) and Ray Data LLM (``--engine ray``), and
prints questions per second and whether the two runs gave the same answers::

    python bench/gpu_ray_vllm.py --model Qwen/Qwen2.5-VL-3B-Instruct --data data/MMAD --limit 500
    python bench/gpu_ray_vllm.py --model /models/Qwen2.5-VL-72B-Instruct --data /shared/MMAD \\
        --replicas 2 --model-args '{"tensor_parallel_size": 4}'

Record the figures in docs/benchmarks.md with the machine, vLLM version and date.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmad import evaluate
from mmad.records.record import read_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model repo or path vLLM can load")
    parser.add_argument("--data", required=True, help="data root holding mmad.json")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--replicas", type=int, default=1, help="Ray Data LLM replicas (--ray-actors)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model-args", default="{}", help="json for vLLM, e.g. tensor_parallel_size")
    parser.add_argument("--skip-local", action="store_true", help="only the Ray Data LLM run")
    options = parser.parse_args()
    model = f"vllm-local:{options.model}"
    common = {
        "limit": options.limit,
        "cache": False,
        "batch_size": options.batch_size,
        "concurrency": max(options.batch_size, 64),
        "likelihood": True,
        "model_args": json.loads(options.model_args),
        "image_size": None,
        "detail": None,
    }
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        timings = {}
        engines = ["ray"] if options.skip_local else ["local", "ray"]
        for engine in engines:
            started = time.perf_counter()
            extra = {"ray_actors": options.replicas} if engine == "ray" else {}
            result = evaluate(model, options.data, out=out / engine, engine=engine, **common, **extra)
            timings[engine] = time.perf_counter() - started
            print(
                f"{engine}: {result.status}, {result.stats.done} questions in {result.stats.elapsed_s:.1f} s asking "
                f"({timings[engine]:.1f} s in all, with loading): {result.stats.rate:.2f} q/s; "
                f"average {result.table.average}"
            )
        if len(engines) == 2:
            answers = [{r.key: r.answer for r in read_records(out / e / "records.jsonl")} for e in engines]
            same = sum(answers[0].get(k) == v for k, v in answers[1].items())
            print(f"same answer on {same}/{len(answers[1])} questions (greedy decoding; batching may differ)")
    print(f"machine: {os.cpu_count()} host cores; model {options.model}; replicas {options.replicas}")


if __name__ == "__main__":
    main()
