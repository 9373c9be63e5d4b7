"""Memory is bounded by concurrency, not by how many questions wait (issue #17).

The same run over HTTP against a slow server asks 150 and then 750 questions. While the engine
runs, a sampler collects garbage and reads the Python memory still held (tracemalloc, counted from
the start of the engine stage); the largest reading must not grow with the number of questions
waiting for a slot. The image cache's byte budget is made small here, so the images alone (about
30 kB each) would overflow it many times over if they were kept.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmad.protocol import images as image_module
from mmad.run.config import RunConfig
from mmad.run.finish import finish
from mmad.run.prepare import prepare
from mmad.run.runner import execute, make_engine
from tests.helpers.serving import running_server


def _benchmark(root: Path, n_images: int) -> Path:
    rng = np.random.default_rng(0)
    data = {}
    template = "MVTec-AD/widget/train/good/000.jpg"
    for key in [template] + [f"VisA/widget/test/bad/{i:04d}.jpg" for i in range(n_images)]:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(root / key, quality=95)
        if key == template:
            continue
        data[key] = {
            "mask_path": "",
            "random_templates": [template],
            "similar_templates": [],
            "conversation": [
                {
                    "Question": f"Question {j} about {key}?",
                    "Options": {k: f"option {k}" for k in "ABCD"},
                    "Answer": "A",
                    "type": "Defect Analysis",
                }
                for j in range(5)
            ],
        }
    (root / "mmad.json").write_text(json.dumps(data))
    return root / "mmad.json"


def _engine_peak(data: Path, base_url: str, out: Path, limit: int, *, trace: bool = True) -> int:
    config = RunConfig.from_flat(
        "mmad:random", str(data), base_url=base_url, cache=False, concurrency=8, limit=limit, image_size=None
    )

    async def run() -> int:
        prepared = prepare(config, out=out)
        engine = make_engine(prepared)
        if not trace:  # a warm-up: what it loads once per process is what counts, not its readings
            result = await finish(prepared, await execute(prepared, engine))
            assert result.complete
            return 0
        gc.collect()
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        held: list[int] = []

        async def sample() -> None:
            while True:
                await asyncio.sleep(0.05)
                gc.collect()
                held.append(tracemalloc.get_traced_memory()[0] - baseline)

        sampler = asyncio.create_task(sample())
        stats = await execute(prepared, engine)
        sampler.cancel()
        tracemalloc.stop()
        result = await finish(prepared, stats)
        assert result.complete and result.completeness.asked == limit
        assert len(held) >= 5 or limit < 100, "the run ended before the sampler could look"
        return max(held, default=0)

    return asyncio.run(run())


def _measure(root: Path) -> tuple[int, int]:
    """The peak memory held while asking 150 and then 750 questions (after a warm-up run)."""
    image_module.DEFAULT_CACHE_BYTES = 512 * 1024
    data = _benchmark(root / "data", 150)
    with running_server(latency_s=0.01) as server:
        # A first run imports the HTTP client and lets Python intern every image path once: both are
        # made once per process, not per question, and would otherwise count against the first run.
        _engine_peak(data, server.base_url, root / "warm-up", 750, trace=False)
        small = _engine_peak(data, server.base_url, root / "small", 150)
        large = _engine_peak(data, server.base_url, root / "large", 750)
    return small, large


@pytest.mark.slow
@pytest.mark.subprocess
def test_peak_memory_does_not_grow_with_waiting_questions(tmp_path: Path) -> None:
    # Measured in a fresh interpreter: in a test worker, what earlier tests left behind (a logger made
    # louder, a handler that keeps records, caches of their own) grows with the questions too, and the
    # reading would depend on which tests ran before (the whole suite once read 2.9 MB against 10.8 MB).
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "tests.run.test_memory_bound", str(tmp_path)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    small, large = json.loads(done.stdout.strip().splitlines()[-1])
    # 600 more questions waiting must not cost more than a fixed allowance (1 kB each would already
    # be 600 kB; keeping every image seen would be about 3.6 MB, request bodies tens of MB).
    assert large - small < 600_000, (small, large)
    assert large < 4_000_000, large


if __name__ == "__main__":
    print(json.dumps(_measure(Path(sys.argv[1]))))
