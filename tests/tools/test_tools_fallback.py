"""--blend: a tools conversation that fails outright falls back to the direct answer, over real HTTP
against the scripted tool user (`mmad serve -m scripted-tools`), recorded and scored as a fallback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from mmad import evaluate
from mmad.errors import RetryableError
from mmad.models.base import Completion, Request
from mmad.records.record import Record, Status, read_records
from mmad.score.scored import score_answers_file
from mmad.serve.scripted_tools import ScriptedToolUser
from mmad.serve.server import ChatServer, serve_in_thread
from tests.helpers.mmad_tree import make_mmad_tree


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_mmad_tree(tmp_path / "data")


def _run(data: Path, out: Path, user: ScriptedToolUser, *, refuse_tools: bool = False, **settings: Any) -> Record:
    options: dict[str, Any] = {
        "limit": 1,
        "datasets": ["DS-MVTec"],
        "cache": False,
        "tools": ["zoom"],
        "strategies": "tools",
        "retry_base_s": 0,
    }
    options.update(settings)
    with serve_in_thread(ChatServer(user, any_model=True, refuse_tools=refuse_tools)) as server:
        evaluate("compat:scripted", data, out=out, base_url=server.base_url, **options)
    (record,) = read_records(out / "records.jsonl")
    return record


def _fell_back(out: Path) -> float | None:
    tool_use = score_answers_file(out / "records.jsonl").metric("tool-use")
    assert tool_use is not None
    cell = tool_use.cell("fell back to direct")
    assert cell is not None and cell.name in tool_use.headline
    return cell.value


def test_a_conversation_the_server_refuses_falls_back_to_the_direct_answer(data: Path, tmp_path: Path) -> None:
    """Native function calling against a server without it: the conversation fails (tools_refused,
    permanent), and --blend takes the direct branch's answer, recorded and scored as a fallback."""
    out = tmp_path / "run"
    record = _run(data, out, ScriptedToolUser("zoom"), refuse_tools=True, tool_protocol="native", blend=0.5)
    assert record.status is Status.ANSWERED and record.error_class is None
    direct = record.extra["direct"]
    assert direct["status"] == "answered" and record.answer == direct["answer"] == "A"
    assert record.raw_reply == direct["raw_reply"]
    blend = record.extra["blend"]
    assert blend["from"] == "direct" and blend["answer"] == "A"
    assert blend["fallback"] == "the tools conversation failed (tools_refused)"
    tools = record.extra["tools"]
    assert tools["answer"] is None and tools["error_class"] == "tools_refused"
    assert "tools are not supported by this server" in tools["error_message"]
    assert tools["turns"] == [] and tools["calls"] == []
    assert record.attempts == 1 and not record.cached
    (answer,) = score_answers_file(out / "records.jsonl").answers
    assert answer.answer == "A" and answer.failure is None  # an answer, not an error, in the score
    assert _fell_back(out) == 100.0


