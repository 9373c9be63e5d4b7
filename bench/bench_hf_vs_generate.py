"""mmad's transformers backend against a bare batched `generate` loop: same prompts, batches, decoding.

Target (issue #17): mmad's whole run reaches at least 0.9x the questions/s of a loop that takes the
same prompts in the same batches and calls the processor and `model.generate` directly, one batch
after the other (no engine, no overlap).

- The prompts are mmad's own (the protocol layer's 1-shot prompts: a template and the query image,
  two images each) for the first ``--questions`` sampled questions of a generated benchmark whose
  images are photo-like JPEGs/PNGs of ``--image-px`` (MMAD's real photos are 500-1,000 px), or of
  ``--data`` (an MMAD data root).
- The model is loaded once, by `TransformersModel`; the bare loop uses the very processor and model
  objects it holds, so both sides run the same weights with the same processor settings (the family
  presets) and left padding. Greedy decoding, ``--max-tokens`` new tokens at most, on both sides.
- mmad: `evaluate_async` with that model instance, the whole run (planning, the engine and its
  concurrency, batching, parsing, records, scores and the report files), cache off.
- bare: for each batch of ``--batch-size`` consecutive prompts: open the images (PIL), the
  processor's chat template, `.to(device)`, `generate`, `batch_decode`. The prompts themselves are
  built before the clock starts (the bare loop gets them for free).

Both sides are warmed up first (one batch each, untimed), then timed ``--repeats`` times, alternating,
and the medians compared. The replies are compared too (random weights are near ties, so a different
batch composition can flip a token; the share that agree is reported, not required).

    python bench/bench_hf_vs_generate.py --random llava-tiny --device cpu            # this machine
    python bench/bench_hf_vs_generate.py --random qwen2-vl-2b --device cuda --batch-size 32
    python bench/bench_hf_vs_generate.py --model Qwen/Qwen2.5-VL-7B-Instruct --data data/MMAD --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fullsize_data import photo
from gpu_local_model import random_model

TARGET = 0.9


def generated_benchmark(folder: Path, per_group: int, px: int) -> Path:
    """tests/helpers/mmad_tree's layout (all eight question types, four sources) with photo-like images of px."""
    import numpy as np
    from tests.helpers.mmad_tree import make_mmad_tree

    path = make_mmad_tree(folder, per_group=per_group)
    rng = np.random.default_rng(0)
    for image in sorted(folder.rglob("*")):
        if image.suffix.lower() in {".png", ".jpg"} and "ground_truth" not in image.parts:
            picture = photo(rng, px)
            picture.save(image, format="JPEG", quality=90) if image.suffix.lower() == ".jpg" else picture.save(image)
    return path.parent


def mmad_prompts(config: Any) -> list[Any]:
    """The prompts mmad asks for this config, in the order its engine asks them."""
    from mmad.data.official import load_benchmark
    from mmad.protocol.strategies import parse_strategies
    from mmad.run.plan import Planner, select_questions

    benchmark = load_benchmark(config.data)
    selection = select_questions(benchmark, config.selection, config.prompt_settings())
    planner = Planner(benchmark, config.prompt_settings(), parse_strategies(config.prompt.strategies))
    return list(planner.prompts(selection.items))


def bare_conversation(prompt: Any) -> list[dict[str, Any]]:
    """A prompt in transformers' chat format, written here without mmad's backend code."""
    from PIL import Image

    conversation = []
    for message in prompt.messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if hasattr(part, "text"):
                content.append({"type": "text", "text": part.text})
            else:
                with Image.open(part.path) as opened:
                    content.append({"type": "image", "image": opened.convert("RGB")})
        conversation.append({"role": message.role, "content": content})
    return conversation


def bare_loop(
    processor: Any, model: Any, prompts: list[Any], batch_size: int, max_tokens: int, split: list[float] | None = None
) -> list[str]:
    """The floor: batch after batch, images, processor, generate, decode; nothing overlapped.

    ``split`` (when given) gains the seconds spent preparing and generating: [prepare, generate].
    """
    import torch

    replies: list[str] = []
    pad = processor.tokenizer.pad_token_id
    for start in range(0, len(prompts), batch_size):
        began = time.perf_counter()
        conversations = [bare_conversation(p) for p in prompts[start : start + batch_size]]
        inputs = processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        ).to(model.device)
        if "pixel_values" in inputs and model.dtype != torch.float32:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        prepared = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False, pad_token_id=pad)
        new = output[:, inputs["input_ids"].shape[1] :]
        replies.extend(text.strip() for text in processor.batch_decode(new, skip_special_tokens=True))
        if split is not None:
            split[0] += prepared - began
            split[1] += time.perf_counter() - prepared
    return replies


