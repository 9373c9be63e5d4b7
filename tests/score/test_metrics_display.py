"""`mmad score`'s Metrics table: a figure that cannot be had is a dash, never a dash with a unit."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main
from tests.helpers.runs import edit_records

pytestmark = pytest.mark.slow


def test_tokens_per_correct_without_a_correct_answer_is_a_bare_dash(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    run = tmp_path / "run"
    assert main(["eval", "-m", "random:3", "-d", str(mmad_json), "--no-cache", "--limit", "4", "--out", str(run)]) == 0
    wrong = {"A": "B", "B": "A", "C": "A", "D": "A", "E": "A"}
    edit_records(run, lambda _, r: r.model_copy(update={"answer": wrong[r.correct_answer], "prompt_tokens": 10}))
    capsys.readouterr()
    assert main(["score", str(run), "--no-plot"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "tokens/correct" in line]
    assert lines and all("– tokens" not in line and "–" in line for line in lines)


def test_dollars_per_question_keep_their_fractions_of_a_cent_in_every_table_of_runs(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmad.run.sweep_table import SweepRow, render_markdown

    monkeypatch.setenv("COLUMNS", "200")
    run = tmp_path / "run"
    assert main(["eval", "-m", "random:3", "-d", str(mmad_json), "--no-cache", "--limit", "4", "--out", str(run)]) == 0
    edit_records(run, lambda _, r: r.model_copy(update={"cost_usd": 0.0012}))
    capsys.readouterr()
    for output in ("table", "markdown"):
        assert main(["leaderboard", str(run), "--no-published", "--format", output]) == 0
        assert "0.0012" in capsys.readouterr().out, output
    row = SweepRow("cell", "random:3", "complete", 4, 4, 50.0, metrics={"cost:$/question": 0.0012})
    assert "| 0.0012 |" in render_markdown([row])


def test_the_leaderboards_metrics_fit_80_columns_whole(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    run = tmp_path / "run"
    assert main(["eval", "-m", "random:3", "-d", str(mmad_json), "--no-cache", "--limit", "4", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", str(run), "--no-published"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("Metrics of your runs") :]
    # a row per figure, its name whole (nine figure columns beside a run's name broke every header)
    assert any(line.split()[:1] == ["cost:tokens/correct"] for line in section.splitlines())
