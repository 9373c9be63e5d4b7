"""What a run paid in all (run.json's usage: every session, and requests whose records a later one replaced)
is shown beside the cost metric's per-question figure, which counts only each question's latest record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mmad.cli import main
from mmad.records.record import Record, Status
from mmad.score.metrics import Graded
from mmad.score.metrics.builtin import Cost
from mmad.score.scored import graded_of
from tests.helpers.serving import running_server


def _records(n: int, cost: float | None) -> list[Record]:
    return [
        Record(
            question_id=f"q{i}",
            image=f"MVTec-AD/bottle/test/broken_large/{i:03d}.png",
            question_type="Defect Classification",
            correct_answer="A",
            status=Status.ANSWERED,
            answer="A",
            prompt_tokens=100,
            completion_tokens=10,
            cost_usd=cost,
        )
        for i in range(n)
    ]


def _cost(graded: Graded) -> tuple[dict[str, float | None], list[str], list[str]]:
    result = Cost().compute(graded)
    assert result is not None
    return {c.name: c.value for c in result.cells}, result.headline, result.notes


def _priced_run(mmad_json: Path, tmp_path: Path) -> tuple[Path, dict[str, Any], list[dict[str, Any]], float]:
    """A 4-question run of a priced model over HTTP: its folder, its run.json, its records and what they carry."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"compat:random": [1000.0, 1000.0]}))
    run = tmp_path / "run"
    with running_server() as server:
        command = ["eval", "-m", "compat:random", "-d", str(mmad_json), "--base-url", server.base_url, "--no-cache"]
        assert main([*command, "--limit", "4", "--out", str(run), "--prices", str(prices)]) == 0
    manifest = json.loads((run / "run.json").read_text())
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    return run, manifest, records, sum(r["cost_usd"] for r in records)


def test_the_run_total_is_beside_the_per_question_figure() -> None:
    graded = graded_of(_records(4, 0.01))
    graded.spent_usd = 0.07  # three more cents went on requests whose records were replaced
    cells, headline, notes = _cost(graded)
    assert cells["$/question"] == pytest.approx(0.01) and cells["$ run total"] == pytest.approx(0.07)
    assert "$ run total" not in headline  # the columns of every table of runs stay the four per-question figures
    assert any("the run paid $0.0700 in all" in n and "carry $0.0400" in n for n in notes)
    # where the run paid what its latest records carry there is nothing to explain
    graded.spent_usd = 0.04
    assert not any("paid" in n for n in _cost(graded)[2])
    # a run whose spending is unknown has no total, never $0
    unknown = graded_of(_records(4, None))
    cells, _, notes = _cost(unknown)
    assert "$ run total" not in cells and cells["$/question"] is None and not any("paid" in n for n in notes)


def test_score_and_the_report_card_show_what_run_json_says_the_run_paid(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, manifest, records, carried = _priced_run(mmad_json, tmp_path)
    assert manifest["usage"]["cost_usd"] == pytest.approx(carried, abs=1e-5)
    # a session killed between paying for replies and writing their records: run.json counted them
    manifest["usage"]["cost_usd"] = round(carried + 1.5, 6)
    (run / "run.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["score", str(run), "--json", "-o", str(tmp_path / "scored"), "--no-plot"]) == 0
    cost = json.loads(capsys.readouterr().out)["metrics"]["cost"]
    cells = {c["name"]: c["value"] for c in cost["cells"]}
    assert cells["$ run total"] == pytest.approx(carried + 1.5)
    assert cells["$/question"] == pytest.approx(carried / len(records))
    assert any(f"the run paid ${carried + 1.5:.4f} in all" in n for n in cost["notes"])
    page = tmp_path / "report.html"
    assert main(["report", str(run), "--no-published", "--out", str(page)]) == 0
    card = re.search(r"<dt>Cost</dt><dd>(.*?)</dd>", page.read_text(), re.S)
    assert card is not None
    assert card.group(1) == (
        f"${carried + 1.5:,.4f} paid by the run in all sessions; ${carried / len(records):,.4f} a question "
        "by its latest record"
    )


def test_the_report_card_keeps_the_per_question_cost_when_the_runs_total_is_unknown(
    mmad_json: Path, tmp_path: Path
) -> None:
    """A --judge without a price leaves run.json's usage.cost_usd null (the total is unknown), while the model's
    records carry what each question cost: the card showed neither, as if nothing had a price."""
    run, manifest, records, carried = _priced_run(mmad_json, tmp_path)
    assert carried > 0
    manifest["usage"]["cost_usd"] = None  # as an unpriced judge's calls leave it
    (run / "run.json").write_text(json.dumps(manifest))
    page = tmp_path / "report.html"
    assert main(["report", str(run), "--no-published", "--out", str(page)]) == 0
    card = re.search(r"<dt>Cost</dt><dd>(.*?)</dd>", page.read_text(), re.S)
    assert card is not None
    assert card.group(1).startswith("– paid by the run in all sessions (not measured: ")
    assert card.group(1).endswith(f"; ${carried / len(records):,.4f} a question by its latest record")


def test_a_run_json_from_before_with_0_for_an_unpriced_run_has_no_total(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--no-cache", "--limit", "4", "--out", str(run)]) == 0
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["usage"]["cost_usd"] is None
    manifest["usage"]["cost_usd"] = 0.0  # what runs made before unknown could be said held
    (run / "run.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["score", str(run), "--json", "-o", str(tmp_path / "scored"), "--no-plot"]) == 0
    cost = json.loads(capsys.readouterr().out)["metrics"]["cost"]
    assert "$ run total" not in {c["name"] for c in cost["cells"]} and not any("paid" in n for n in cost["notes"])
