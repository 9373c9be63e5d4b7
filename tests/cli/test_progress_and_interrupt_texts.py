"""Texts the CLI shows around a run: the progress line before the first reply claims no spending, and a run
interrupted after it was complete is not sent back to `--resume`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main
from mmad.cli.common import spent_texts
from mmad.cli.eval_commands import _interrupted
from mmad.run.ledger import EngineStats


def test_no_reply_yet_shows_no_spending_and_a_priced_reply_does() -> None:
    stats = EngineStats()
    assert spent_texts(stats) == ("–", "–")  # '$0.00' would read as a price the model may not have
    stats.priced_requests, stats.prompt_tokens, stats.cost_usd = 1, 100, 0.25
    assert spent_texts(stats) == ("$0.25", "100 tok · $0.2500")
    unpriced = EngineStats(unpriced_requests=1, prompt_tokens=100)
    assert spent_texts(unpriced)[0] == "no price"


def test_an_interruption_after_the_run_was_complete_does_not_ask_for_a_resume(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--limit", "4", "--out", str(run)]) == 0
    (answers,) = run.glob("answers_*.json")
    answers.unlink()  # a SIGTERM while the files were being written
    records = (run / "records.jsonl").read_text()
    capsys.readouterr()
    _interrupted(run)
    said = capsys.readouterr().err
    assert "interrupted after the run was complete" in said
    # what it says to run writes the files back, the official answers json included, and asks nothing
    # (`mmad score` would not write the answers json)
    command = said.split("mmad ", 1)[1].split(" writes them")[0].split()
    assert command == ["eval", "--resume", str(run)]
    assert main(command) == 0
    assert answers.exists() and (run / "records.jsonl").read_text() == records
    assert "this session 0 records" in capsys.readouterr().out


def test_an_interruption_mid_run_still_says_how_to_resume(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--limit", "4", "--out", str(run)]) == 0
    records = run / "records.jsonl"
    lines = records.read_text().splitlines()
    records.write_text("\n".join(lines[:1]) + "\n")  # as if killed after the first answer
    capsys.readouterr()
    _interrupted(run)
    said = capsys.readouterr().err
    assert f"mmad eval --resume {run}" in said and "after the run was complete" not in said
