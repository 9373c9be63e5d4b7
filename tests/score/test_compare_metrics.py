"""`mmad compare`'s metrics of each run: a change in dollars per question is shown, not rounded to 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main
from tests.helpers.runs import copy_run, edit_records

pytestmark = pytest.mark.slow


def test_a_change_in_dollars_per_question_is_shown(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    cheap = tmp_path / "cheap"
    assert (
        main(["eval", "-m", "random:3", "-d", str(mmad_json), "--no-cache", "--limit", "6", "--out", str(cheap)]) == 0
    )
    edit_records(cheap, lambda _, r: r.model_copy(update={"cost_usd": 0.0012}))
    dear = copy_run(cheap, tmp_path / "dear")
    edit_records(dear, lambda _, r: r.model_copy(update={"cost_usd": 0.0015}))
    capsys.readouterr()
    assert main(["compare", str(cheap), str(dear), "--samples", "200"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "$/question" in line]
    assert "+0.0003" in line


def test_a_run_without_answers_is_named_not_called_another_benchmark(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["eval", "-m", "random:3", "-d", str(mmad_json), "--no-cache", "--limit", "4", "--out", str(run)]) == 0
    empty = copy_run(run, tmp_path / "killed")
    edit_records(empty, lambda _, r: None)  # killed before its first record
    capsys.readouterr()
    assert main(["compare", str(empty), str(run)]) == 2
    err = capsys.readouterr().err
    assert "killed holds no answers yet" in err and "same benchmark" not in err
