"""`mmad sweep`: a grid over two backends (random in process, mmad:random over HTTP), killed and resumed."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmad.errors import ConfigError, RunError
from mmad.records.record import read_records
from mmad.run.sweep import SweepSpec, run_sweep
from mmad.run.sweep_table import sweep_rows, write_sweep_table
from tests.helpers.serving import running_server

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _grid(tmp_path: Path, mmad_json: Path, base_url: str, **extra: object) -> Path:
    lines = [
        "[sweep]",
        f'data = "{mmad_json}"',
        f'models = ["random", {{ name = "mmad:random", base_url = "{base_url}", label = "http" }}]',
        "shots = [0, 1]",
        'templates = ["random", "similar"]',
        "parallel = 2",
        *(f"{k} = {json.dumps(v)}" for k, v in extra.items()),
        "[sweep.settings]",
        "limit = 24",
        "concurrency = 2",
        f'cache_dir = "{tmp_path / "cache"}"',
    ]
    path = tmp_path / "grid.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cells_are_named_from_the_grid_and_zero_shots_are_asked_once(mmad_json: Path) -> None:
    spec = SweepSpec.parse(
        {
            "data": str(mmad_json),
            "models": ["random", {"name": "mmad:random", "base_url": "http://127.0.0.1:9/v1", "label": "http"}],
            "shots": [0, 1],
            "templates": ["random", "similar"],
            "strategies": ["none", "rag+cot"],
            "circular": [False, True],
        }
    )
    names = [c.name for c in spec.cells()]
    assert len(names) == len(set(names)) == 2 * 3 * 2 * 2  # 0-shot: one template kind
    assert "random_per-question_1shot_similar_rag+cot_circular" in names
    assert "http_per-question_0shot_random_plain" in names
    cell = next(c for c in spec.cells() if c.name == "http_per-question_1shot_similar_rag+cot_circular")
    assert cell.config.connection.base_url == "http://127.0.0.1:9/v1"
    assert cell.config.prompt.similar_templates and cell.config.prompt.circular
    assert cell.config.prompt.strategies == ["rag", "cot"]


def test_a_bad_cell_is_named_before_anything_runs(mmad_json: Path, tmp_path: Path) -> None:
    spec = SweepSpec.parse(
        {"data": str(mmad_json), "models": ["random"], "protocols": ["cumulative"], "strategies": ["cot"]}
    )
    with pytest.raises(ConfigError, match=r"sweep cell random_cumulative_1shot_random_cot"):
        asyncio.run(run_sweep(spec, tmp_path / "sweep"))
    assert not (tmp_path / "sweep").exists()
    with pytest.raises(ConfigError, match=r"shots\.0"):
        SweepSpec.parse({"data": "d", "models": ["random"], "shots": ["many"]})
    # Checked against the benchmark before any cell runs: the test data has no domain_knowledge.json.
    rag = SweepSpec.parse({"data": str(mmad_json), "models": ["random"], "strategies": ["none", "rag"]})
    with pytest.raises(ConfigError, match=r"sweep cell random_per-question_1shot_random_rag: .*domain_knowledge"):
        asyncio.run(run_sweep(rag, tmp_path / "rag"))
    assert not (tmp_path / "rag").exists()
    with pytest.raises(RunError, match=r"cannot be read"):
        asyncio.run(run_sweep(None, tmp_path / "nothing", resume=True))


def test_the_shipped_paper_ablations_grid_is_valid() -> None:
    spec = SweepSpec.from_file(DOCS / "sweeps" / "paper-ablations.toml")
    cells = spec.cells()
    assert len(cells) == 2 * (3 * 2 * 4 + 3)  # 0 shots: one template kind, no agent
    assert {tuple(c.config.prompt.strategies) for c in cells} == {(), ("rag",), ("cot",), ("agent:expert:bbox",)}
    assert {c.config.prompt.shots for c in cells} == {0, 1, 2, 4}
    assert len(spec.skipped) == 2 and all("0shot" in name and "agent" in name for name in spec.skipped)
    assert all("needs --shots 1 or more" in reason for reason in spec.skipped.values())


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_completes_every_cell(mmad_json: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    folder = tmp_path / "sweep"
    with running_server(latency_s=0.03) as server:
        grid = _grid(tmp_path, mmad_json, server.base_url)
        process = subprocess.Popen(
            [sys.executable, "-m", "mmad", "sweep", str(grid), "--out", str(folder)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        finished_before: dict[str, bytes] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                cells = json.loads((folder / "sweep.json").read_text())["cells"]
            except (OSError, ValueError, KeyError):
                cells = {}
            done = [n for n, c in cells.items() if c["status"] == "complete"]
            if done and len(done) < len(cells):
                finished_before = {n: (folder / n / "records.jsonl").read_bytes() for n in done}
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        assert finished_before, "the sweep finished before it could be killed"
        resumed = subprocess.run(
            [sys.executable, "-m", "mmad", "sweep", "--resume", str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads((folder / "sweep.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["cells"]) == 6
    assert all(c["status"] == "complete" for c in manifest["cells"].values())
    for name in finished_before:  # a cell complete before the kill is not asked again
        assert (folder / name / "records.jsonl").read_bytes() == finished_before[name]
    for name in manifest["cells"]:
        records = read_records(folder / name / "records.jsonl")
        assert len(records) == len({r.key for r in records}) == 24
        assert json.loads((folder / name / "run.json").read_text())["config"]["execution"]["cache_dir"] == str(
            tmp_path / "cache"
        )
        assert (folder / name / "scores.json").exists() or any((folder / name).glob("scores.*"))
    assert any((tmp_path / "cache").rglob("*.json"))  # one response cache, shared by the cells
    rows = list(csv.DictReader((folder / "sweep_table.csv").read_text().splitlines()))
    assert [r["cell"] for r in rows] == list(manifest["cells"])
    assert all(r["status"] == "complete" and r["average"] for r in rows)
    assert "| Cell | Model | Status |" in (folder / "sweep_table.md").read_text()
    assert (folder / "report.html").exists()
    assert "http_per-question_1shot_similar_plain" in resumed.stdout


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_on_ray_runs_its_cells_on_the_actor_pools(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    with running_server(latency_s=0.01) as server:
        spec = SweepSpec.from_file(_grid(tmp_path, mmad_json, server.base_url))
        spec = spec.model_copy(update={"settings": {**spec.settings, "engine": "ray", "ray_actors": 1}})
        result = asyncio.run(run_sweep(spec, tmp_path / "sweep"))
    assert result.complete and len(result.cells) == 6
    rows = sweep_rows(tmp_path / "sweep")
    assert all(r.status == "complete" and r.asked == 24 and r.average is not None for r in rows)
    meta = json.loads((tmp_path / "sweep" / rows[0].cell / "run.json").read_text())
    assert meta["config"]["execution"]["engine"] == "ray"


def test_a_circular_cell_shows_its_circular_accuracy(mmad_json: Path, tmp_path: Path) -> None:
    """A model that always answers A is right on the plain posing when A is gold, never on every rotation."""
    spec = SweepSpec.parse(
        {
            "data": str(mmad_json),
            "models": ["fixed:A"],
            "shots": [0],
            "circular": [False, True],
            "settings": {"limit": 20, "cache": False},
        }
    )
    asyncio.run(run_sweep(spec, tmp_path / "sweep"))
    write_sweep_table(tmp_path / "sweep")
    rows = {row.cell: row for row in sweep_rows(tmp_path / "sweep")}
    plain = next(r for name, r in rows.items() if not name.endswith("_circular"))
    rotated = next(r for name, r in rows.items() if name.endswith("_circular"))
    assert plain.circular is None and plain.average is not None and plain.average > 0
    assert rotated.average == plain.average, "the plain columns are the unrotated posing's in both cells"
    assert rotated.circular == 0.0
    text = (tmp_path / "sweep" / "sweep_table.md").read_text()
    assert "| Circular |" in text
    table = list(csv.DictReader((tmp_path / "sweep" / "sweep_table.csv").read_text().splitlines()))
    assert [float(r["circular"]) if r["circular"] else None for r in table] == [None, 0.0]


def test_grid_settings_are_checked_against_the_whole_grid() -> None:
    # knowledge is used by the rag cells, so the plain cells carry it without complaint
    spec = SweepSpec.parse(
        {"data": "d", "models": ["random"], "strategies": ["none", "rag"], "settings": {"knowledge": "k.json"}}
    )
    assert len(spec.cells()) == 2
    unused = SweepSpec.parse({"data": "d", "models": ["random"], "settings": {"knowledge": "k.json"}})
    with pytest.raises(ConfigError, match=r"\[settings\] knowledge: no cell would use it: --knowledge is the"):
        unused.cells()
    # a model's own settings are checked for its cells
    own = SweepSpec.parse({"data": "d", "models": [{"name": "random", "device": "cuda"}]})
    with pytest.raises(ConfigError, match=r"sweep cell random_.*--device applies to in-process models"):
        own.cells()
    # $RAY_ADDRESS feeds the sweep's ray_address: on the local engine it is only a warning
    assert SweepSpec.parse({"data": "d", "models": ["random"], "settings": {"ray_address": "auto"}}).cells()


def test_a_cell_without_a_reply_shows_no_figures(mmad_json: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = SweepSpec.parse(
        {
            "data": str(mmad_json),
            "models": ["fixed:A", {"name": "compat:x", "base_url": f"http://127.0.0.1:{port}/v1", "label": "dead"}],
            "shots": [0],
            "settings": {"limit": 5, "cache": False, "max_retries": 0, "max_errors": 2},
        }
    )
    asyncio.run(run_sweep(spec, tmp_path / "sweep"))
    write_sweep_table(tmp_path / "sweep")
    rows = {row.model: row for row in sweep_rows(tmp_path / "sweep")}
    assert rows["compat:x"].average is None and rows["compat:x"].subtasks == {}
    assert rows["fixed:A"].average is not None
    table = list(csv.DictReader((tmp_path / "sweep" / "sweep_table.csv").read_text().splitlines()))
    dead = next(r for r in table if r["model"] == "compat:x")
    assert dead["average"] == "" and dead["Anomaly Discrimination"] == ""
