"""A Ray run of --strategy tools gives the same answers, tool calls and turns as the local engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.records.record import read_records
from mmad.serve.scripted_tools import ScriptedToolUser
from mmad.serve.server import ChatServer, serve_in_thread
from tests.run.conftest import ray_cluster  # noqa: F401 - the session's local Ray

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _outcome(path: Path) -> dict[tuple[str, str], tuple[object, ...]]:
    return {
        r.key: (
            r.status.value,
            r.answer,
            r.extra["direct"]["answer"],
            [(c["name"], json.dumps(c["arguments"]), c["summary"]) for c in r.extra["tools"]["calls"]],
            [t["reply"] for t in r.extra["tools"]["turns"]],
        )
        for r in read_records(path)
    }


def test_the_same_tool_conversations_as_the_local_engine(
    mmad_json: Path,
    tmp_path: Path,
    ray_cluster: str,  # noqa: F811
) -> None:
    user = ScriptedToolUser("zoom,reference+compare,bad")
    common = {
        "strategies": "tools",
        "tools": ["zoom", "reference", "compare"],
        "cache": False,
        "concurrency": 4,
        "limit": 12,
    }
    with serve_in_thread(ChatServer(user, any_model=True)) as server:
        local = evaluate("compat:scripted", mmad_json, out=tmp_path / "local", base_url=server.base_url, **common)
        on_ray = evaluate(
            "compat:scripted",
            mmad_json,
            out=tmp_path / "ray",
            base_url=server.base_url,
            engine="ray",
            ray_actors=2,
            **common,
        )
    assert local.complete and on_ray.complete
    expected = _outcome(tmp_path / "local" / "records.jsonl")
    assert len(expected) == 12
    assert all(len(outcome[3]) == 4 for outcome in expected.values())  # zoom, reference, compare, bad
    assert _outcome(tmp_path / "ray" / "records.jsonl") == expected
    # The tools' images are written in the Ray run's own folder, where its records point.
    for record in read_records(tmp_path / "ray" / "records.jsonl"):
        for call in record.extra["tools"]["calls"]:
            assert all(p.startswith("tools/") and (tmp_path / "ray" / p).is_file() for p in call["images"])
