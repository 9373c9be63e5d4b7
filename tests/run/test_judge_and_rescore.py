"""The LLM-judge fallback, re-scoring a run directory, and price-file errors."""

import asyncio
import json
from pathlib import Path

import pytest

from mmad import RunConfig
from mmad.api import evaluate_async
from mmad.cli import main
from mmad.errors import ConfigError
from mmad.models.base import Completion, Model, Request
from mmad.models.baselines import FixedModel
from mmad.models.prices import load_prices
from mmad.records.record import read_records


class Rambler(Model):
    name = "rambler"

    async def generate(self, request: Request) -> Completion:
        return Completion(text="Hard to say; it could be several things, honestly.")


def test_judge_maps_unparsed_replies(mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = RunConfig.from_flat("rambler", str(mmad_json), cache=False, datasets=["VisA"])
    judge = FixedModel("B")
    run = asyncio.run(evaluate_async(config, out=tmp_path / "run", model=Rambler(), judge=judge))
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert {r.parse_method for r in records} == {"judge"} and {r.answer for r in records} == {"B"}
    assert run.table.n_unanswered == 0
    # Without the judge the same replies stay unparsed: nothing is guessed.
    plain = asyncio.run(evaluate_async(config, out=tmp_path / "plain", model=Rambler()))
    assert plain.table.n_unanswered == plain.table.n_answers
    assert main(["score", str(tmp_path / "plain"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "unparsed" in out
    scores = json.loads((tmp_path / "plain" / "scores.json").read_text())
    assert scores["failures"] == {"unparsed": plain.table.n_answers}


def test_price_files(tmp_path: Path) -> None:
    good = tmp_path / "prices.json"
    good.write_text(json.dumps({"my-model": [1.5, 6]}))
    assert load_prices(good)["my-model"] == (1.5, 6.0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"my-model": "cheap"}))
    with pytest.raises(ConfigError, match="input_usd_per_M"):
        load_prices(bad)
