"""A --strategies tools run answered from the response cache gives the model's seconds, as the run that sent the
requests does: the branches' s/question counted each cached turn's lookup (about 0 s), and the question's
s/question its lookups too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.cli import main
from mmad.records.record import read_records
from mmad.serve.scripted_tools import ScriptedToolUser
from mmad.serve.server import ChatServer, serve_in_thread
from tests.helpers.mmad_tree import make_mmad_tree

LATENCY_S = 0.15


def _cells(run: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, float | None]:
    capsys.readouterr()
    assert main(["score", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    return {
        f"{name}:{cell['name']}": cell["value"]
        for name in ("cost", "tools")
        for cell in metrics[name]["cells"]
        if cell["name"] == "s/question" or cell["name"].endswith(" s/question")
    }


def test_a_cached_tools_run_gives_the_seconds_the_asked_run_took(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_mmad_tree(tmp_path / "data")
    user = ScriptedToolUser("zoom")
    options = {"limit": 2, "datasets": ["DS-MVTec"], "tools": ["zoom"], "strategies": "tools"}
    with serve_in_thread(ChatServer(user, any_model=True, latency_s=LATENCY_S)) as server:
        for name in ("asked", "cached"):
            evaluate(
                "compat:scripted",
                data,
                out=tmp_path / name,
                base_url=server.base_url,
                cache_dir=str(tmp_path / "cache"),
                **options,  # type: ignore[arg-type]
            )
            if name == "asked":
                sent = len(user.requests)
    assert len(user.requests) == sent  # the second run asked nothing
    assert all(r.cached for r in read_records(tmp_path / "cached" / "records.jsonl"))

    asked, cached = _cells(tmp_path / "asked", capsys), _cells(tmp_path / "cached", capsys)
    assert set(asked) == {"cost:s/question", "tools:direct s/question", "tools:tools s/question"}
    for name, seconds in asked.items():
        again = cached[name]
        assert seconds is not None and again is not None, (name, asked, cached)
        assert seconds >= LATENCY_S and again >= LATENCY_S, (name, asked, cached)  # not a lookup's
        assert abs(seconds - again) <= 0.25 * seconds, (name, asked, cached)
