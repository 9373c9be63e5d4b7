"""`mmad eval` with its defaults (response cache on) against a bare `AsyncOpenAI` loop, whole processes.

Issue #22's setting: an OpenAI-compatible server on 127.0.0.1 (`mmad serve`, its own process,
200 ms per request), 2,944 questions of 96-px images, 1-shot, `-c 64`. `mmad eval` runs as a user
runs it: no flag but the model, server, data, output folder, `--limit` and `-c`; the response
cache on, in a folder of its own (MMAD_CACHE_DIR) that is

- empty: the first run of a new cache;
- full: 30,000 replies of other runs already in it, none of them this run's (every lookup misses);
- warm (shown, not judged): this run's own replies in it, so nothing is sent at all.

The bare loop (bench/bare_openai_loop.py) sends the same requests: the same texts and the same
image bytes (mmad's own encoding of each image, written to files the loop reads and base64s once),
`chat.completions.create` over the SDK's aiohttp transport, 64 workers, nothing else. The two run
back to back, alternating, `--rounds` times; the ratio of each round and the median are printed.
Target: mmad at least 0.9x the bare loop's rate, cache empty and full.

    python bench/bench_eval_defaults.py [--rounds 3] [--questions 2944] [--profile FILE] [--compare-src DIR]

--profile also runs `mmad eval` (empty cache) once under cProfile and prints where its time goes.
--compare-src also runs another mmad's `src/` each round (cache empty, and full of 30,000 replies
in the one-file-per-reply form mmad kept before issue #22), for a before/after on the same box.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cache_fill import fill_old_style, fill_with_other_replies
from fullsize_data import fullsize_root
from mmad.data.official import load_benchmark
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart, TextPart
from mmad.protocol.strategies import parse_strategies
from mmad.run.config import RunConfig
from mmad.run.plan import Planner, select_questions
from serve_process import serving, timed

CONCURRENCY = 64
LATENCY = 0.2
TARGET = 0.9
OTHER_REPLIES = 30_000
MODEL = "mmad:random"


def prepared_requests(data: Path, limit: int, folder: Path, image_size: int | None) -> Path:
    """mmad's own requests for its `limit` sampled questions at the defaults: text parts, and each
    image as mmad encodes it (written once to a file), with its MIME type and `detail`."""
    sized = {} if image_size is None else {"size": image_size or None}  # as `--image-size` sets it
    config = RunConfig.from_flat(MODEL, str(data), limit=limit, **sized)
    benchmark = load_benchmark(data)
    selection = select_questions(benchmark, config.selection, config.prompt_settings())
    planner = Planner(benchmark, config.prompt_settings(), parse_strategies([]))
    encoder = ImageEncoder(config.image_settings())
    detail = config.images.detail
    images = folder / "images"
    images.mkdir()
    requests = []
    for prompt in planner.prompts(selection.items):
        parts: list[dict[str, str]] = []
        for part in prompt.messages[0].parts:
            if isinstance(part, TextPart):
                parts.append({"text": part.text})
                continue
            assert isinstance(part, ImagePart)
            encoded = encoder.encode(part)
            path = images / encoded.digest
            if not path.exists():
                path.write_bytes(encoded.data)
            parts.append({"image": str(path), "mime": encoded.mime, **({"detail": detail} if detail else {})})
        requests.append(parts)
    path = folder / "requests.json"
    path.write_text(json.dumps(requests))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=2944)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-cache", type=Path, default=Path(tempfile.gettempdir()) / "mmad-bench")
    parser.add_argument(
        "--image-size", type=int, default=None, help="not a default: mmad's --image-size (0 keeps each image's size)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="also profile one empty-cache run into FILE")
    parser.add_argument(
        "--compare-src",
        type=Path,
        default=None,
        help="the src/ folder of another mmad (e.g. `git archive 06f9ed3`), run the same way each round",
    )
    args = parser.parse_args()
    # As an installed mmad runs: with its modules compiled (an editable install under
    # PYTHONDONTWRITEBYTECODE compiled ~100 modules again in every process; `make test` and `make demo` compile them)
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "src" / "mmad", quiet=1)
    data = fullsize_root(args.data_cache, size=96, suffix=".png")
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "empty": [], "full": [], "warm": []}
    if args.compare_src:
        results.update({"other empty": [], "other full": []})
    with tempfile.TemporaryDirectory() as scratch_name, serving(latency=LATENCY) as base_url:
        scratch = Path(scratch_name)
        requests = prepared_requests(data, args.questions, scratch, args.image_size)
        n = len(json.loads(requests.read_text()))
        bare_command = [sys.executable, str(Path(__file__).parent / "bare_openai_loop.py"), str(requests), base_url]
        bare_command.append(str(CONCURRENCY))

        def mmad(tag: str, cache: Path, prefix: tuple[str, ...] = (), src: Path | None = None) -> tuple[float, float]:
            out = scratch / f"run-{tag.replace(' ', '-')}-{time.monotonic_ns()}"
            command = [*prefix, "-m", "mmad", "eval", "-m", MODEL, "--base-url", base_url, "-d", str(data)]
            command += ["--out", str(out), "-c", str(CONCURRENCY), "--limit", str(args.questions)]
            if args.image_size is not None:
                command += ["--image-size", str(args.image_size)]
            env = {"MMAD_CACHE_DIR": str(cache), **({"PYTHONPATH": str(src)} if src else {})}
            wall, cpu, run = timed([sys.executable, *command], env)
            if run.returncode != 0:
                sys.exit(f"mmad eval ({tag}) failed: {run.stderr[-2000:]}")
            return wall, cpu

        for round_ in range(args.rounds):
            empty = scratch / f"cache-empty-{round_}"
            full = scratch / f"cache-full-{round_}"
            fill_with_other_replies(full, OTHER_REPLIES)
            wall, cpu, bare = timed(bare_command)
            if bare.returncode != 0 or int(bare.stdout.strip()) != n:
                sys.exit(f"the bare loop failed: {bare.stderr[-2000:]}")
            results["bare"].append((wall, cpu))
            results["empty"].append(mmad("empty", empty))
            results["full"].append(mmad("full", full))
            results["warm"].append(mmad("warm", empty))  # the empty run's own replies are in it now
            if args.compare_src:
                old_full = scratch / f"cache-old-full-{round_}"
                fill_old_style(old_full, OTHER_REPLIES)
                results["other empty"].append(mmad("other empty", scratch / f"old-{round_}", src=args.compare_src))
                results["other full"].append(mmad("other full", old_full, src=args.compare_src))
            row = ", ".join(
                f"{k} {v[-1][0]:.1f} s ({n / v[-1][0]:.0f} q/s, CPU {v[-1][1]:.1f} s)" for k, v in results.items()
            )
            print(f"round {round_ + 1}: {row}", flush=True)
        if args.profile:
            mmad("profile", scratch / "cache-profile", ("-m", "cProfile", "-o", str(args.profile)))
    print(f"\n{n} requests, concurrency {CONCURRENCY}, server latency {LATENCY} s, {os.cpu_count()} cores")
    missed = []
    for tag in [t for t in results if t != "bare"]:
        ratios = [b[0] / m[0] for b, m in zip(results["bare"], results[tag], strict=True)]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        judged = f" (target >= {TARGET}x)" if tag in ("empty", "full") else ""
        median = statistics.median(ratios)
        print(f"mmad eval, cache {tag}: its rate / the bare loop's, per round {each}; median {median:.2f}x{judged}")
        if judged and median < TARGET:
            missed.append(tag)
    bare_rate = statistics.median(n / w for w, _ in results["bare"])
    bare_cpu = statistics.median(c for _, c in results["bare"])
    print(f"bare AsyncOpenAI loop: median {bare_rate:.0f} q/s, CPU {bare_cpu:.1f} s")
    if args.profile:
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)
    if missed:
        sys.exit(f"below the target with the cache {' and '.join(missed)}")


if __name__ == "__main__":
    main()
