"""A run whose questions carry their image's history (--recipe internvl with cot) stopped by
--max-cost: the questions left waiting for an earlier one that was never asked fail quietly as
'history' errors, and no "Future exception was never retrieved" traceback reaches the log."""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path

import pytest

from mmad import evaluate
from tests.helpers.serving import running_server


def test_a_budget_stop_leaves_no_unretrieved_future(
    mmad_json: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"random": [1000.0, 1000.0]}))  # ~$0.1+ per request
    with caplog.at_level(logging.ERROR, logger="asyncio"), running_server() as server:
        stopped = evaluate(
            "compat:random",
            mmad_json,
            out=tmp_path / "run",
            base_url=server.base_url,
            cache=False,
            concurrency=4,
            max_cost=0.5,
            prices=str(prices),
            recipe="internvl",
            strategies=["cot"],
        )
        del stopped
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
