"""`mmad sweep`: a grid over two backends (random in process, mmad:random over HTTP), killed and resumed."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import socket
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
        "similar_templates = [false, true]",
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
            "similar_templates": [False, True],
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
        {"data": str(mmad_json), "models": ["random"], "protocol": ["cumulative"], "strategies": ["cot"]}
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
    assert len(cells) == 2 * (3 * 2 * 8 + 7)  # 0 shots: one template kind, no expert agent (the oracle needs none)
    oracle = {(f"agent:gt:{n}",) for n in ("bbox", "contour", "highlight", "mask")}
    plain = {(), ("rag",), ("cot",), ("agent:expert:bbox",)}
    assert {tuple(c.config.prompt.strategies) for c in cells} == plain | oracle
    assert {c.config.prompt.shots for c in cells} == {0, 1, 2, 4}
    assert len(spec.skipped) == 2 and all("0shot" in name and "agent" in name for name in spec.skipped)
    assert all("needs --shots 1 or more" in reason for reason in spec.skipped.values())


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_killed_sweep_resumes_and_completes_every_cell(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

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
        # The kill needed a process of its own; the resume runs the CLI in this one.
        code = main(["sweep", "--resume", str(folder)])
        resumed = capsys.readouterr()
    assert code == 0, resumed.err[-3000:]
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
    assert (tmp_path / "cache" / "responses.sqlite3").is_file()  # one response cache, shared by the cells
    rows = list(csv.DictReader((folder / "sweep_table.csv").read_text().splitlines()))
    assert [r["cell"] for r in rows] == list(manifest["cells"])
    assert all(r["status"] == "complete" and r["average"] for r in rows)
    assert "| Cell | Model | Status |" in (folder / "sweep_table.md").read_text()
    assert (folder / "report.html").exists()
    assert "http_per-question_1shot_similar_plain" in resumed.out


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
    with pytest.raises(ConfigError, match=r"\[settings\] knowledge: no cell would use it: knowledge is the"):
        unused.cells()
    # a model's own settings are checked for its cells
    own = SweepSpec.parse({"data": "d", "models": [{"name": "random", "device": "cuda"}]})
    with pytest.raises(
        ConfigError, match=r"sweep cell random_.*: device applies to in-process models.*leave device out"
    ):
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


GRID_MISTAKES = [
    # two entries of one model would name the same cells: one used to be dropped without a word
    (
        'models = [{ name = "random", limit = 5 }, { name = "random", limit = 10 }]',
        r"models: 'random' and 'random' would both name their cells 'random', and one would be dropped; give each",
    ),
    ("shots = []", r"shots: is empty, so the grid has no cell; list at least one value, e.g. shots = \[0, 1\]"),
    ("similar_templates = []", r"similar_templates: is empty, so the grid has no cell"),
    ("strategies = []", r"strategies: is empty"),
    ("circular = []", r"circular: is empty"),
    ("protocol = []", r"protocol is empty, so the grid has no cell"),
    ('recipe = ["gpt4o"]\nprotocol = ["cumulative"]', r"protocol \['cumulative'\] would be ignored: each recipe"),
    ("shots = [true]", r"shots\.0: must be a valid integer \(got True\)"),
    ("circular = [1]", r"circular\.0: must be a valid boolean \(got 1\)"),
    ("parallel = true", r"parallel: must be a valid integer \(got True\)"),
    ("shot = [0]", r"'shot' is not a key of the grid; did you mean 'shots'\? known: data, models"),
    ("limit = 5", r"'limit' is a setting of every cell, not a key of the grid; write it under \[sweep.settings\]"),
    ("[sweep.settings]\nlimt = 5", r"\[settings\] 'limt' is not a setting; did you mean 'limit'\?"),
    ("[sweep.settings]\nshots = 2", r"\[settings\] shots is an axis of the grid.*write it in \[sweep\] as shots = "),
    ("[sweep.settings]\nno_cache = true", r"'no_cache' is not a setting; it is the flag --no-cache.*cache = false"),
    (
        'models = [{ name = "compat:x", bse_url = "http://127.0.0.1:9/v1" }]',
        r"the model 'compat:x': 'bse_url' is not a setting; did you mean 'base_url'\?",
    ),
]


@pytest.mark.parametrize(("text", "message"), GRID_MISTAKES)
def test_sweep_file_mistakes_name_the_key_and_the_fix(
    tmp_path: Path, mmad_json: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    from mmad.cli import main

    lines = ["[sweep]", f'data = "{mmad_json}"']
    if not text.startswith("models"):
        lines.append('models = ["random"]')
    if text.startswith("[sweep.settings]"):
        lines, text = [*lines, text], ""
    grid = tmp_path / "grid.toml"
    grid.write_text("\n".join([*lines[:2], text, *lines[2:]]) + "\n")
    with pytest.raises(ConfigError, match=rf"grid.toml: .*{message}"):
        SweepSpec.from_file(grid)
    out = tmp_path / "sweep"
    code = main(["sweep", str(grid), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_an_unknown_provider_is_named_before_any_cell_runs(mmad_json: Path, tmp_path: Path) -> None:
    spec = SweepSpec.parse(
        {"data": str(mmad_json), "models": ["fixed:A", "nosuch:model"], "shots": [0], "settings": {"limit": 3}}
    )
    with pytest.raises(ConfigError, match=r"sweep cell nosuch-model_.*unknown model provider 'nosuch'"):
        asyncio.run(run_sweep(spec, tmp_path / "sweep"))
    assert not (tmp_path / "sweep").exists(), "the fixed:A cell must not have run"
    bad_letter = SweepSpec.parse({"data": str(mmad_json), "models": ["random", "fixed:yes"], "shots": [0]})
    with pytest.raises(ConfigError, match=r"'fixed:yes': fixed answers one option letter"):
        asyncio.run(run_sweep(bad_letter, tmp_path / "letter"))
    assert not (tmp_path / "letter").exists()


def test_a_sweep_refused_on_ray_leaves_nothing_behind(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    spec = SweepSpec.parse(
        {"data": str(mmad_json), "models": ["random"], "shots": [0], "settings": {"engine": "ray", "limit": 3}}
    )
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "ray", None)  # as without the [ray] extra
        with pytest.raises(ConfigError, match=r"sweep cell random_.*needs ray\[data\].*mmad\[ray\]"):
            asyncio.run(run_sweep(spec, tmp_path / "no-extra"))
    assert not (tmp_path / "no-extra").exists()


@pytest.mark.subprocess
def test_a_sweep_on_a_dead_ray_address_leaves_nothing_behind(mmad_json: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="needs the [ray] extra")
    with socket.socket() as probe:  # a port just freed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    out = tmp_path / "unreachable"
    # A process of its own: a Ray this test process may hold (another test's) would be joined instead.
    on_ray = ["--set", "engine=ray", "--set", f"ray_address={address}"]
    done = subprocess.run(
        [sys.executable, "-m", "mmad", *_small_sweep("-d", str(mmad_json), "--out", str(out), *on_ray)],
        env={**os.environ, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot reach the Ray cluster at {address}" in done.stderr
    assert not out.exists(), "no sweep.json (nor a lock) for a sweep that never started"


def _small_sweep(*extra: str) -> list[str]:
    return ["sweep", "-m", "fixed:A", "--shots", "0", "--set", "limit=3", "--set", "cache=false", "--no-html", *extra]


def test_a_sweep_resumes_from_any_folder_and_resume_takes_no_grid_flags(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from mmad.cli import main

    started, elsewhere = tmp_path / "started", tmp_path / "elsewhere"
    shutil.copytree(mmad_json.parent, started / "data")
    elsewhere.mkdir()
    monkeypatch.chdir(started)
    assert main(_small_sweep("-d", "data", "--out", "s")) == 0
    manifest = json.loads((started / "s" / "sweep.json").read_text())
    assert manifest["spec"]["data"] == str(started / "data")
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["sweep", "--resume", str(started / "s"), "--no-html"]) == 0, capsys.readouterr().err
    before = (started / "s" / "sweep.json").read_text()
    for flags, flag in (
        (["--shots", "1"], "--shots"),
        (["--set", "limit=5"], "--set"),
        (["-m", "random"], "--model"),
        (["--out", "other"], "--out"),
        (["--ray-address", "auto"], "--ray-address"),
    ):
        code = main(["sweep", "--resume", str(started / "s"), *flags])
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and f"{flag} cannot be combined with --resume: the sweep continues with the grid" in err
        assert "start a new sweep with --out NEW_FOLDER" in err
    assert (started / "s" / "sweep.json").read_text() == before
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # the environment is not a flag: the local cells resume
    assert main(["sweep", "--resume", str(started / "s"), "--no-html"]) == 0


def test_a_flag_over_a_sweep_file_or_a_recipe_is_announced(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    grid = tmp_path / "grid.toml"
    grid.write_text(f'[sweep]\ndata = "{mmad_json}"\nmodels = ["fixed:A"]\nshots = [1]\n[sweep.settings]\nlimit = 5\n')
    assert main([*_small_sweep(str(grid), "--out", str(tmp_path / "a"))]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"note: --shots replaces {grid}'s shots = [1]" in err
    assert f"note: limit 3 replaces {grid}'s [settings] limit = 5" in err
    assert "--model replaces" not in err, "-m fixed:A is the file's own model: nothing is replaced"
    args = _small_sweep(
        "-d", str(mmad_json), "--recipe", "gpt4o", "--set", "max_tokens=64", "--out", str(tmp_path / "b")
    )
    assert main(args) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("note: --max-tokens 64 overrides the gpt4o recipe's max_tokens = 200") == 1


def test_the_terminal_sweep_table_names_what_a_narrower_average_covers(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cell whose Average is over two subtasks says so under the terminal table, as sweep_table.md does."""
    from mmad.cli import main

    narrow = ["sweep", "-m", "random", "--shots", "0", "--set", 'subtasks=["AD", "DL"]', "--set", "cache=false"]
    capsys.readouterr()
    assert main([*narrow, "--no-html", "-d", str(mmad_json), "--out", str(tmp_path / "s")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    (row,) = sweep_rows(tmp_path / "s")
    assert f"Average of {row.cell}: AD, DL (2 of 7 subtasks)" in out
    assert f"- {row.cell}: AD, DL (2 of 7 subtasks)" in (tmp_path / "s" / "sweep_table.md").read_text()


def test_the_terminal_sweep_table_keeps_every_number_and_name_whole_at_80_columns(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    args = ["sweep", "-m", "fixed:A", "-m", "random", "--shots", "0", "--shots", "1", "--set", "cache=false"]
    capsys.readouterr()
    assert main([*args, "--no-html", "-d", str(mmad_json), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    table = out.split("written:")[0]
    assert "…" not in table and all(len(line) <= 80 for line in table.splitlines()), table
    rows = sweep_rows(tmp_path / "s")
    for i, row in enumerate(rows, 1):
        assert f"{i}: {row.cell} (complete)" in table
        assert f"{row.average:.1f}" in table


def test_a_misspelt_sweep_table_or_a_missing_key_is_named_in_words(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('[sweeps]\ndata = "data/MMAD"\nmodels = ["random"]\n')
    with pytest.raises(
        ConfigError, match=r"grid.toml: \[sweeps\] is not a table of a sweep file; did you mean \[sweep\]"
    ) as info:
        SweepSpec.from_file(grid)
    assert "Field required" not in str(info.value)
    grid.write_text("[sweep]\nshots = [0]\n")
    with pytest.raises(ConfigError, match=r'data is missing: give it in \[sweep\], e.g. data = "data/MMAD"') as info:
        SweepSpec.from_file(grid)
    assert "Field required" not in str(info.value)


def test_data_and_models_flags_fill_a_sweep_file_that_leaves_them_out(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    grid = tmp_path / "grid.toml"
    grid.write_text("[sweep]\nshots = [0]\n")
    out = tmp_path / "sweep"
    assert main([*_small_sweep(str(grid), "-d", str(mmad_json), "--out", str(out))]) == 0
    assert "replaces" not in capsys.readouterr().err  # they filled the file, they replaced nothing
    assert json.loads((out / "sweep.json").read_text())["cells"]


def test_a_recipe_cell_is_scored_under_its_recipes_policy_as_its_headline_is(mmad_json: Path, tmp_path: Path) -> None:
    """summary.py's policy (the gpt4o recipe's) skips the answer after each unreadable one: the sweep table must
    show the number the cell's own `mmad score` headline shows, not mmad's strict one."""
    from mmad.cli import main
    from mmad.run.folder import open_run
    from mmad.score.answers import graded_from_records

    args = ["sweep", "-m", "fixed:A", "-d", str(mmad_json), "--recipe", "gpt4o", "--set", "limit=24"]
    assert main([*args, "--set", "cache=false", "--no-html", "--out", str(tmp_path / "s")]) == 0
    (row,) = sweep_rows(tmp_path / "s")
    run_dir = tmp_path / "s" / json.loads((tmp_path / "s" / "sweep.json").read_text())["cells"][row.cell]["folder"]
    records_file = run_dir / "records.jsonl"
    lines = records_file.read_text().splitlines()
    for number in range(0, len(lines), 3):  # every third reply unreadable: upstream then skips the next answer
        record = json.loads(lines[number])
        record.update(answer=None, raw_reply="I cannot tell.", parse_method=None)
        lines[number] = json.dumps(record)
    records_file.write_text("\n".join(lines) + "\n")
    from mmad.score.table import score_answers

    graded = graded_from_records(open_run(run_dir).records)
    upstream, strict = score_answers(graded, "upstream").average, score_answers(graded, "strict").average
    assert upstream != strict, "the edit must make the two policies differ"
    (row,) = sweep_rows(tmp_path / "s")
    assert row.average == upstream


def test_the_template_axis_is_similar_templates_and_its_old_name_warns_once(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The grid's templates axis (random/similar) is the setting similar_templates, in a file and as a flag."""
    from mmad.cli import main

    base = ["sweep", "-m", "fixed:A", "-d", str(mmad_json), "--shots", "1", "--set", "limit=3", "--no-html"]
    assert main([*base, "--similar-templates", "both", "--out", str(tmp_path / "flag")]) == 0
    assert "warning" not in capsys.readouterr().err
    cells = {p.name for p in (tmp_path / "flag").iterdir() if p.is_dir()}
    assert cells == {"fixed-A_per-question_1shot_random_plain", "fixed-A_per-question_1shot_similar_plain"}
    assert json.loads((tmp_path / "flag" / "sweep.json").read_text())["spec"]["similar_templates"] == [False, True]

    assert main([*base, "--templates", "similar", "--out", str(tmp_path / "old-flag")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: --templates is the old name of --similar-templates") == 1, err
    assert (tmp_path / "old-flag" / "fixed-A_per-question_1shot_similar_plain").is_dir()

    grid = tmp_path / "grid.toml"
    grid.write_text(f'[sweep]\ndata = "{mmad_json}"\nmodels = ["fixed:A"]\nshots = [1]\ntemplates = ["similar"]\n')
    assert main(["sweep", str(grid), "--set", "limit=3", "--no-html", "--out", str(tmp_path / "old-file")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("is the old name of the grid's axis 'similar_templates'") == 1, err
    assert f"warning: {grid}: 'templates' is the old name" in err

    both = [*base, "--templates", "random", "--similar-templates", "yes", "--out", str(tmp_path / "both")]
    assert main(both) == 2
    assert (
        "--templates is the old name of --similar-templates; give --similar-templates only" in capsys.readouterr().err
    )
    assert not (tmp_path / "both").exists()


def test_sweep_seed_says_it_is_the_bootstraps_not_the_samples(capsys: pytest.CaptureFixture[str]) -> None:
    """mmad eval's --seed seeds the question sample; mmad sweep's is --ci's, and its help says where the other is."""
    from mmad.cli import main

    assert main(["sweep", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert (
        "the --ci bootstrap's seed [default: 0]; not the questions' sample (--set seed=N seeds every cell's)"
        in help_text
    )
