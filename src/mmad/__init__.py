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
from typing import Any

from mmad._version import __version__ as __version__

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
