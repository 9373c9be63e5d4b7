"""A run answered from the response cache costs what the run that paid for its replies costs per question:
`mmad compare` showed $/question as "–" for the cached run beside "$0.0000" (or $0.32) for the one that paid.
What the cached run paid (nothing) is run.json's usage and `$ run total`, with a note."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.models.baselines import FixedModel
from tests.helpers.serving import running_server


def _dollars_row(out: str) -> list[str]:
    row = next(line for line in out.splitlines() if "cost:$/question" in line)
    return [cell.strip() for cell in row.strip("│ ").split("│")]


@pytest.mark.parametrize("price", [0.0, 1000.0])
def test_a_cached_run_costs_per_question_what_the_paid_run_does(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], price: float
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"compat:fixed": [price, price]}))
    with running_server(FixedModel("A")) as server:
        command = ["eval", "-m", "compat:fixed", "-d", str(mmad_json), "--base-url", server.base_url]
        command += ["--prices", str(prices), "--cache-dir", str(tmp_path / "cache"), "--limit", "6"]
        assert main([*command, "--out", str(tmp_path / "paid")]) == 0
        asked = server.stats.requests
        assert main([*command, "--out", str(tmp_path / "cached")]) == 0
        assert server.stats.requests == asked  # every reply of the second run came from the cache
    paid = json.loads((tmp_path / "paid" / "run.json").read_text())["usage"]
    cached = json.loads((tmp_path / "cached" / "run.json").read_text())["usage"]
    assert cached["cached"] == 6 and cached["cost_usd"] == 0.0  # what it paid: nothing
    assert (paid["cost_usd"] > 0) is (price > 0)
    capsys.readouterr()

    assert main(["compare", str(tmp_path / "paid"), str(tmp_path / "cached")]) == 0
    name, a, b, delta = _dollars_row(capsys.readouterr().out)
    assert name == "cost:$/question" and a == b and re.fullmatch(r"\$\d+\.\d{4}", a), (a, b)
    assert (a != "$0.0000") is (price > 0) and delta == "+0.0000"

    assert main(["score", str(tmp_path / "cached"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]["cost"]
    notes = " ".join(metrics["notes"])
    assert "6 of 6 replies came from the cache: $/question counts what they cost when they were asked" in notes
    if price > 0:  # what the run paid stands beside it, and says why it differs
        assert "the run paid $0.0000 in all" in notes and "nothing for replies from the cache" in notes
