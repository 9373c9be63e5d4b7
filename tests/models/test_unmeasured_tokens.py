"""Backends that read no tokens (the random and fixed baselines, the visual expert) record none: 0 prompt
and 0 completion tokens would read as measured free answers ("0 tokens/question")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.records.record import read_records
from mmad.run.scoring import score_run


def _cost_cells(run: Path) -> dict[str, float | None]:
    result = score_run(run).metric("cost")
    assert result is not None
    return {cell.name: cell.value for cell in result.cells}


@pytest.mark.parametrize("model", ["random", "fixed:A"])
def test_a_baseline_records_no_tokens_and_the_cost_metric_shows_none(
    model: str, mmad_json: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    evaluate(model, mmad_json, out=run, cache=False, limit=6)
    records = read_records(run / "records.jsonl")
    assert records and all(r.prompt_tokens is None and r.completion_tokens is None for r in records)
    cells = _cost_cells(run)
    assert cells["tokens/question"] is None and cells["tokens/correct"] is None
    assert json.loads((run / "run.json").read_text())["usage"]["cost_usd"] is None


@pytest.mark.expert
def test_the_visual_expert_records_no_tokens(mmad_json: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the [expert] extra is installed by `make setup`")
    run = tmp_path / "expert"
    evaluate("expert", mmad_json, out=run, cache=False, subtasks=["Anomaly Discrimination"], limit=4)
    answered = [r for r in read_records(run / "records.jsonl") if r.answer is not None]
    assert answered and all(r.prompt_tokens is None and r.completion_tokens is None for r in answered)
    assert _cost_cells(run)["tokens/question"] is None
