"""The two tool protocols as pure functions: OpenAI function calling on the wire, and the JSON text protocol."""

from __future__ import annotations

import json

import pytest

from mmad.models.base import Request
from mmad.models.openai_convert import (
    classify_status,
    from_openai_messages,
    from_openai_response,
    to_openai_messages,
    to_openai_payload,
    tool_calls_from_openai,
)
from mmad.protocol.encoding import EncodedImage
from mmad.protocol.messages import ImagePart, Message, Prompt, TextPart, ToolCall
from mmad.protocol.tool_text import ToolReply, describe_tools, parse_text_turn, result_messages, with_tools_intro

SPEC = {
    "type": "function",
    "function": {
        "name": "zoom",
        "description": "Look closer.",
        "parameters": {"type": "object", "properties": {"x0": {"type": "number", "description": "left"}}},
    },
}


def _encode(part: ImagePart) -> EncodedImage:
    return EncodedImage(data=b"img", mime="image/png", width=1, height=1, digest="d")


def test_a_tool_conversation_goes_out_in_the_chat_completions_shape() -> None:
    call = ToolCall(id="call_1", name="zoom", arguments='{"x0": 0.1}')
    messages = (
        Message(role="user", parts=(ImagePart(path="/q.png"), TextPart(text="Is there any defect?"))),
        Message(role="assistant", tool_calls=(call,)),
        *result_messages(
            "native", [ToolReply("call_1", "zoom", "cropped", (ImagePart(path="/crop.png", role="tool"),))]
        ),
    )
    out = to_openai_messages(messages, _encode)
    assert out[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "zoom", "arguments": '{"x0": 0.1}'}}],
    }
    assert out[2] == {"role": "tool", "tool_call_id": "call_1", "content": "cropped"}
    assert out[3]["role"] == "user"  # the tool's image follows in a user turn: tool messages take no images
    assert [p["type"] for p in out[3]["content"]] == ["text", "image_url"]


def test_the_payload_carries_the_tools_and_the_forced_final_turn() -> None:
    request = Request(messages=(Message(role="user", parts=(TextPart(text="q"),)),), tools=(SPEC,), tool_choice="none")
    body = to_openai_payload("m", request, _encode)
    assert body["tools"] == [SPEC]
    assert body["tool_choice"] == "none"
    plain = to_openai_payload("m", Request(messages=request.messages), _encode)
    assert "tools" not in plain and "tool_choice" not in plain


def test_a_reply_with_tool_calls_is_read() -> None:
    payload = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "zoom", "arguments": '{"x0": 0.2}'}},
                        {"type": "function", "function": {"name": "expert", "arguments": {}}},
                        {"type": "not-a-function"},
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    completion = from_openai_response(payload)
    assert completion.text == ""
    assert completion.tool_calls == [
        ToolCall(id="c1", name="zoom", arguments='{"x0": 0.2}'),
        ToolCall(id="call_1", name="expert", arguments="{}"),
    ]
    assert tool_calls_from_openai(None) == []


def test_several_calls_answer_in_order_before_their_images() -> None:
    image = (ImagePart(path="/a.png", role="tool"),)
    replies = [
        ToolReply("a", "zoom", "z", image),
        ToolReply("b", "knowledge", "k"),
        ToolReply("c", "expert", "e", image),
    ]
    messages = result_messages("native", replies)
    assert [(m.role, m.tool_call_id) for m in messages] == [("tool", "a"), ("tool", "b"), ("tool", "c"), ("user", None)]
    assert messages[-1].text == "The image(s) from zoom:The image(s) from expert:" and len(messages[-1].images) == 2
    assert result_messages("native", [ToolReply("b", "knowledge", "k")])[-1].role == "tool"


def test_the_server_reads_tool_turns_back() -> None:
    wire = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "zoom", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "done"},
    ]
    messages = from_openai_messages(wire)
    assert messages[1].tool_calls == (ToolCall(id="c", name="zoom", arguments="{}"),)
    assert messages[2].role == "tool" and messages[2].tool_call_id == "c" and messages[2].text == "done"


def test_tool_calls_change_a_prompts_digest_and_plain_prompts_keep_theirs() -> None:
    question = Message(role="user", parts=(TextPart(text="q"),))
    plain = Prompt(image="i", messages=(question,), questions=())
    # The digest of a prompt without tools is what it always was: the canonical form has no new keys.
    assert (
        plain.digest()
        == Prompt(image="i", messages=(Message(role="user", parts=(TextPart(text="q"),)),), questions=()).digest()
    )
    one = Prompt(
        image="i",
        messages=(question, Message(role="assistant", tool_calls=(ToolCall(id="a", name="zoom"),))),
        questions=(),
    )
    two = Prompt(
        image="i",
        messages=(question, Message(role="assistant", tool_calls=(ToolCall(id="a", name="expert"),))),
        questions=(),
    )
    assert one.digest() != two.digest()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, '{"error": {"message": "tools param requires --jinja flag"}}'),
        (400, '{"error": "registry.ollama.ai/library/x does not support tools"}'),
        (400, '{"error": {"message": "\\"auto\\" tool choice requires --enable-auto-tool-choice"}}'),
        (400, '{"error": {"message": "Unrecognized request argument supplied: tools"}}'),
    ],
)
def test_a_server_that_refuses_tools_is_told_apart(status: int, body: str) -> None:
    error = classify_status(status, body, None)
    assert error.error_class == "tools_refused"
    assert "text protocol" in str(error)


def test_other_errors_are_not_taken_for_a_tools_refusal() -> None:
    assert classify_status(400, '{"error": "max_tokens too large"}', None).error_class == "bad_request"
    assert classify_status(500, '{"error": "out of memory"}', None).error_class == "server_error"


@pytest.mark.parametrize(
    ("reply", "kind", "value"),
    [
        ('{"tool": "zoom", "args": {"x0": 0.1}}', "tool", {"x0": 0.1}),
        ('I will look closer.\n```json\n{"tool": "expert", "args": {}}\n```', "tool", {}),
        ('{"answer": "B"}', "answer", "B"),
        ('Answer: {"answer": "A"}', "answer", "A"),
        ("The answer is B.", "invalid", "no JSON object found"),
        ('{"tool": "zoom", "args": [1, 2]}', "invalid", '"args" must be an object, not [1, 2]'),
        ('{"look": "zoom"}', "invalid", 'neither "tool" nor "answer"'),
    ],
)
def test_text_protocol_replies(reply: str, kind: str, value: object) -> None:
    turn = parse_text_turn(reply)
    assert turn.kind == kind
    if kind == "tool":
        assert turn.args == value
    elif kind == "answer":
        assert turn.answer == value
    else:
        assert isinstance(value, str) and value in turn.problem


def test_the_text_protocol_describes_tools_and_returns_results_as_user_turns() -> None:
    assert describe_tools([SPEC]) == "- zoom: Look closer. Arguments: x0 (left)."
    (turn,) = result_messages("text", [ToolReply("t1", "zoom", "cropped", (ImagePart(path="/c.png", role="tool"),))])
    assert turn.role == "user" and turn.text == "Result of zoom: cropped" and len(turn.images) == 1
    question = (Message(role="system", parts=(TextPart(text="Be brief."),)), Message(role="user"))
    merged = with_tools_intro(question, "Tools!")
    assert merged[0].text == "Be brief.\n\nTools!" and len(merged) == 2
    assert with_tools_intro(question[1:], "Tools!")[0].text == "Tools!"
    json.dumps([m.model_dump() for m in merged])
