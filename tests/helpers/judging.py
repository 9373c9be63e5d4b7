"""A model whose replies no parser can read, so that every question goes to the judge (--judge tests)."""

from __future__ import annotations

from mmad.models.base import Completion, Model, Request


class Rambler(Model):
    """Names no option in any reply, and reports its prompt tokens."""

    name = "rambler"

    async def generate(self, request: Request) -> Completion:
        return Completion(text="Hard to say; it could be several things, honestly.", prompt_tokens=50)
