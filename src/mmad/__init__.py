"""mmad: test multimodal LLMs as industrial quality inspectors.

The MMAD benchmark (Jiang et al., ICLR 2025) as data, its official evaluation protocol against
any OpenAI-compatible model, the paper's training-free strategies, a builder for MMAD-style
benchmarks from your own defect images, and a scorer that reproduces the paper's tables.

    >>> import mmad
    >>> bench = mmad.load_benchmark("data/MMAD")            # doctest: +SKIP
    >>> run = mmad.evaluate("openai:gpt-4o", "data/MMAD")   # doctest: +SKIP
    >>> run.table.average                                   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmad._version import __version__ as __version__

if TYPE_CHECKING:  # a type checker and an IDE see the exports' own signatures; at run time they load on first use
    from mmad.api import evaluate as evaluate
    from mmad.api import evaluate_async as evaluate_async
    from mmad.builder.build import build_benchmark as build_benchmark
    from mmad.builder.synthetic import make_synthetic_dataset as make_synthetic_dataset
    from mmad.data.hub import download as download
    from mmad.data.info import describe as describe
    from mmad.data.official import load_benchmark as load_benchmark
    from mmad.data.official import write_benchmark as write_benchmark
    from mmad.data.schema import Benchmark as Benchmark
    from mmad.data.schema import ImageItem as ImageItem
    from mmad.data.schema import Question as Question
    from mmad.data.schema import Subtask as Subtask
    from mmad.data.validate import validate as validate
    from mmad.models.base import Completion as Completion
    from mmad.models.base import Model as Model
    from mmad.models.base import Request as Request
    from mmad.models.registry import ModelOptions as ModelOptions
    from mmad.models.registry import create_model as create_model
    from mmad.records.record import Record as Record
    from mmad.records.record import Status as Status
    from mmad.report.html import write_html_report as write_html_report
    from mmad.report.leaderboard import build_leaderboard as build_leaderboard
    from mmad.run.config import RunConfig as RunConfig
    from mmad.run.finish import RunResult as RunResult
    from mmad.run.folder import RunFolder as RunFolder
    from mmad.run.folder import open_run as open_run
    from mmad.score.answers import GradedAnswer as GradedAnswer
    from mmad.score.answers import read_official_answers as read_official_answers
    from mmad.score.compare import compare_runs as compare_runs
    from mmad.score.load import load_answers as load_answers
    from mmad.score.metrics.base import Metric as Metric
    from mmad.score.metrics.registry import register_metric as register_metric
    from mmad.score.official_csv import load_published as load_published
    from mmad.score.official_csv import read_accuracy_csv as read_accuracy_csv
    from mmad.score.published import load_published_results as load_published_results
    from mmad.score.table import Policy as Policy
    from mmad.score.table import ScoreTable as ScoreTable
    from mmad.score.table import score_answers as score_answers
    from mmad.solvers.base import Solver as Solver
    from mmad.solvers.base import register_solver as register_solver

# Public name -> the module that defines it. Loaded on first use, so `import mmad` (and the CLI)
# starts fast and the heavy dependencies (scipy, the openai SDK) load only when needed.
_EXPORTS = {
    "Benchmark": "mmad.data.schema",
    "ImageItem": "mmad.data.schema",
    "Question": "mmad.data.schema",
    "Subtask": "mmad.data.schema",
    "load_benchmark": "mmad.data.official",
    "write_benchmark": "mmad.data.official",
    "validate": "mmad.data.validate",
    "describe": "mmad.data.info",
    "download": "mmad.data.hub",
    "build_benchmark": "mmad.builder.build",
    "make_synthetic_dataset": "mmad.builder.synthetic",
    "Model": "mmad.models.base",
    "Request": "mmad.models.base",
    "Completion": "mmad.models.base",
    "create_model": "mmad.models.registry",
    "ModelOptions": "mmad.models.registry",
    "Record": "mmad.records.record",
    "Status": "mmad.records.record",
    "RunFolder": "mmad.run.folder",
    "open_run": "mmad.run.folder",
    "RunConfig": "mmad.run.config",
    "RunResult": "mmad.run.finish",
    "evaluate": "mmad.api",
    "evaluate_async": "mmad.api",
    "GradedAnswer": "mmad.score.answers",
    "read_official_answers": "mmad.score.answers",
    "load_answers": "mmad.score.load",
    "Policy": "mmad.score.table",
    "ScoreTable": "mmad.score.table",
    "score_answers": "mmad.score.table",
    "compare_runs": "mmad.score.compare",
    "load_published": "mmad.score.official_csv",
    "load_published_results": "mmad.score.published",
    "build_leaderboard": "mmad.report.leaderboard",
    "write_html_report": "mmad.report.html",
    "read_accuracy_csv": "mmad.score.official_csv",
    "Metric": "mmad.score.metrics.base",
    "register_metric": "mmad.score.metrics.registry",
    "Solver": "mmad.solvers.base",
    "register_solver": "mmad.solvers.base",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'mmad' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
