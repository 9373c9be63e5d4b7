"""Under --ci, Overkill and Miss have their image-bootstrap intervals wherever they are shown, and a
leaderboard narrowed with --dataset/--subtask has the intervals of its own figures."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.data.schema import Subtask
from mmad.report.leaderboard import RunScores, view_figures
from mmad.score.metrics import Bootstrap

CI = ["--ci", "--samples", "200", "--seed", "4"]


def _intervals(random_run: Path):  # type: ignore[no-untyped-def]
    intervals = RunScores.of(random_run, bootstrap=Bootstrap(200, 4)).intervals
    assert intervals is not None
    return intervals


def test_score_shows_overkill_and_miss_with_their_intervals(
    random_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    out = tmp_path / "scored"
    assert main(["score", str(random_run), "--json", "-o", str(out), "--no-plot", *CI]) == 0
    data = json.loads(capsys.readouterr().out)
    cells = {c["name"]: c for c in data["metrics"]["detection"]["cells"]}
    detection = data["intervals"]["detection"]
    for name in ("Overkill", "Miss"):
        cell = cells[name]
        assert cell["low"] <= cell["value"] <= cell["high"] and cell["low"] < cell["high"]
        assert detection["average"][name] == {"value": cell["value"], "low": cell["low"], "high": cell["high"]}
        for dataset, figures in detection["rows"].items():
            row = cells[f"{dataset}/{name}"]
            assert figures[name] == {"value": row["value"], "low": row["low"], "high": row["high"]}
    overkill = cells["Overkill"]
    markdown = (out / "scores.md").read_text()
    assert "| Overkill | Miss |" in markdown
    assert f"{overkill['value']:.1f} [{overkill['low']:.1f}, {overkill['high']:.1f}]" in markdown
    assert main(["score", str(random_run), "-o", str(tmp_path / "terminal"), "--no-plot", *CI]) == 0
    text = capsys.readouterr().out
    assert f"{overkill['low']:.1f}–{overkill['high']:.1f}" in text  # the intervals table
    assert f"[{overkill['low']:.1f}, {overkill['high']:.1f}]" in text  # the metrics table


def test_a_narrowed_leaderboard_shows_its_views_intervals(random_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    intervals = _intervals(random_run)
    dataset = intervals.datasets[0]
    view = ["--dataset", dataset, "--subtask", "Defect Classification", "--subtask", "Anomaly Discrimination"]
    capsys.readouterr()
    assert main(["leaderboard", str(random_run), "--no-published", "--format", "json", *view, *CI]) == 0
    board = json.loads(capsys.readouterr().out)
    (row,) = board["rows"]
    subtasks = [Subtask.DEFECT_CLASSIFICATION, Subtask.ANOMALY_DISCRIMINATION]
    expected = intervals.view([dataset], subtasks)
    table = RunScores.of(random_run).strict
    score, _ = view_figures({r.name: dict(r.cells) for r in table.rows}, [dataset], subtasks)
    assert row["score"] == pytest.approx(score) == pytest.approx(expected["Average"].point)
    for name in ("Average", "Defect Classification", "Anomaly Discrimination", "Overkill", "Miss"):
        figure = expected[name]
        assert figure is not None and row["intervals"][name] == pytest.approx([figure.low, figure.high])
    assert row["intervals"]["Average"] != pytest.approx([intervals.average.low, intervals.average.high])
    assert row["overkill"] == pytest.approx(expected["Overkill"].point)
    assert not any("shows none" in note for note in board["notes"])

    assert main(["leaderboard", str(random_run), "--no-published", "--format", "csv", *view, *CI]) == 0
    (line,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert float(line["score_low"]) == pytest.approx(expected["Average"].low, abs=1e-4)
    assert float(line["overkill_high"]) == pytest.approx(expected["Overkill"].high, abs=1e-4)
    assert float(line["miss_low"]) == pytest.approx(expected["Miss"].low, abs=1e-4)

    assert main(["leaderboard", str(random_run), "--no-published", "--format", "markdown", *view, *CI]) == 0
    average = expected["Average"]
    assert f"[{average.low:.1f}, {average.high:.1f}]" in capsys.readouterr().out
    assert main(["leaderboard", str(random_run), "--no-published", *view, *CI]) == 0
    assert f"[{average.low:.1f}, {average.high:.1f}]" in capsys.readouterr().out


def test_the_report_shows_overkill_and_miss_intervals(random_run: Path, tmp_path: Path) -> None:
    intervals = _intervals(random_run)
    page = tmp_path / "report.html"
    assert main(["report", str(random_run), "--no-published", "--out", str(page), *CI]) == 0
    html = page.read_text()
    for name in ("Overkill", "Miss"):
        figure = intervals.average_detection[name]
        assert figure is not None
        assert f'<small class="ci">{figure.low:.1f}–{figure.high:.1f}</small>' in html
        first = intervals.detection[intervals.datasets[0]][name]
        assert first is not None and f"{first.low:.1f}–{first.high:.1f}" in html
    # the table's own cells keep theirs beside them (one lookup names both)
    for cell in (intervals.average, intervals.row_averages[intervals.datasets[0]]):
        assert cell is not None
        assert f'<small class="ci">{cell.low:.1f}–{cell.high:.1f}</small>' in html
