"""The Ray engine keeps its actors' replies in the response cache: an actor is ended with
``ray.kill``, which runs no atexit handler, so what its cache still held in memory was lost and a
re-run asked again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
