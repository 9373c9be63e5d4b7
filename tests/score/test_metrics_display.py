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
