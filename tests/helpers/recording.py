"""A model that records every request it gets and answers the first option."""

from __future__ import annotations

from mmad.models.base import Completion, Model, Request


class RecordingModel(Model):
    """Keeps the requests; answers "Answer: A" (or a numbered list); replies to a CoT turn with thoughts."""

    def __init__(self) -> None:
        self.name = "recording"
        self.requests: list[Request] = []

    async def generate(self, request: Request) -> Completion:
        """Record and answer."""
        self.requests.append(request)
        choices = request.choices
        if not choices:
            return Completion(text="The query shows a dark mark near the rim.", prompt_tokens=1, completion_tokens=9)
        if len(choices) == 1:
            return Completion(text="Answer: A", prompt_tokens=1, completion_tokens=2)
        return Completion(text="\n".join(f"{i}. A" for i in range(1, len(choices) + 1)))
