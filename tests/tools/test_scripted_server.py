"""`mmad serve`'s side of tool calling: tool calls on the wire, OpenAI's turn rules, a server refusing tools."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from mmad.serve.scripted_tools import ScriptedToolUser
from mmad.serve.server import TOOLS_REFUSED_MESSAGE, ChatServer, serve_in_thread

QUESTION = {"role": "user", "content": "Is there any defect in the object?\nA. Yes.\nB. No."}
ZOOM = {"type": "function", "function": {"name": "zoom", "description": "", "parameters": {"type": "object"}}}


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_tool_calls_go_out_in_the_chat_completions_shape() -> None:
    with serve_in_thread(ChatServer(ScriptedToolUser("zoom"), any_model=True)) as server:
        status, body = _post(server.base_url, {"model": "m", "messages": [QUESTION], "tools": [ZOOM]})
    assert status == 200
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "zoom" and call["id"]
    assert json.loads(call["function"]["arguments"]) == {"x0": 0.25, "y0": 0.25, "x1": 0.75, "y1": 0.75}


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        (
            [QUESTION, {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "zoom"}}]}, QUESTION],
            "must be followed by tool messages responding to each tool_call_id; unanswered: c1",
        ),
        ([QUESTION, {"role": "tool", "tool_call_id": "c9", "content": "x"}], "answers 'c9', which no open tool call"),
    ],
)
def test_a_tool_conversation_out_of_order_gets_a_400(messages: list[dict[str, Any]], says: str) -> None:
    with serve_in_thread(ChatServer(ScriptedToolUser("zoom"), any_model=True)) as server:
        status, body = _post(server.base_url, {"model": "m", "messages": messages, "tools": [ZOOM]})
    assert status == 400 and says in body["error"]["message"]


def test_a_server_without_tool_calling_refuses_tools_and_answers_without_them() -> None:
    with serve_in_thread(ChatServer(ScriptedToolUser("zoom"), any_model=True, refuse_tools=True)) as server:
        status, body = _post(server.base_url, {"model": "m", "messages": [QUESTION], "tools": [ZOOM]})
        assert status == 400 and body["error"]["message"] == TOOLS_REFUSED_MESSAGE
        status, body = _post(server.base_url, {"model": "m", "messages": [QUESTION]})
    assert status == 200 and body["choices"][0]["message"]["content"] == "A"
