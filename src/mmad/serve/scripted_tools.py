"""A scripted tool user: a model that calls the tools in a fixed order, then answers from the expert.

Served by `mmad serve -m scripted-tools` (or ``scripted-tools:<plan>``), it lets the tools
strategy run end to end over real HTTP without a real model, in tests and in the demo. It reads
only the conversation, as any remote model does:

- It speaks the protocol it is addressed in: OpenAI function calling when the request has
  ``tools``, the JSON text protocol when the system message describes it, and a plain answer
  to a plain question (the direct branch).
- The plan is a comma-separated list of steps, one tool turn each; ``+`` joins calls made in the
  same turn. A step is a tool name, ``bad`` (zoom with an inverted box) or ``unknown`` (a tool that
  does not exist). The default, ``expert,zoom``, asks the expert, then zooms into the box it
  suggested (compare zooms there too; reference asks for one image).
- When the plan is done, or the turn forbids tools, it answers: for "is there any defect?", Yes
  when the expert's score (from its result in the conversation) is above its threshold, else No
  (the first option when the expert was never asked); the first option for any other question.
  With ``logprobs`` it gives letter log-probabilities, confident after the tools (0.9) and less
  so for a plain question (0.6), so the blend of the two branches is a real average.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from mmad.errors import ConfigError
from mmad.models.base import Completion, Model, Request
from mmad.protocol.messages import Message, ToolCall
from mmad.protocol.tool_text import FINAL_TURN, TEXT_FINAL_TURN

DEFAULT_PLAN = ("expert", "zoom")
STEPS = {"zoom", "reference", "compare", "expert", "knowledge", "bad", "unknown"}
DEFAULT_BOX = [0.25, 0.25, 0.75, 0.75]
_OPTION = re.compile(r"^([A-E])\. ?(.*)$", re.MULTILINE)
_FACTS = re.compile(r'\{"score": .*?\}')
_TEXT_PROTOCOL = '{"tool": "<name>"'


def parse_plan(spec: str) -> tuple[str, ...]:
    """``expert,zoom+reference`` as steps; ConfigError names an unknown step."""
    steps = tuple(step.strip() for step in spec.split(",") if step.strip()) if spec else DEFAULT_PLAN
    for step in steps:
        unknown = [name for name in step.split("+") if name not in STEPS]
        if unknown:
            msg = f"scripted-tools: unknown step {', '.join(unknown)}; steps are {', '.join(sorted(STEPS))}"
            raise ConfigError(msg)
    return steps


class ScriptedToolUser(Model):
    """Calls tools by plan, then answers from the expert's score (see the module docstring)."""

    endpoint = "local-scripted"

    def __init__(self, plan: str = "") -> None:
        self.plan = parse_plan(plan)
        self.name = "scripted-tools" + (f":{plan}" if plan else "")
        self.requests: list[Request] = []
        """Every request answered, in order (tests read what each turn delivered)."""

    def describe(self) -> dict[str, Any]:
        """The plan, for run.json."""
        return {"name": self.name, "plan": list(self.plan)}

    async def generate(self, request: Request) -> Completion:
        """One turn: the plan's next tool call(s), or the answer."""
        self.requests.append(request)
        messages = request.messages
        text_protocol = any(m.role == "system" and _TEXT_PROTOCOL in m.text for m in messages)
        tools_offered = bool(request.tools) or text_protocol
        final = request.tool_choice == "none" or any(
            m.role == "user" and m.text.strip() in {FINAL_TURN, TEXT_FINAL_TURN} for m in messages
        )
        done = _tool_turns(messages, text_protocol)
        if tools_offered and not final and done < len(self.plan):
            calls = [_call(step, done, index, messages) for index, step in enumerate(self.plan[done].split("+"))]
            if text_protocol:
                name, arguments = calls[0].name, json.loads(calls[0].arguments)
                return Completion(text=json.dumps({"tool": name, "args": arguments}))
            return Completion(text="", tool_calls=calls, finish_reason="tool_calls")
        letter, options = _answer(messages)
        confidence = 0.9 if tools_offered else 0.6
        logprobs = _letter_logprobs(letter, options, confidence) if request.want_logprobs else None
        text = json.dumps({"answer": letter}) if text_protocol else letter
        return Completion(text=text, letter_logprobs=logprobs)


def _tool_turns(messages: tuple[Message, ...], text_protocol: bool) -> int:
    """How many tool turns the conversation has had (assistant turns that called a tool)."""
    if text_protocol:
        return sum(1 for m in messages if m.role == "assistant" and '"tool"' in m.text)
    return sum(1 for m in messages if m.role == "assistant" and m.tool_calls)


def _expert_facts(messages: tuple[Message, ...]) -> dict[str, Any] | None:
    """The expert's score, threshold and box, from its latest result in the conversation."""
    for message in reversed(messages):
        if message.role in {"tool", "user"}:
            found = _FACTS.search(message.text)
            if found:
                facts: dict[str, Any] = json.loads(found.group(0))
                return facts
    return None


def _call(step: str, turn: int, index: int, messages: tuple[Message, ...]) -> ToolCall:
    facts = _expert_facts(messages)
    box = (facts or {}).get("box") or DEFAULT_BOX
    corners = dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))
    arguments: dict[str, Any] = {
        "zoom": corners,
        "compare": corners,
        "reference": {"k": 1},
        "bad": {"x0": 0.9, "y0": 0.1, "x1": 0.1, "y1": 0.5},
    }.get(step, {})
    name = {"bad": "zoom", "unknown": "magnify"}.get(step, step)
    return ToolCall(id=f"call_{turn}_{index}", name=name, arguments=json.dumps(arguments))


def _answer(messages: tuple[Message, ...]) -> tuple[str, dict[str, str]]:
    """The letter to answer and the question's options (from the first user turn that has options)."""
    question = next((m.text for m in messages if m.role == "user" and _OPTION.search(m.text)), "")
    options = dict(_OPTION.findall(question))
    if not options:
        return "A", {}
    first = next(iter(options))
    lowered = question.lower()
    facts = _expert_facts(messages)
    if facts is None or not ("is there any defect" in lowered or "any anomal" in lowered):
        return first, options
    wanted = "yes" if facts["score"] > facts["threshold"] else "no"
    return next((k for k, v in options.items() if v.lower().startswith(wanted)), first), options


def _letter_logprobs(letter: str, options: dict[str, str], confidence: float) -> dict[str, float]:
    others = [k for k in options if k != letter]
    rest = (1 - confidence) / len(others) if others else 0.0
    values = {letter: math.log(confidence)}
    values.update({k: math.log(rest) for k in others if rest > 0})
    return values
