"""Data flows one way: every import in src/mmad goes down the layers, never up or sideways.

    errors < _io, _version < records, expert < data < protocol, score < models, tools < solvers < run, builder
    < report, serve < api (mmad.evaluate) < cli < the package's own __init__ / __main__

A package may import itself and any package of a lower layer; packages on the same layer do not
import each other. No exceptions are listed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mmad

ROOT = Path(mmad.__file__).parent
LAYERS: dict[str, int] = {
    "errors": 0,
    "_io": 1,
    "_version": 1,
    "records": 2,
    "expert": 2,
    "data": 3,
    "protocol": 4,
    "score": 4,
    "models": 5,
    "tools": 5,
    "solvers": 6,
    "run": 7,
    "builder": 7,
    "report": 8,
    "serve": 8,
    "api": 9,
    "cli": 10,
    "__init__": 11,
    "__main__": 11,
}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name inside mmad ('mmad.run.engine' -> 'run')."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "mmad"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "mmad":
                found += [(node.lineno, f"mmad.{alias.name}") for alias in node.names]
            elif node.module.startswith("mmad."):
                found.append((node.lineno, node.module))
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        unit = relative.parts[0].removesuffix(".py")
        assert unit in LAYERS, f"{relative}: a new top-level module or package needs a layer in this test"
        for line, target in _imports(path):
            other = _unit(target)
            if other == unit:
                continue
            assert other in LAYERS, f"{relative}:{line} imports {target}, which has no layer"
            if LAYERS[other] >= LAYERS[unit]:
                problems.append(
                    f"{relative}:{line} ({unit}, layer {LAYERS[unit]}) imports {target} (layer {LAYERS[other]})"
                )
    return problems


def test_imports_only_go_down_the_layers() -> None:
    assert _violations() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from mmad.cli.common import console\nimport mmad.report.html\nfrom mmad import api\n")
    assert [target for _, target in _imports(probe)] == ["mmad.cli.common", "mmad.report.html", "mmad.api"]
    assert LAYERS[_unit("mmad.cli.common")] > LAYERS["score"]
