"""On a machine with a GPU: evaluate a local model on an MMAD subset and report throughput and memory.

    python bench/gpu_local_model.py --model hf:Qwen/Qwen2.5-VL-7B-Instruct --data data/MMAD --limit 500
    python bench/gpu_local_model.py --model vllm:Qwen/Qwen2.5-VL-7B-Instruct --base-url http://127.0.0.1:8000/v1 ...

Without real weights (this project's CI machines have none) it can run the tiny random LLaVA of
the tests (`--tiny`) on a synthetic benchmark, which checks the GPU path, not the speed of a real model.
Not part of `make bench`: it needs a GPU to mean anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default=None)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny random LLaVA on synthetic data")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    from mmad.build import build_benchmark, make_synthetic_dataset
    from mmad.models.registry import ModelOptions, create_model
    from mmad.run import RunConfig
    from mmad.run.evaluate import evaluate_async

    scratch = Path(tempfile.mkdtemp())
    data, model_name = args.data, args.model
    if args.tiny:
        from tests.helpers.tiny_vlm import make_tiny_llava

        source = make_synthetic_dataset(scratch / "src", n_train=4, n_test_good=20, n_per_defect=20)
        build_benchmark(source.root, scratch / "bench", name="SynthAD", knowledge=source.knowledge)
        data, model_name = str(scratch / "bench"), f"hf:{make_tiny_llava(scratch / 'tiny')}"
    if not data or not model_name:
        sys.exit("give --model and --data, or --tiny")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = None
    if model_name.startswith("hf:"):
        model = create_model(model_name, ModelOptions(device=device, batch_size=args.batch_size))
    config = RunConfig(
        model=model_name,
        data=data,
        limit=args.limit,
        concurrency=args.concurrency,
        cache=False,
        base_url=args.base_url,
        image_size=None,
        detail=None,
        max_tokens=16,
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    import asyncio

    start = time.perf_counter()
    result = asyncio.run(evaluate_async(config, out=Path(args.out or scratch / "run"), model=model))
    elapsed = time.perf_counter() - start
    report = {
        "model": model_name,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "questions": result.stats.done,
        "seconds": round(elapsed, 1),
        "questions_per_s": round(result.stats.rate, 2),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "average": result.table.average,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
