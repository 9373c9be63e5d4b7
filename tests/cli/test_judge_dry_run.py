"""--dry-run --judge: the judge's bound is an upper bound, rounded up to the cent."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main


def test_the_judge_s_bound_rounds_up_so_a_cheap_judge_is_not_shown_as_free(
    mmad_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # gpt-4o-mini reading 3 replies costs a fraction of a cent: "at most $0.00" read as free
    command = ["eval", "-m", "openai:gpt-4o", "-d", str(mmad_json), "--limit", "3", "--dry-run"]
    assert main([*command, "--judge", "openai:gpt-4o-mini"]) == 0
    out = capsys.readouterr().out
    assert "up to 3 requests, at most $0.01 (every reply unparsed" in out


def test_the_dry_run_refuses_max_cost_with_an_unpriced_judge_as_the_run_does(
    mmad_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["eval", "-m", "openai:gpt-4o", "-d", str(mmad_json), "--limit", "3", "--dry-run", "--max-cost", "1"]
    assert main([*command, "--judge", "openai:no-such-priced-judge"]) == 2
    assert "--max-cost needs a price for the judge openai:no-such-priced-judge too" in capsys.readouterr().err
