"""The zero-setup demo: a synthetic dataset, its MMAD-style benchmark, and the models that run
here, evaluated through the same engine and HTTP client path as a real MLLM API, and the tool-using
inspector (``--strategy tools``) against the scripted tool user.

Its numbers are a smoke test of the pipeline, not comparable with MMAD's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mmad.api import evaluate_async
from mmad.builder.build import build_benchmark
from mmad.builder.synthetic import DATASET_NAME, make_synthetic_dataset
from mmad.data.official import load_benchmark
from mmad.errors import RunError
from mmad.models.base import Model
from mmad.models.baselines import RandomModel
from mmad.report.html import write_html_report
from mmad.run.config import RunConfig
from mmad.run.engine import EngineStats
from mmad.run.finish import RunResult
from mmad.run.scoring import ScoredRun, score_run
from mmad.score.metrics import Bootstrap
from mmad.serve.scripted_tools import ScriptedToolUser
from mmad.serve.server import ChatServer, serve_in_thread

logger = logging.getLogger(__name__)
SMOKE_TEST_LABEL = "smoke test on synthetic data: not comparable with published MMAD results"
TOOLS_DEMO_MODEL = "scripted-tools"
TOOLS_DEMO_QUESTIONS = 60
"""The tools run asks a sample of the questions: each costs several requests and tool calls."""
DEMO_PERTURB = "dark=0.5"
"""The demo's perturbation, of the expert's run (the random model's answers ignore the image, so its
change would be about 0): a dimmer lamp costs the expert about 16 points of accuracy and of AUROC on the
demo data, as fast as its clean run (blur=2 and noise=0.03 cost less and take longer to apply)."""
DEMO_BOOTSTRAP = Bootstrap(samples=500, seed=0)
"""The demo's intervals: fewer resamples than `--ci`'s 1000, enough for its few hundred questions."""


@dataclass
class DemoResult:
    """The demo's benchmark and one run per model."""

    folder: Path
    benchmark: Path
    runs: dict[str, RunResult] = field(default_factory=dict)
    scored: dict[str, ScoredRun] = field(default_factory=dict)
    """Each run scored with intervals (`DEMO_BOOTSTRAP`): every metric, the expert's operating points."""
    report: Path | None = None
    """report.html of the runs: intervals, metrics, cost and quality."""


