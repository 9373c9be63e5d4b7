"""What every model backend is: one async method from a request to a completion."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart, Message, PosedQuestion, ToolCall

# The reply limit of in-process backends when a request leaves max_tokens out (a recipe that
# reproduces a script which set none): the API's own default applies to remote ones instead.
LOCAL_DEFAULT_MAX_TOKENS = 1024


@dataclass(frozen=True)
class Request:
    """One call: the conversation, generation limits, and the questions it poses.

    ``messages`` is what a chat model reads; ``questions`` is the same questions, structured, for
    backends that answer without reading text (the visual expert, the baselines). A backend reads
    the structured questions and never parses the prompt's text. A backend must not know the gold:
    each question's ``correct_answer`` is blanked here ("") whatever the caller passed.
    The question's ``question_type`` is its raw MMAD type (``Subtask.parse`` reads it), ``options``
    its letters as posed, ``image`` the image's benchmark key. Image parts say what they are by
    their ``role`` (`query_images`, `template_images`, `expert_images`).

    ``choices`` and ``question_ids`` default to the questions' letters and ids.

    ``max_tokens`` and ``temperature`` of None are left out of the request: the server's default
    applies (in-process backends use `LOCAL_DEFAULT_MAX_TOKENS` and greedy decoding).
    """

    messages: tuple[Message, ...]
    max_tokens: int | None = 128
    temperature: float | None = 0.0
    choices: tuple[tuple[str, ...], ...] = ()
    question_ids: tuple[str, ...] = ()
    want_logprobs: bool = False
    response_schema: dict[str, Any] | None = None
    images: ImageEncoder | None = None
    questions: tuple[PosedQuestion, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    """Tools the model may call (OpenAI function format); empty for a plain question."""
    tool_choice: str | None = None
    """``"none"`` forbids tool calls this turn (the forced final answer); None leaves the server's default."""

    def __post_init__(self) -> None:
        # Frozen: the derived defaults are set once, here, so every reader sees the same letters.
        if any(q.correct_answer for q in self.questions):
            blind = tuple(q.model_copy(update={"correct_answer": ""}) for q in self.questions)
            object.__setattr__(self, "questions", blind)
        if self.questions and not self.choices:
            object.__setattr__(self, "choices", tuple(tuple(q.options) for q in self.questions))
        if self.questions and not self.question_ids:
            object.__setattr__(self, "question_ids", tuple(q.question_id for q in self.questions))

    def _images(self, role: str) -> tuple[ImagePart, ...]:
        # The conversation shows its images once, in its first user turn that has any (later
        # turns of a chain of thought or a history refer back to them).
        first = next((m for m in self.messages if m.role == "user" and m.images), None)
        return tuple(p for p in first.images if p.role == role) if first else ()

    @property
    def query_images(self) -> tuple[ImagePart, ...]:
        """The image(s) under inspection (one in MMAD)."""
        return self._images("query")

    @property
    def template_images(self) -> tuple[ImagePart, ...]:
        """The normal reference images shown beside the query, in order."""
        return self._images("template")

    @property
    def expert_images(self) -> tuple[ImagePart, ...]:
        """Images a visual expert rendered for the agent protocol (its map or boxes)."""
        return self._images("expert")


@dataclass
class Completion:
    """A model's reply and what it cost."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    refusal: bool = False
    letter_logprobs: dict[str, float] | None = None
    abstained: bool = False
    # Positions (0-based) of the questions of a several-question request (per-image) that the model
    # declined while answering others: the visual expert's "-" items, a missing cell, not an unreadable reply.
    abstained_items: list[int] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Set by the model caller once the reply is in, so the response cache keeps it: a run answered from the
    # cache can say how long its questions took the model, not how long a lookup took. None: not measured
    # (a reply cached before mmad kept it, or one a backend made without the caller).
    latency_s: float | None = None

    def __post_init__(self) -> None:
        # The response cache stores completions as JSON objects: tool calls come back as dicts.
        self.tool_calls = [ToolCall(**c) if isinstance(c, dict) else c for c in self.tool_calls]


class Model(ABC):
    """A backend. Subclasses implement ``generate``; everything else has a sensible default."""

    name: str = "model"
    endpoint: str = "local"
    is_local: bool = True
    prefetch_images: bool = False
    """Whether the runner should encode images ahead of the requests (backends that send encoded images)."""

    @abstractmethod
    async def generate(self, request: Request) -> Completion:
        """Answer one request. Raise RetryableError or PermanentError when the call fails."""

    def prepare(self, benchmark: Any) -> None:  # noqa: B027 - optional hook
        """Look at the benchmark before the run (calibration); most backends need nothing."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Fail early (ConfigError, MissingExtraError) when the backend cannot work, before a run starts."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def describe(self) -> dict[str, Any]:
        """What run.json records about the model (never a secret)."""
        return {"name": self.name, "endpoint": self.endpoint}
