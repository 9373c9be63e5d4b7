"""`mmad eval` against a bare `AsyncOpenAI` loop sending the same requests, whole processes.

Target (issue #17): at least 0.9x the bare loop's rate against a local server with 200 ms latency
at concurrency 64, start-up included. Both send the same texts and the same image bytes
(mmad with --original-images, the bare loop the files' base64), one after the other against one
`mmad serve` process; each is timed from process start to exit. The bare loop is
bench/bare_openai_loop.py: the openai SDK's `chat.completions.create` over its aiohttp
transport, a semaphore, nothing else.

    python bench/bench_eval_vs_bare.py [--questions 6000] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fullsize_data import fullsize_root
from mmad.data.official import load_benchmark
from mmad.protocol.messages import ImagePart, TextPart
from mmad.protocol.strategies import parse_strategies
from mmad.run.config import RunConfig
from mmad.run.plan import Planner, select_questions
from serve_process import serving, timed

CONCURRENCY = 64
LATENCY = 0.2
TARGET = 0.9


def prepared_requests(data: Path, limit: int, folder: Path) -> Path:
    """mmad's own requests for the first `limit` sampled questions, as text parts and image files."""
    config = RunConfig.from_flat("mmad:random", str(data), limit=limit, original_images=True, detail=None)
    benchmark = load_benchmark(data)
    selection = select_questions(benchmark, config.selection, config.prompt_settings())
    planner = Planner(benchmark, config.prompt_settings(), parse_strategies([]))
    requests = []
    for prompt in planner.prompts(selection.items):
        parts = []
        for part in prompt.messages[0].parts:
            parts.append({"text": part.text} if isinstance(part, TextPart) else {"image": str(part.path)})
            assert isinstance(part, TextPart | ImagePart)
        requests.append(parts)
    path = folder / "requests.json"
    path.write_text(json.dumps(requests))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=6000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mmad-bench")
    args = parser.parse_args()
    data = fullsize_root(args.cache, size=512, suffix=".jpg")
    with tempfile.TemporaryDirectory() as scratch, serving(latency=LATENCY) as base_url:
        requests = prepared_requests(data, args.questions, Path(scratch))
        n = len(json.loads(requests.read_text()))
        bare_s, bare_cpu, bare = timed(
            [
                sys.executable,
                str(Path(__file__).parent / "bare_openai_loop.py"),
                str(requests),
                base_url,
                str(CONCURRENCY),
            ]
        )
        if bare.returncode != 0 or int(bare.stdout.strip()) != n:
            sys.exit(f"the bare loop failed: {bare.stderr[-2000:]}")
        eval_command = [
            *(sys.executable, "-m", "mmad", "eval", "-m", "mmad:random", "--base-url", base_url, "-d", str(data)),
            *(
                "--out",
                str(Path(scratch) / "run"),
                "-c",
                str(CONCURRENCY),
                "--no-cache",
                "--limit",
                str(args.questions),
            ),
            *("--original-images", "--detail", "none"),
        ]
        mmad_s, mmad_cpu, run = timed(eval_command)
        if run.returncode != 0:
            sys.exit(f"mmad eval failed: {run.stderr[-2000:]}")
    ratio = bare_s / mmad_s
    print(f"{n} requests, concurrency {CONCURRENCY}, server latency {LATENCY} s, {os.cpu_count()} cores")
    print(f"bare AsyncOpenAI loop: {bare_s:.1f} s ({n / bare_s:.0f} q/s), whole process; CPU {bare_cpu:.1f} s")
    print(f"mmad eval:             {mmad_s:.1f} s ({n / mmad_s:.0f} q/s), whole process; CPU {mmad_cpu:.1f} s")
    print(f"mmad / bare rate: {ratio:.2f}x (target >= {TARGET}x)")
    if ratio < TARGET:
        sys.exit("below the target")


if __name__ == "__main__":
    main()