def test_without_blend_a_failed_conversation_stays_a_failed_question(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    record = _run(data, out, ScriptedToolUser("zoom"), refuse_tools=True, tool_protocol="native")
    assert record.status is Status.ERROR and record.error_class == "tools_refused"
    assert record.answer is None and record.extra["direct"]["answer"] == "A"
    assert "blend" not in record.extra and "tools" not in record.extra
    (answer,) = score_answers_file(out / "records.jsonl").answers
    assert answer.answer is None and answer.failure == "error"


class FailsSecondTurn(ScriptedToolUser):
    """Calls zoom, then fails every later turn of the conversation with a server error (HTTP 500)."""

    async def generate(self, request: Request) -> Completion:
        if request.tools and any(m.role == "tool" for m in request.messages):
            self.requests.append(request)
            raise RetryableError("the GPU fell over", error_class="server_error")
        return await super().generate(request)


def test_a_conversation_whose_retries_are_spent_mid_way_keeps_its_turns_and_falls_back(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    user = FailsSecondTurn("zoom")
    record = _run(data, out, user, blend=0.5, likelihood=True, max_retries=1)
    assert record.status is Status.ANSWERED and record.answer == record.extra["direct"]["answer"] == "A"
    tools = record.extra["tools"]
    assert tools["error_class"] == "server_error" and "the GPU fell over" in tools["error_message"]
    assert [t["calls"] for t in tools["turns"]] == [["zoom"]]  # the turn answered before the failure
    assert [c["name"] for c in tools["calls"]] == ["zoom"]
    assert record.attempts == 1 + 2  # the first turn, and the failed turn's two attempts
    blend = record.extra["blend"]
    assert blend["from"] == "direct" and blend["fallback"] == "the tools conversation failed (server_error)"
    # The direct branch's letter probabilities are the blend's (0.6 for its letter).
    assert blend["probabilities"]["A"] == pytest.approx(0.6) and record.parse_method == "likelihood"
    direct_tokens = record.extra["direct"]["prompt_tokens"]
    assert record.prompt_tokens == direct_tokens + tools["turns"][0]["prompt_tokens"]
    assert _fell_back(out) == 100.0


class NoAnswerAtTheLimit(ScriptedToolUser):
    """Calls tools until the turn limit, then answers the forced last turn with no letter."""

    async def generate(self, request: Request) -> Completion:
        if request.tool_choice == "none":
            self.requests.append(request)
            return Completion(text="I would need another look.")
        return await super().generate(request)


def test_the_turn_limit_without_an_answer_falls_back_and_is_counted(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    record = _run(data, out, NoAnswerAtTheLimit("zoom,zoom"), blend=0.5, max_turns=2)
    tools = record.extra["tools"]
    assert tools["forced_final"] and tools["answer"] is None and "error_class" not in tools
    assert record.status is Status.ANSWERED and record.answer == record.extra["direct"]["answer"]
    assert record.extra["blend"]["from"] == "direct"
    assert record.extra["blend"]["fallback"] == "the tools branch gave no answer (unparsed)"
    assert _fell_back(out) == 100.0


def test_a_tools_answer_is_no_fallback(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    record = _run(data, out, ScriptedToolUser("zoom"), blend=0.5)
    assert record.extra["blend"]["from"] == "both" and "fallback" not in record.extra["blend"]
    assert _fell_back(out) == 0.0


def test_the_reports_viewer_shows_why_the_conversation_failed(data: Path, tmp_path: Path) -> None:
    import json
    import re

    from mmad.report.html import write_html_report

    out = tmp_path / "run"
    _run(data, out, ScriptedToolUser("zoom"), refuse_tools=True, tool_protocol="native", blend=0.5)
    page = write_html_report([out], tmp_path / "report.html").read_text()
    found = re.search(r'id="mmad-data">(.*?)</script>', page, re.S)
    assert found is not None
    packed = json.loads(found[1])
    (talk,) = packed["runs"][0]["tools"].values()
    # Not the question's own turns again (no reply came back): only the failure.
    assert [turn[0] for turn in talk["turns"]] == ["error"]
    assert packed["strings"][talk["turns"][0][1]].startswith("the conversation failed (tools_refused): ")
    assert talk["direct"] == "A"


SECRET = "sk-test-PLANTED-0123456789abcdef0123456789"


class EchoesTheKey(ScriptedToolUser):
    """A server whose tool turns fail with an error that repeats the caller's key."""

    async def generate(self, request: Request) -> Completion:
        if request.tools:
            raise RetryableError(f"upstream rejected key {SECRET}", error_class="server_error")
        return await super().generate(request)


def test_the_failed_conversations_message_is_kept_without_credentials(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MMAD_TEST_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "run"
    record = _run(data, out, EchoesTheKey("zoom"), blend=0.5, key_env="MMAD_TEST_API_KEY", max_retries=0)
    assert record.status is Status.ANSWERED and record.extra["blend"]["fallback"]
    assert "upstream rejected key ***" in record.extra["tools"]["error_message"]
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in caplog.text
    assert "the tools conversation about" in caplog.text and "(server_error)" in caplog.text
