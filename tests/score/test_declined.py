"""A subtask the model declines entirely is a missing cell everywhere, and every average names what it covers.

The visual expert answers Anomaly Discrimination and Defect Localization and abstains on the other
five subtasks. One real `mmad eval -m expert --circular` run (whose unrotated posing is the plain
run) and one real run of the random model feed the table, the per-category and per-defect-type
tables, circular evaluation, compare, the leaderboard and the HTML report.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from statistics import fmean

import pytest

pytest.importorskip("torch", reason="the [expert] extra is installed by `make setup`")

from mmad.cli import main
from mmad.data.schema import SUBTASKS, Subtask

pytestmark = [pytest.mark.expert, pytest.mark.slow]

ANSWERED = [Subtask.ANOMALY_DISCRIMINATION.value, Subtask.DEFECT_LOCALIZATION.value]
DECLINED = [s.value for s in SUBTASKS if s.value not in ANSWERED]


@pytest.fixture(scope="module")
def runs(mmad_json: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("declined")
    args = ["-d", str(mmad_json), "--no-cache"]
    assert main(["eval", "-m", "expert", *args, "--circular", "--out", str(folder / "expert")]) == 0
    assert main(["eval", "-m", "random", *args, "--out", str(folder / "random")]) == 0
    return {"expert": folder / "expert", "random": folder / "random"}


def _scores(run: Path, out: Path) -> dict:
    assert main(["score", str(run), "--out", str(out), "--no-plot"]) == 0
    return json.loads((out / "scores.json").read_text())


def test_breakdowns_show_declined_subtasks_as_missing(runs: dict[str, Path], tmp_path: Path) -> None:
    data = _scores(runs["expert"], tmp_path)
    assert data["declined"] == sorted(DECLINED)
    for by in ("by_category", "by_defect_type"):
        for group, row in data[by].items():
            assert all(row["cells"][s] is None for s in DECLINED), (by, group, row)
            present = [row["cells"][s] for s in ANSWERED if row["cells"][s] is not None]
            assert row["average"] == pytest.approx(fmean(present)), (by, group)
            assert row["covers"] == [s for s in ANSWERED if row["cells"][s] is not None]
    markdown = (tmp_path / "scores.md").read_text()
    category_lines = [line for line in markdown.splitlines() if line.startswith("| DS-MVTec/bottle |")]
    assert category_lines and all(line.count("| – ") >= len(DECLINED) for line in category_lines), category_lines
    assert "every question the model declined" in markdown and "Declined by the model: DC, DD, DA, OC, OA" in markdown


def test_every_average_names_the_subtasks_it_covers(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _scores(runs["expert"], tmp_path)
    assert data["average_covers"] == ANSWERED
    assert all(row["covers"] == ANSWERED for row in data["rows"])
    assert "The Average covers AD, DL (2 of 7 subtasks)" in (tmp_path / "scores.md").read_text()
    capsys.readouterr()
    assert main(["score", str(runs["expert"]), "--out", str(tmp_path / "again"), "--no-plot"]) == 0
    assert "the Average covers AD, DL (2 of 7 subtasks)" in " ".join(capsys.readouterr().out.split())
    full = _scores(runs["random"], tmp_path / "random")
    assert full["average_covers"] == [s.value for s in SUBTASKS]


def test_circular_shows_declined_subtasks_as_missing(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    report = json.loads((runs["expert"] / "circular.json").read_text())
    rows = {row["group"]: row for row in report["rows"]}
    for subtask in DECLINED:
        assert rows[subtask]["plain"] is None and rows[subtask]["circular"] is None, rows[subtask]
    assert report["declined"] == DECLINED and report["covers"] == ANSWERED
    answered = rows[ANSWERED[0]]["questions"] + rows[ANSWERED[1]]["questions"]
    assert rows["All"]["questions"] == answered, "All is over the subtasks the model answers"
    from mmad.cli.common import console, render_circular

    with console.capture() as captured:
        console.print(render_circular(runs["expert"] / "circular.json"))
    text = captured.get()
    line = next(row for row in text.splitlines() if "Defect Classification" in row)
    assert "–" in line and "0.0" not in line, line
    assert "All covers AD, DL (2 of 7 subtasks)" in " ".join(text.split())


def test_compare_category_rows_cover_what_both_runs_answered(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expert, model = _scores(runs["expert"], tmp_path / "e"), _scores(runs["random"], tmp_path / "r")
    capsys.readouterr()
    assert main(["compare", str(runs["random"]), str(runs["expert"]), "--samples", "200", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    by_group = {d["group"]: d for d in payload["differences"]}
    assert not set(DECLINED) & set(by_group)
    assert by_group["Average"]["covers"] == ANSWERED
    assert payload["partial"] is False, "an abstention is a declined question, not a failed request"
    categories = [g for g in by_group if "/" in g]
    assert categories == sorted(expert["by_category"])
    for category in categories:
        row = by_group[category]
        # A category's figure is the per-category table's average over the subtasks both runs answer.
        cells_a, cells_b = model["by_category"][category]["cells"], expert["by_category"][category]["cells"]
        assert row["covers"] == [s for s in ANSWERED if cells_b[s] is not None]
        assert row["b"] == pytest.approx(expert["by_category"][category]["average"])
        assert row["a"] == pytest.approx(fmean(cells_a[s] for s in row["covers"]))
    assert main(["compare", str(runs["random"]), str(runs["expert"]), "--samples", "200"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Average covers AD, DL (2 of 7 subtasks)" in out and "B abstained" in out


def test_leaderboard_and_report_leave_declined_subtasks_missing(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["leaderboard", str(runs["expert"]), "--format", "json"]) == 0
    board = json.loads(capsys.readouterr().out)
    row = next(r for r in board["rows"] if r["kind"] == "run")
    assert row["covers"] == ANSWERED
    assert all(row["subtasks"][s] is None for s in DECLINED)
    assert row["score"] == pytest.approx(fmean(row["subtasks"][s] for s in ANSWERED))
    assert any("its average covers AD, DL (2 of 7 subtasks)" in mark for mark in row["marks"])
    # summary.py's policy follows the same rule: a declined subtask is neither a 0 nor a skip of the next answer
    assert main(["leaderboard", str(runs["expert"]), "--format", "json", "--policy", "upstream"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["rows"] if r["kind"] == "run")
    assert row["covers"] == ANSWERED and all(row["subtasks"][s] is None for s in DECLINED)
    assert row["score"] == pytest.approx(fmean(row["subtasks"][s] for s in ANSWERED))
    assert any("its average covers AD, DL (2 of 7 subtasks)" in mark for mark in row["marks"])

    page = tmp_path / "report.html"
    assert main(["report", str(runs["expert"]), "--out", str(page), "--no-published"]) == 0
    text = page.read_text()
    for kind in ("categories", "defects"):
        table = re.search(rf'<table class="breakdown {kind}">(.*?)</table>', text, re.S)
        assert table is not None
        for body in re.findall(r"<tr><td class=\"l\">.*?</tr>", table.group(1)):
            cells = [html.unescape(c) for c in re.findall(r"<td class=\"heat\"[^>]*>(.*?)</td>", body)]
            declined = [cells[i] for i, s in enumerate(SUBTASKS) if s.value in DECLINED]
            assert declined == ["–"] * len(DECLINED), (kind, body)
            assert 'title="mean of AD' in body or 'title="mean of DL' in body, body


def test_a_sweep_cell_of_the_expert_names_what_its_averages_cover(mmad_json: Path, tmp_path: Path) -> None:
    import asyncio

    from mmad.run.sweep import SweepSpec, run_sweep
    from mmad.run.sweep_table import sweep_rows, write_sweep_table

    settings = {"limit": 30, "cache": False}
    spec = SweepSpec.parse({"data": str(mmad_json), "models": ["expert"], "circular": [True], "settings": settings})
    asyncio.run(run_sweep(spec, tmp_path / "sweep"))
    write_sweep_table(tmp_path / "sweep")
    (row,) = sweep_rows(tmp_path / "sweep")
    assert row.covers and set(row.covers) <= set(ANSWERED)
    assert all(row.subtasks[s] is None and row.circular_subtasks[s] is None for s in DECLINED)
    text = (tmp_path / "sweep" / "sweep_table.md").read_text()
    shorts = ", ".join(Subtask(s).short for s in row.covers)
    assert f"- {row.cell}: {shorts} ({len(row.covers)} of 7 subtasks)" in text
