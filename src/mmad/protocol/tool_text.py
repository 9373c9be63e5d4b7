"""What the tools strategy says to the model, and its text protocol for backends without tool calling.

Native protocol (OpenAI function calling): the tools go in the request's ``tools``; the model
answers a turn with ``tool_calls`` or with its final answer as text. Each result comes back as a
``tool`` message (its text), followed, when the tool made images, by a user message holding them
(chat-completions ``tool`` messages take no images).

Text protocol (llama.cpp without a tool template, local ``hf:`` models): the tools are described
in the system message and every reply is one JSON object::

    {"tool": "zoom", "args": {"x0": 0.1, "y0": 0.2, "x1": 0.5, "y1": 0.6}}
    {"answer": "B"}

A tool's result comes back as a user message: ``Result of zoom: ...`` and its images.

Either way the last turn forbids tools and asks for the answer (`FINAL_TURN`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from mmad.protocol.messages import ImagePart, Message, TextPart

NATIVE_INTRO = (
    "You are inspecting the query image for defects. Before you answer you may call the tools you are given "
    "to look closer, see normal images of the product, or ask a visual anomaly detector; you have at most "
    "{calls} tool turn(s). Call a tool only when it helps. When you are sure, reply with the option's letter only."
)
TEXT_INTRO = (
    "You are inspecting the query image for defects. Before you answer you may use these tools (at most "
    "{calls} tool turn(s)):\n{tools}\n\n"
    "Reply with exactly one JSON object and nothing else: "
    '{{"tool": "<name>", "args": {{...}}}} to use a tool (its result comes in the next message), or '
    '{{"answer": "<letter>"}} to answer.'
)
FINAL_TURN = "No more tools: answer the question now with the option's letter only."
TEXT_FINAL_TURN = 'No more tools: answer now with {"answer": "<letter>"} only.'
TEXT_INVALID = (
    'That reply was not one JSON object of the form {{"tool": "<name>", "args": {{...}}}} or {{"answer": "<letter>"}} '
    "({problem}). Reply again."
)
Protocol = Literal["native", "text"]
PROTOCOLS = ("auto", "native", "text")
_DECODER = json.JSONDecoder()
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def describe_tools(specs: list[dict[str, Any]]) -> str:
    """The tools as text-protocol lines: name, what it does, its arguments."""
    lines = []
    for spec in specs:
        function = spec["function"]
        properties = function["parameters"].get("properties", {})
        args = ", ".join(
            f"{name} ({prop.get('description', prop.get('type', ''))})" for name, prop in properties.items()
        )
        lines.append(f"- {function['name']}: {function['description']} Arguments: {args or 'none'}.")
    return "\n".join(lines)


def with_tools_intro(messages: tuple[Message, ...], text: str) -> tuple[Message, ...]:
    """The question's messages with the tools' instructions as (or at the end of) the system message."""
    if messages and messages[0].role == "system":
        first = messages[0]
        merged = Message(role="system", parts=(*first.parts, TextPart(text=f"\n\n{text}")))
        return (merged, *messages[1:])
    return (Message(role="system", parts=(TextPart(text=text),)), *messages)


def intro(protocol: Protocol, specs: list[dict[str, Any]], calls: int) -> str:
    """The system text that explains the tools in a protocol."""
    if protocol == "text":
        return TEXT_INTRO.format(calls=calls, tools=describe_tools(specs))
    return NATIVE_INTRO.format(calls=calls)


class ToolReply(NamedTuple):
    """A tool's result on its way back to the model."""

    call_id: str
    name: str
    text: str
    images: tuple[ImagePart, ...] = ()


def result_messages(protocol: Protocol, replies: Sequence[ToolReply]) -> tuple[Message, ...]:
    """The results of one turn's tool calls as the messages that carry them back to the model.

    Native: a ``tool`` message per call, in the calls' order (the API wants them right after the
    assistant turn), then one user message with every image they made. Text: one user message per
    result, its images after its text.
    """
    if protocol == "text":
        return tuple(
            Message(role="user", parts=(TextPart(text=f"Result of {r.name}: {r.text}"), *r.images)) for r in replies
        )
    tools = [Message(role="tool", parts=(TextPart(text=r.text),), tool_call_id=r.call_id) for r in replies]
    shown: list[TextPart | ImagePart] = []
    for reply in replies:
        if reply.images:
            shown += [TextPart(text=f"The image(s) from {reply.name}:"), *reply.images]
    return (*tools, Message(role="user", parts=tuple(shown))) if shown else tuple(tools)


@dataclass(frozen=True)
class TextTurn:
    """One text-protocol reply: a tool call, an answer, or something else (with why)."""

    kind: Literal["tool", "answer", "invalid"]
    tool: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    answer: str = ""
    problem: str = ""


def parse_text_turn(reply: str) -> TextTurn:
    """Read a text-protocol reply: the first protocol object in it (in a code fence, the last fenced one).

    Each ``{`` is tried as the start of a JSON value, so text after the object (even with braces of
    its own) and a second object after the first do not hide it.
    """
    fenced = _FENCE.findall(reply)
    problem = "no JSON object found"
    for candidate in [*reversed(fenced), reply]:
        for value in _objects(candidate):
            turn = _turn(value)
            if turn.kind != "invalid":
                return turn
            problem = turn.problem
    return TextTurn("invalid", problem=problem)


def _objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects in a text, in order (one inside another counts once, as its outer object)."""
    found: list[dict[str, Any]] = []
    start = text.find("{")
    while start != -1:
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        start = text.find("{", end)
    return found


def _turn(value: dict[str, Any]) -> TextTurn:
    if "answer" in value:
        answer = value["answer"]
        if isinstance(answer, bool) or not isinstance(answer, str | int | float):
            return TextTurn("invalid", problem=f'"answer" must be the option\'s letter, not {json.dumps(answer)}')
        return TextTurn("answer", answer=str(answer))
    if isinstance(value.get("tool"), str):
        args = value.get("args", value.get("arguments", {}))
        if not isinstance(args, dict):
            return TextTurn("invalid", problem=f'"args" must be an object, not {json.dumps(args)}')
        return TextTurn("tool", tool=value["tool"], args=args)
    return TextTurn("invalid", problem='the object has neither "tool" nor "answer"')
