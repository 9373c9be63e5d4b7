"""The zero-setup demo: a synthetic dataset, its MMAD-style benchmark, and the models that run
here, evaluated through the same engine and HTTP client path as a real MLLM API.

Its numbers are a smoke test of the pipeline, not comparable with MMAD's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mmad.builder.build import build_benchmark
from mmad.builder.synthetic import DATASET_NAME, make_synthetic_dataset
from mmad.models.base import Model
from mmad.models.baselines import RandomModel
from mmad.run.config import RunConfig
from mmad.run.engine import EngineStats
from mmad.run.evaluate import RunResult, evaluate_async
from mmad.serve.server import ChatServer, serve_in_thread

logger = logging.getLogger(__name__)
SMOKE_TEST_LABEL = "smoke test on synthetic data: not comparable with published MMAD results"


@dataclass
class DemoResult:
    """The demo's benchmark and one run per model."""

    folder: Path
    benchmark: Path
    runs: dict[str, RunResult] = field(default_factory=dict)


def demo_models() -> dict[str, Callable[[], Model]]:
    """The models that run on this machine: the random baseline, and the visual expert when torch is here."""
    models: dict[str, Callable[[], Model]] = {"random": lambda: RandomModel(seed=0)}
    if importlib.util.find_spec("efficientnet_lite_pytorch") and importlib.util.find_spec("mmad.models.expert_model"):
        from mmad.models.expert_model import ExpertModel

        models["expert"] = lambda: ExpertModel.from_name("")
    return models


def run_demo(
    folder: str | Path = "mmad-demo",
    *,
    seed: int = 0,
    fresh: bool = True,
    on_progress: Callable[[str, EngineStats], None] | None = None,
) -> DemoResult:
    """Generate, build, serve and evaluate; returns the runs."""
    root = Path(folder)
    if fresh and root.exists():
        shutil.rmtree(root)
    source = make_synthetic_dataset(root / "source", seed=seed)
    bench_dir = root / "benchmark"
    build_benchmark(source.root, bench_dir, name=DATASET_NAME, seed=seed, knowledge=source.knowledge)
    result = DemoResult(folder=root, benchmark=bench_dir / "mmad.json")
    for name, factory in demo_models().items():
        progress = (lambda stats, n=name: on_progress(n, stats)) if on_progress else None
        model = factory()
        if name == "random":
            # Through HTTP and the OpenAI-compatible client: the path a real MLLM API takes.
            with serve_in_thread(ChatServer(model, model_name=name)) as server:
                config = RunConfig(
                    model=f"mmad:{name}",
                    data=str(result.benchmark),
                    base_url=server.base_url,
                    concurrency=8,
                    cache=False,
                    image_size=None,
                    detail=None,
                )
                run = asyncio.run(evaluate_async(config, out=root / "runs" / name, on_progress=progress))
        else:
            # In process, so the expert sees image paths and uses its per-category calibration.
            config = RunConfig(model=name, data=str(result.benchmark), concurrency=2, cache=False)
            run = asyncio.run(evaluate_async(config, out=root / "runs" / name, model=model, on_progress=progress))
        result.runs[name] = run
    return result
