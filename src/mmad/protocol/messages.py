"""What a model is asked: messages of text and image parts, and the questions a request poses.

These types are model-neutral. Each backend translates them to its provider's payload in a pure
function of its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ImageRole = Literal["template", "query", "expert", "tool"]
AnswerFormat = Literal["single", "numbered-list", "last-letter"]


class TextPart(BaseModel):
    """A piece of text."""

    model_config = ConfigDict(frozen=True)

    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image: a file under the data root (or a rendered file), or a data URL received over HTTP."""

    model_config = ConfigDict(frozen=True)

    type: Literal["image"] = "image"
    path: str | None = None
    data_url: str | None = None
    role: ImageRole = "query"


Part = TextPart | ImagePart


@dataclass(frozen=True)
class ToolCall:
    """A model's request to run one tool (OpenAI function calling); ``arguments`` is the JSON text
    the model sent. A dataclass, not a model: a `Completion` holding it goes through
    `dataclasses.asdict` into the response cache."""

    id: str
    name: str
    arguments: str = "{}"


class Message(BaseModel):
    """One chat turn. An assistant turn may ask for tools; a ``tool`` turn answers one of those calls."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    parts: tuple[Part, ...] = Field(default_factory=tuple)
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The message's text parts joined."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        """The message's image parts, in order."""
        return [p for p in self.parts if isinstance(p, ImagePart)]


class PosedQuestion(BaseModel):
    """A question as it was put to the model: options re-lettered, gold letter mapped."""

    model_config = ConfigDict(frozen=True)

    question_id: str
    image: str
    question_type: str
    text: str
    options: dict[str, str]
    correct_answer: str
    number: int = Field(description="its 1-based number in the image's conversation")
    variant: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What makes a posing unique in a run: the question and the variant (as a record's key)."""
        return (self.question_id, self.variant)


class Prompt(BaseModel):
    """One request: the conversation to send and the questions whose answers it carries."""

    model_config = ConfigDict(frozen=True)

    image: str
    messages: tuple[Message, ...]
    questions: tuple[PosedQuestion, ...]
    answer_format: AnswerFormat = "single"
    max_tokens: int | None = Field(default=128, description="the reply's token limit; None leaves it out")
    needs_preamble: bool = Field(default=False, description="a chain-of-thought turn comes first (per image)")
    carries_history: bool = Field(
        default=False,
        description="the earlier questions of its image and their replies go between the chain-of-thought turn "
        "and its question (InternVL's chat() appends every turn to the history it is given)",
    )
    after: tuple[str, str] | None = Field(
        default=None, description="with carries_history: the key of the posing asked just before it (None: first)"
    )
    tools: tuple[dict[str, Any], ...] = Field(
        default=(), description="tools the model may call this turn (OpenAI function format): the tools strategy"
    )
    tool_choice: str | None = Field(default=None, description='"none" forbids tool calls (the forced final turn)')

    def digest(self, image_digests: dict[str, str] | None = None) -> str:
        """A stable hash of what is sent (image parts by content digest where known)."""
        digests = image_digests or {}
        canonical = [
            {
                "role": m.role,
                "parts": [
                    p.text if isinstance(p, TextPart) else {"image": digests.get(p.path or "", p.path or p.data_url)}
                    for p in m.parts
                ],
                # Only where present: a prompt without tools hashes as it always has (cache keys stay valid).
                **({"calls": [asdict(c) for c in m.tool_calls]} if m.tool_calls else {}),
                **({"answers": m.tool_call_id} if m.tool_call_id else {}),
            }
            for m in self.messages
        ]
        body: dict[str, Any] = {"m": canonical, "f": self.answer_format, "t": self.max_tokens}
        if self.tools or self.tool_choice:  # only then: a prompt without tools hashes as it always has
            body["tools"] = [list(self.tools), self.tool_choice]
        payload = json.dumps(body, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
