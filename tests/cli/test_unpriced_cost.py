"""A model without a price spends an unknown amount, not $0: run.json's usage holds None, `mmad eval`'s
closing line says the cost is unknown and how to give a price; a run.json written before holds 0.0 and
still reads; a resume of an unknown spending stays unknown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.run.manifest import Usage
from tests.helpers.serving import running_server


def _usage(run: Path) -> dict[str, object]:
    usage = json.loads((run / "run.json").read_text())["usage"]
    assert isinstance(usage, dict)
    return usage


def _closing_line(out: str) -> str:
    return next(line for line in out.splitlines() if "this session" in line)


def test_an_unpriced_model_spends_an_unknown_amount_and_a_priced_one_a_figure(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "unpriced"
    with running_server() as server:
        command = ["eval", "-m", "compat:random", "-d", str(mmad_json), "--base-url", server.base_url, "--no-cache"]
        assert main([*command, "--limit", "4", "--out", str(run)]) == 0
        line = _closing_line(capsys.readouterr().out)
        assert "$0.0000" not in line and "cost unknown (no price for compat:random; --prices FILE" in line
        assert _usage(run)["cost_usd"] is None and int(str(_usage(run)["prompt_tokens"])) > 0
        # a resume (one that asks nothing more spends $0) leaves the run's spending unknown
        assert main(["eval", "--resume", str(run)]) == 0
        assert _usage(run)["cost_usd"] is None
        capsys.readouterr()

        prices = tmp_path / "prices.json"
        prices.write_text(json.dumps({"compat:random": [1000.0, 1000.0]}))
        priced = tmp_path / "priced"
        assert main([*command, "--limit", "4", "--out", str(priced), "--prices", str(prices)]) == 0
        line = _closing_line(capsys.readouterr().out)
    cost = _usage(priced)["cost_usd"]
    assert isinstance(cost, float) and cost > 0 and f"${cost:.4f}" in line and "unknown" not in line


def test_an_in_process_baseline_reports_no_tokens_and_no_cost(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --no-cache: an earlier test on this worker may have asked the same questions (the closing line would say
    # "4 from cache" and count nothing)
    run = ["eval", "-m", "random", "-d", str(mmad_json), "--limit", "4", "--out", str(tmp_path / "r"), "--no-cache"]
    assert main(run) == 0
    line = _closing_line(capsys.readouterr().out)
    assert "no tokens reported" in line and "cost unknown" in line and "$0" not in line and " 0 tokens" not in line


def test_run_json_usage_of_before_reads_and_unknown_stays_unknown_when_added() -> None:
    old = Usage.model_validate({"prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.0, "cached": 0})
    assert old.cost_usd == 0.0
    assert Usage(cost_usd=None).plus(Usage(cost_usd=0.5)).cost_usd is None
    assert Usage(cost_usd=0.25).plus(Usage(cost_usd=None)).cost_usd is None
    assert Usage(cost_usd=0.25).plus(Usage(cost_usd=0.5)).cost_usd == 0.75


def test_the_dry_run_of_an_unpriced_model_gives_no_dollar_figure(
    mmad_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["eval", "-m", "openai:an-unpriced-model", "-d", str(mmad_json), "--dry-run", "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert "cost: no price known for this model; give --prices FILE" in out and "$" not in out
