"""The Ray engine keeps its actors' replies in the response cache: an actor is ended with
``ray.kill``, which runs no atexit handler, so what its cache still held in memory was lost and a
re-run asked again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mmad import evaluate
from mmad.run.cache import DATABASE
from tests.helpers.serving import running_server

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_replies_asked_on_ray_actors_reach_the_cache(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    folder = tmp_path / "responses"
    settings = {
        "cache": True,
        "cache_dir": str(folder),
        "concurrency": 4,
        "limit": 12,
        "engine": "ray",
        "ray_actors": 2,
    }
    with running_server() as server:
        first = evaluate("mmad:random", mmad_json, out=tmp_path / "a", base_url=server.base_url, **settings)
        asked = server.stats.requests
        assert first.complete and asked > 0
        with sqlite3.connect(folder / DATABASE) as db:
            assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == asked
        again = evaluate("mmad:random", mmad_json, out=tmp_path / "b", base_url=server.base_url, **settings)
        assert again.complete and server.stats.requests == asked  # every reply from the cache
        # Counted once, by the driver's ledger from the records (the actors no longer count hits).
        assert first.stats.cached == 0 and again.stats.cached == again.stats.done == first.stats.done


@pytest.mark.parametrize("judge", [None, "fixed:B"])
def test_a_ray_run_the_cache_answers_is_not_refused_by_a_budget_smaller_than_one_request(
    mmad_json: Path, tmp_path: Path, ray_cluster: str, judge: str | None
) -> None:
    # The driver set aside each job's expected cost before an actor looked at its response cache: a rerun
    # whose every reply is cached (it costs nothing) stopped at once under a --max-cost below one request.
    # With a judge, a judge call per question was set aside too, though a cached reply whose letters
    # were all found needs none.
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"random": [1000.0, 1000.0], "fixed:B": [1000.0, 1000.0]}))  # ~$0.1+ a request
    settings: dict[str, Any] = {
        "judge": judge,
        "cache_dir": str(tmp_path / "responses"),
        "prices": str(prices),
        "concurrency": 4,
        "limit": 12,
        "engine": "ray",
        "ray_actors": 2,
    }
    with running_server() as server:
        first = evaluate("compat:random", mmad_json, out=tmp_path / "a", base_url=server.base_url, **settings)
        assert first.complete and first.stats.cost_usd > 0.01
        asked = server.stats.requests
        again = evaluate(
            "compat:random", mmad_json, out=tmp_path / "b", base_url=server.base_url, max_cost=0.01, **settings
        )
        assert server.stats.requests == asked
    assert again.complete, again.stats.stopped_reason
    assert again.stats.cached == again.stats.done == first.stats.done and again.stats.cost_usd == 0