def demo_models() -> dict[str, Callable[[], Model]]:
    """The models that run on this machine: the random baseline, and the visual expert when torch is here."""
    models: dict[str, Callable[[], Model]] = {"random": lambda: RandomModel(seed=0)}
    if importlib.util.find_spec("efficientnet_lite_pytorch") and importlib.util.find_spec("mmad.models.expert_model"):
        from mmad.models.expert_model import ExpertModel

        models["expert"] = lambda: ExpertModel.from_name("")
    return models


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread while the expert runs (restored after). The run's two workers already fill
    two cores; with two torch threads each, torch's threads spin waiting for cores the other worker
    holds (on a shared 2-core box one image's features took 500 ms of CPU that way, 26 ms on one thread)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


DEMO_MARKER = ".mmad-demo"


def prepare_demo_folder(root: Path, *, replace: bool) -> None:
    """Make `root` ready for the demo. Only a folder an earlier demo made is ever removed, and only
    when asked (`replace`); any other existing content is refused, never touched."""
    if root.exists() and not root.is_dir():
        msg = f"{root} is a file; give --out a folder for the demo to write"
        raise RunError(msg)
    if root.is_dir() and any(p.name != DEMO_MARKER for p in root.iterdir()):
        if not (root / DEMO_MARKER).is_file():
            msg = f"{root} exists and was not made by `mmad demo`; nothing was changed. Choose another --out"
            raise RunError(msg)
        if not replace:
            msg = f"{root} holds an earlier demo; pass --force to replace it, or choose another --out"
            raise RunError(msg)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("made by mmad demo; `mmad demo --force` may replace this folder\n")


def run_tools_demo(
    result: DemoResult, *, expert: bool, on_progress: Callable[[str, EngineStats], None] | None = None
) -> RunResult:
    """``--strategy tools`` over HTTP against the scripted tool user (`mmad serve -m scripted-tools`):
    it asks the expert and zooms into its box where the expert runs here, otherwise it zooms and looks
    at a normal reference; the direct branch beside it, the two blended 50/50."""
    user = ScriptedToolUser("expert,zoom" if expert else "zoom,reference")
    progress = (lambda stats: on_progress(TOOLS_DEMO_MODEL, stats)) if on_progress else None
    with serve_in_thread(ChatServer(user, model_name=TOOLS_DEMO_MODEL)) as server, one_torch_thread():
        config = RunConfig.from_flat(
            f"mmad:{TOOLS_DEMO_MODEL}",
            str(result.benchmark),
            base_url=server.base_url,
            strategies="tools",
            blend=0.5,
            likelihood=True,
            limit=TOOLS_DEMO_QUESTIONS,
            concurrency=4,
            cache=False,
        )
        return asyncio.run(evaluate_async(config, out=result.folder / "runs" / TOOLS_DEMO_MODEL, on_progress=progress))


def run_demo(
    folder: str | Path = "mmad-demo",
    *,
    seed: int = 0,
    fresh: bool = False,
    on_progress: Callable[[str, EngineStats], None] | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> DemoResult:
    """Generate, build, serve and evaluate; returns the runs. ``on_step`` is called with (step, done,
    total) while the dataset is generated ('generating'), its benchmark built ('building') and the
    expert fitted, category by category ('fitting the expert')."""
    root = Path(folder)
    prepare_demo_folder(root, replace=fresh)
    generating = (lambda done, total: on_step("generating", done, total)) if on_step else None
    source = make_synthetic_dataset(root / "source", seed=seed, progress=generating)
    bench_dir = root / "benchmark"
    building = (lambda done, total: on_step("building", done, total)) if on_step else None
    build_benchmark(source.root, bench_dir, name=DATASET_NAME, seed=seed, knowledge=source.knowledge, progress=building)
    result = DemoResult(folder=root, benchmark=bench_dir / "mmad.json")
    for name, factory in demo_models().items():
        progress = (lambda stats, n=name: on_progress(n, stats)) if on_progress else None
        model = factory()
        if name == "random":
            # Through HTTP and the OpenAI-compatible client: the path a real MLLM API takes.
            with serve_in_thread(ChatServer(model, model_name=name)) as server:
                config = RunConfig.from_flat(
                    f"mmad:{name}",
                    str(result.benchmark),
                    base_url=server.base_url,
                    concurrency=8,
                    cache=False,
                    image_size=None,
                    detail=None,
                )
                run = asyncio.run(evaluate_async(config, out=root / "runs" / name, on_progress=progress))
        else:
            # In process, so the expert sees image paths and uses its per-category calibration. Fitted
            # here to show progress per category; the run's own prepare finds each fit already made.
            fitting = (lambda _category, done, total: on_step("fitting the expert", done, total)) if on_step else None
            config = RunConfig.from_flat(name, str(result.benchmark), concurrency=2, cache=False)
            from mmad.models.expert_model import ExpertModel

            with one_torch_thread():
                if isinstance(model, ExpertModel):
                    model.prepare(load_benchmark(result.benchmark), on_category=fitting)
                run = asyncio.run(evaluate_async(config, out=root / "runs" / name, model=model, on_progress=progress))
                result.runs[name] = run
                result.scored[name] = score_run(run.run_dir, bootstrap=DEMO_BOOTSTRAP)
                # The same run under a dimmer lamp (the same fitted model): the report's robustness
                # section and `mmad compare` pair the two, with paired intervals.
                dark = RunConfig.from_flat(
                    name, str(result.benchmark), concurrency=2, cache=False, perturb=DEMO_PERTURB
                )
                dim = f"{name}-{DEMO_PERTURB.replace('=', '')}"
                dim_progress = (lambda stats, n=dim: on_progress(n, stats)) if on_progress else None
                result.runs[dim] = asyncio.run(
                    evaluate_async(dark, out=root / "runs" / dim, model=model, on_progress=dim_progress)
                )
            result.scored[dim] = score_run(root / "runs" / dim, bootstrap=DEMO_BOOTSTRAP)
            continue
        result.runs[name] = run
        result.scored[name] = score_run(run.run_dir, bootstrap=DEMO_BOOTSTRAP)
    tools_run = run_tools_demo(result, expert="expert" in result.runs, on_progress=on_progress)
    result.runs[TOOLS_DEMO_MODEL] = tools_run
    result.scored[TOOLS_DEMO_MODEL] = score_run(tools_run.run_dir, bootstrap=DEMO_BOOTSTRAP)
    # published MMAD rows stay out: the demo's synthetic figures are not comparable with them
    runs = [scored.run for scored in result.scored.values() if scored.run is not None]
    result.report = write_html_report(
        runs, root / "report.html", published=[], title=f"mmad demo — {SMOKE_TEST_LABEL}", bootstrap=DEMO_BOOTSTRAP
    )
    return result