def timed_bare(model: Any, prompts: list[Any], args: argparse.Namespace) -> tuple[float, list[str], list[float]]:
    """(seconds, replies in prompt order, [seconds preparing, seconds generating, CPU seconds of the process])."""
    split = [0.0, 0.0, time.process_time()]
    started = time.perf_counter()
    replies = bare_loop(model.processor, model.model, prompts, args.batch_size, args.max_tokens, split)
    split[2] = time.process_time() - split[2]
    return time.perf_counter() - started, replies, split


class StageClock:
    """Adds up the seconds mmad's batcher spends in each stage (its worker threads), to show the overlap."""

    def __init__(self, batcher: Any) -> None:
        self.seconds = {"prepare": 0.0, "run": 0.0}
        self.prepare, self.run = batcher.prepare_batch, batcher.run_batch
        batcher.prepare_batch, batcher.run_batch = self._timed("prepare"), self._timed("run")

    def _timed(self, stage: str) -> Any:
        function = self.prepare if stage == "prepare" else self.run

        def timed(argument: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(argument)
            finally:
                self.seconds[stage] += time.perf_counter() - began

        return timed


def timed_mmad(model: Any, config: Any, out: Path) -> tuple[float, float, dict[str, str], dict[str, float]]:
    """(whole run seconds, the engine's asking seconds, raw reply per question key, seconds per batcher stage
    and the process's CPU seconds)."""
    from mmad.api import evaluate_async
    from mmad.records.record import read_records

    model.batcher.batches.clear()
    clock = StageClock(model.batcher)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        result = asyncio.run(evaluate_async(config, out=out, model=model))
        seconds = time.perf_counter() - started
        clock.seconds["cpu"] = time.process_time() - cpu
    finally:
        model.batcher.prepare_batch, model.batcher.run_batch = clock.prepare, clock.run
    asking = result.stats.elapsed_s
    replies = {f"{r.question_id}|{r.variant}": (r.raw_reply or "").strip() for r in read_records(out / "records.jsonl")}
    return seconds, asking, replies, clock.seconds


def question_replies(prompts: list[Any], replies: list[str]) -> dict[str, str]:
    return {"|".join(q.key): reply for p, reply in zip(prompts, replies, strict=True) for q in p.questions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if there is one")
    parser.add_argument("--random", default=None, help="llava-tiny, qwen2-vl-tiny or qwen2-vl-2b (random weights)")
    parser.add_argument("--model", default=None, help="a model id or folder (real weights, e.g. on a GPU machine)")
    parser.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: the checkpoint's)")
    parser.add_argument("--data", default=None, help="an MMAD data root (default: a generated one)")
    parser.add_argument("--image-px", type=int, default=512, help="side of the generated benchmark's images")
    parser.add_argument("--questions", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=None, help="mmad's requests in flight (default 2x batch)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-overlap", action="store_true", help="mmad prepares each batch only when the model is free"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    args = parser.parse_args()

    import torch

    from mmad.models.batching import MicroBatcher
    from mmad.models.hf import TransformersModel
    from mmad.run.config import RunConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    scratch = Path(tempfile.mkdtemp(prefix="mmad-hf-bench-"))
    if args.random:
        model_id = random_model(args.random, scratch, device)
    elif args.model:
        model_id = args.model
    else:
        sys.exit("give --random KIND or --model ID")
    data = (
        Path(args.data) if args.data else generated_benchmark(scratch / "data", 1 + args.questions // 40, args.image_px)
    )
    concurrency = args.concurrency or 2 * args.batch_size
    config = RunConfig.from_flat(
        f"hf:{model_id}",
        str(data),
        limit=args.questions,
        concurrency=concurrency,
        cache=False,
        max_tokens=args.max_tokens,
        image_size=None,
        detail=None,
    )
    prompts = mmad_prompts(config)
    questions = sum(len(p.questions) for p in prompts)
    model = TransformersModel(model_id, device=device, dtype=args.dtype, batch_size=args.batch_size)
    if args.no_overlap:  # the batcher as it was before issue #17: both halves in one stage
        model.batcher = MicroBatcher(model.generate_batch, batch_size=args.batch_size, window_s=model.batcher.window_s)
    load_before = os.getloadavg()[0]

    # Warm-up, untimed: first calls pay for lazy imports, allocator growth, and kernels made for each new
    # shape (oneDNN on a CPU, CUDA kernels and autotuning on a GPU). A whole bare pass warms every
    # batch shape both sides will meet (they form the same batches); a short mmad run warms its own path.
    bare_loop(model.processor, model.model, prompts, args.batch_size, args.max_tokens)
    warm = config.model_copy(update={"selection": config.selection.model_copy(update={"limit": args.batch_size})})
    timed_mmad(model, warm, scratch / "warm")

    bare_times, mmad_times, asking_times = [], [], []
    bare_split, mmad_split = [0.0, 0.0, 0.0], {"prepare": 0.0, "run": 0.0, "cpu": 0.0}
    agree = compared = 0
    batches: Counter[int] = Counter()
    for repeat in range(args.repeats):
        order = ["bare", "mmad"] if repeat % 2 == 0 else ["mmad", "bare"]  # drift on a shared machine cancels
        for side in order:
            if side == "bare":
                seconds, replies, split = timed_bare(model, prompts, args)
                bare_times.append(seconds)
                bare_split = [a + b for a, b in zip(bare_split, split, strict=True)]
            else:
                whole, asking, mmad_replies, stages = timed_mmad(model, config, scratch / f"run-{repeat}")
                mmad_times.append(whole)
                asking_times.append(asking)
                mmad_split = {k: mmad_split[k] + stages[k] for k in mmad_split}
                batches.update(model.batcher.batches)
        ours = question_replies(prompts, replies)
        compared += len(ours)
        agree += sum(mmad_replies.get(key) == reply for key, reply in ours.items())
        print(
            f"repeat {repeat + 1} ({' then '.join(order)}): bare {questions / seconds:.1f} q/s ({seconds:.2f} s: "
            f"{split[0]:.2f} s preparing, {split[1]:.2f} s generating; {split[2]:.2f} s CPU), "
            f"mmad {questions / whole:.1f} q/s ({whole:.2f} s whole run, {asking:.2f} s asking; stages "
            f"{stages['prepare']:.2f} s preparing, {stages['run']:.2f} s running; {stages['cpu']:.2f} s CPU)",
            flush=True,
        )
    bare_s, mmad_s = statistics.median(bare_times), statistics.median(mmad_times)
    report = {
        "model": args.random or args.model,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other work on the machine
        "overlap": not args.no_overlap,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dtype": model.dtype,
        "questions": questions,
        "prompts": len(prompts),
        "images_px": None if args.data else args.image_px,
        "batch_size": args.batch_size,
        "concurrency": concurrency,
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "bare_s": [round(t, 2) for t in bare_times],
        "mmad_s": [round(t, 2) for t in mmad_times],
        "mmad_asking_s": [round(t, 2) for t in asking_times],
        "bare_q_per_s": round(questions / bare_s, 2),
        "mmad_q_per_s": round(questions / mmad_s, 2),
        "ratio": round(bare_s / mmad_s, 3),
        "ratio_asking_only": round(bare_s / statistics.median(asking_times), 3),
        "mmad_batch_sizes": dict(sorted(batches.items())),
        # per pass, averaged: where each side's time goes (mmad's stages run in two threads, overlapped)
        "bare_prepare_s": round(bare_split[0] / args.repeats, 2),
        "bare_generate_s": round(bare_split[1] / args.repeats, 2),
        "mmad_prepare_s": round(mmad_split["prepare"] / args.repeats, 2),
        "mmad_run_s": round(mmad_split["run"] / args.repeats, 2),
        "bare_cpu_s": round(bare_split[2] / args.repeats, 2),
        "mmad_cpu_s": round(mmad_split["cpu"] / args.repeats, 2),
        "replies_agreeing": f"{agree}/{compared}",
    }
    print(json.dumps(report, indent=2))
    print(f"mmad / bare generate: {report['ratio']}x (target >= {TARGET}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
