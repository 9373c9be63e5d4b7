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


# A backend reads a request's structured questions (models.base.Request.questions), never the prompt's
# text: it imports neither the reply parser nor the prompt builders, and holds none of the prompt's wording.
PROMPT_TEXT_MODULES = (
    "mmad.protocol.parse",
    "mmad.protocol.prompts",
    "mmad.protocol.official_text",
    "mmad.protocol.strategies",
    "mmad.protocol.recipes",
    "mmad.protocol.agent",
)
PROMPT_HEAD = "Question"  # "Question:", "Question 2:" (case kept: a field named question_ids is no prompt)
PROMPT_PHRASES = ("is there any defect", "where is the defect", "any anomal")


def _prompt_text_readers(path: Path) -> list[str]:
    """What in a module reads prompt text: a prompt-text module imported, or the questions' wording in a
    string (docstrings aside: they may say what the module does not do). The reply's format ("Answer: A")
    is not looked for: a backend may answer in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [f"{path.name}:{line} imports {target}" for line, target in _imports(path) if target in PROMPT_TEXT_MODULES]
    docstrings = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words = [PROMPT_HEAD] if PROMPT_HEAD in node.value else []
            words += [w for w in PROMPT_PHRASES if w in node.value.lower()]
            found += [f"{path.name}:{node.lineno} matches prompt wording {w!r}" for w in words]
    return found


def test_no_backend_reads_the_prompt_text() -> None:
    problems = [p for path in sorted((ROOT / "models").rglob("*.py")) for p in _prompt_text_readers(path)]
    assert problems == []


def test_the_check_sees_a_backend_reading_prompt_text(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""Question: a docstring may say anything."""\n'
        "import re\n"
        "from mmad.protocol.parse import parse_answer\n"
        "BLOCK = re.compile(r'Question(?:\\s*\\d+)?:')\n"
        "def kind(stem):\n"
        "    return 'detect' if 'is there any defect' in stem.lower() else None\n"
    )
    assert _prompt_text_readers(probe) == [
        "probe.py:3 imports mmad.protocol.parse",
        "probe.py:4 matches prompt wording 'Question'",
        "probe.py:6 matches prompt wording 'is there any defect'",
    ]


# The engine's shape (issue #23): schedulers decide when, solvers what to ask, the ledger keeps the books.
SCHEDULERS = ("run/engine.py", "run/ray_engine.py", "run/ray_vllm.py", "run/ray_worker.py", "run/runner.py")
LEDGER = "run/ledger.py"


def _foreign_privates(path: Path) -> list[str]:
    """Private names a module takes from another module or object (``from m import _x``, ``other._x``),
    and classes built on another scheduler's (a subclass reaches into its privates as ``self._x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    schedulers = {"mmad." + p.removesuffix(".py").replace("/", ".") for p in SCHEDULERS}
    scheduler_names: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmad."):
            found += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names if a.name.startswith("_")]
            if node.module in schedulers:
                scheduler_names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in {"self", "cls"}):
                found.append(f"{path.name}:{node.lineno} reads .{node.attr}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in scheduler_names]
            found += [f"{path.name}:{node.lineno} builds {node.name} on {base}" for base in bases]
    return found


def _manifest_changes(path: Path) -> list[str]:
    """Where a module changes a run's manifest: writes run.json, replaces ``.manifest`` or ``meta[...]``,
    or derives a manifest with another model (``with_model``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr == "manifest":
                found.append(f"{path.name}:{node.lineno} assigns .manifest")
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Attribute)
                and target.value.attr == "meta"
            ):
                found.append(f"{path.name}:{node.lineno} assigns .meta[...]")
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in {"with_model", "write_manifest", "write_meta"}:
                found.append(f"{path.name}:{node.lineno} calls {name}")
    return found


def test_schedulers_and_solvers_use_no_other_module_s_privates() -> None:
    paths = [ROOT / p for p in (*SCHEDULERS, LEDGER, "run/caller.py", "run/ray_runner.py")]
    paths += sorted((ROOT / "solvers").glob("*.py"))
    assert [problem for path in paths for problem in _foreign_privates(path)] == []


