"""The public API is exactly these names; each resolves to its definition. Library code never prints."""

import ast
import importlib
from pathlib import Path

import pytest

import mmad

PUBLIC = [
    "Benchmark",
    "Completion",
    "GradedAnswer",
    "ImageItem",
    "Metric",
    "Model",
    "ModelOptions",
    "Policy",
    "Question",
    "Record",
    "Request",
    "RunConfig",
    "RunFolder",
    "RunResult",
    "ScoreTable",
    "Solver",
    "Status",
    "Subtask",
    "__version__",
    "build_benchmark",
    "build_leaderboard",
    "compare_runs",
    "create_model",
    "describe",
    "download",
    "evaluate",
    "evaluate_async",
    "load_answers",
    "load_benchmark",
    "load_published",
    "load_published_results",
    "make_synthetic_dataset",
    "open_run",
    "read_accuracy_csv",
    "read_official_answers",
    "register_metric",
    "register_solver",
    "score_answers",
    "validate",
    "write_benchmark",
    "write_html_report",
]


def test_the_public_names_are_pinned() -> None:
    assert mmad.__all__ == PUBLIC
    assert sorted(dir(mmad)) == sorted(PUBLIC)


def test_every_public_name_resolves_to_its_definition() -> None:
    for name in PUBLIC:
        value = getattr(mmad, name)
        assert value is not None
        if name != "__version__":
            assert getattr(importlib.import_module(mmad._EXPORTS[name]), name) is value
    assert isinstance(mmad.__version__, str) and mmad.__version__.count(".") == 2


def test_unknown_names_raise() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mmad.nope


@pytest.mark.subprocess
def test_importing_mmad_loads_no_heavy_library() -> None:
    import subprocess
    import sys

    heavy = "('openai', 'scipy', 'matplotlib', 'torch', 'numpy')"
    code = f"import sys, mmad; print(','.join(m for m in {heavy} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_library_code_never_prints() -> None:
    root = Path(mmad.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "cli" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
