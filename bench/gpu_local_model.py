"""On a machine with a GPU: evaluate a local model on an MMAD subset and report throughput and memory.

    python bench/gpu_local_model.py --model hf:Qwen/Qwen2.5-VL-7B-Instruct --data data/MMAD --limit 500
    python bench/gpu_local_model.py --model vllm:Qwen/Qwen2.5-VL-7B-Instruct --base-url http://127.0.0.1:8000/v1 ...

Without real weights (this project's machines can download none) it runs randomly initialised
models of real architectures on a synthetic benchmark: `--random qwen2-vl-2b` has Qwen2-VL-2B's
dimensions and the official Qwen image preset (max_pixels 1280*28*28), so its throughput and memory
are a real 2B model's, except that random weights never stop early: every answer runs to
--max-tokens, which makes the figure a lower bound. `--random llava-tiny` checks the GPU path only.
`--batch-sizes 1,8,32` measures each batch size in turn. Not part of `make bench`: needs a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def random_model(kind: str, folder: Path, device: str) -> str:
    from tests.helpers.tiny_vlm import make_random_qwen2_vl, make_tiny_llava

    if kind == "llava-tiny":
        return str(make_tiny_llava(folder / "tiny-llava"))
    if kind == "qwen2-vl-tiny":
        return str(make_random_qwen2_vl(folder / "random-qwen2-vl-tiny", size="tiny", device=device))
    if kind == "qwen2-vl-2b":
        return str(make_random_qwen2_vl(folder / "random-qwen2-vl-2b", size="2b", device=device))
    sys.exit(f"unknown --random {kind}: llava-tiny, qwen2-vl-tiny or qwen2-vl-2b")


def synthetic_benchmark(folder: Path) -> str:
    from mmad.builder import build_benchmark, make_synthetic_dataset

    source = make_synthetic_dataset(folder / "src", n_train=4, n_test_good=20, n_per_defect=20)
    build_benchmark(source.root, folder / "bench", name="SynthAD", knowledge=source.knowledge)
    return str(folder / "bench")


def measure(args: argparse.Namespace, model_name: str, data: str, batch_size: int, out: Path) -> dict[str, object]:
    import torch

    from mmad import RunConfig
    from mmad.api import evaluate_async
    from mmad.models.registry import ModelOptions, create_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = None
    if model_name.startswith("hf:"):
        model = create_model(model_name, ModelOptions(device=device, batch_size=batch_size))
    config = RunConfig.from_flat(
        model_name,
        data,
        limit=args.limit,
        concurrency=max(args.concurrency, batch_size),
        cache=False,
        base_url=args.base_url,
        image_size=None,
        detail=None,
        max_tokens=args.max_tokens,
    )
    if args.warmup:  # the first batches pay for CUDA's kernel loading and autotuning: keep them out
        warm = config.model_copy(update={"limit": args.warmup})
        asyncio.run(evaluate_async(warm, out=out.with_name(out.name + "-warmup"), model=model))
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = asyncio.run(evaluate_async(config, out=out, model=model))
    elapsed = time.perf_counter() - start
    report: dict[str, object] = {
        "model": model_name,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "batch_size": batch_size,
        "max_tokens": args.max_tokens,
        "questions": result.stats.done,
        "seconds": round(elapsed, 1),
        "questions_per_s": round(result.stats.done / elapsed, 2),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "average": result.table.average,
    }
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default=None)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-sizes", default="16", help="comma-separated; each is measured in turn")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=16, help="questions asked, untimed, before each measurement")
    parser.add_argument("--random", default=None, help="llava-tiny, qwen2-vl-tiny or qwen2-vl-2b (random weights)")
    parser.add_argument("--tiny", action="store_true", help="same as --random llava-tiny")
    parser.add_argument("--json", default=None, help="also write the reports to this file")
    args = parser.parse_args()

    import torch

    scratch = Path(tempfile.mkdtemp())
    data, model_name = args.data, args.model
    kind = "llava-tiny" if args.tiny else args.random
    if kind:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model_name = f"hf:{random_model(kind, scratch, device)}"
        data = data or synthetic_benchmark(scratch)
    if not data or not model_name:
        sys.exit("give --model and --data, or --random KIND")
    reports = []
    for index, batch_size in enumerate(int(b) for b in args.batch_sizes.split(",")):
        reports.append(measure(args, model_name, data, batch_size, scratch / f"run-{index}"))
        print(json.dumps(reports[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