def test_no_scheduler_or_solver_changes_the_manifest_mid_run_only_the_ledger_does() -> None:
    paths = [ROOT / p for p in (*SCHEDULERS, "run/caller.py", "run/ray_runner.py", "run/solving.py")]
    paths += sorted((ROOT / "solvers").glob("*.py"))
    assert [problem for path in paths for problem in _manifest_changes(path)] == []
    assert _manifest_changes(ROOT / LEDGER), "the ledger's describe_model is how a run's model changes mid-run"


def test_the_checks_see_a_foreign_private_and_a_manifest_change(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from mmad.run.engine import _aiter, Engine\n"
        "class Driver(Engine): pass\n"
        "def f(engine, prepared):\n"
        "    engine._should_stop()\n"
        "    prepared.manifest = prepared.manifest.with_model({})\n"
        "    prepared.meta['model'] = {}\n"
    )
    assert len(_foreign_privates(probe)) == 3
    assert len(_manifest_changes(probe)) == 3


# run.json is the run's manifest (issue #23): only run/manifest.py opens it for writing, and only the
# stages that start and end a session ask it to (H2's ledger will be the one place).
MANIFEST_MODULE = "run/manifest.py"
MANIFEST_WRITERS = {"run/prepare.py", "run/finish.py", "run/ledger.py"}  # the ledger: spending so far
WRITE_CALLS = {"write_text", "write_bytes", "atomic_write_text", "atomic_write_bytes", "atomic_writer", "dump"}


def _names_run_json(node: ast.AST, aliases: set[str]) -> bool:
    """Whether an expression mentions run.json: the literal, RUN_FILE, or a name bound to either."""
    for part in ast.walk(node):
        if isinstance(part, ast.Constant) and part.value == "run.json":
            return True
        if isinstance(part, ast.Name) and (part.id == "RUN_FILE" or part.id in aliases):
            return True
        if isinstance(part, ast.Attribute) and part.attr in {"RUN_FILE", "run_file"}:
            return True
    return False


def _run_json_writes(path: Path, root: Path = ROOT) -> list[str]:
    """Where a module writes a file whose path mentions run.json (a write call, or open() for writing)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]:
        aliases: set[str] = set()
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and _names_run_json(node.value, aliases):
                aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            touched = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(func, ast.Attribute):
                touched.append(func.value)
            mode = next((a.value for a in node.args[1:2] if isinstance(a, ast.Constant)), "r")
            writes = name in WRITE_CALLS or (name == "open" and isinstance(mode, str) and set(mode) & set("wax+"))
            if writes and any(_names_run_json(t, aliases) for t in touched):
                found.append(f"{path.relative_to(root)}:{node.lineno} writes run.json")
    return sorted(set(found))


def test_only_the_manifest_module_writes_run_json() -> None:
    writers = {p for path in sorted(ROOT.rglob("*.py")) for p in _run_json_writes(path)}
    assert {w.split(":")[0] for w in writers} == {MANIFEST_MODULE}, writers
    callers = set()
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = getattr(node.func, "id", getattr(node.func, "attr", "")) if isinstance(node, ast.Call) else ""
            if called == "write_manifest":
                callers.add(str(path.relative_to(ROOT)))
    assert callers == MANIFEST_WRITERS


def test_the_check_sees_a_run_json_write(tmp_path: Path) -> None:
    source = (
        "import json\n"
        "from mmad.records.folder import RUN_FILE\n"
        "def a(folder, meta):\n"
        "    (folder / RUN_FILE).write_text(json.dumps(meta))\n"
        "def b(folder, meta):\n"
        "    path = folder / 'run.json'\n"
        "    atomic_write_text(path, json.dumps(meta))\n"
        "def c(store, meta):\n"
        "    with open(store.run_file, 'w') as handle:\n"
        "        json.dump(meta, handle)\n"
        "def d(folder):\n"
        "    return (folder / RUN_FILE).read_text()\n"
    )
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert _run_json_writes(probe, tmp_path) == [f"probe.py:{n} writes run.json" for n in (4, 7, 9)]
