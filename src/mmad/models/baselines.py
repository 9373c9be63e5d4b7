"""Baselines that need no model: a seeded random guess and a fixed letter."""

from __future__ import annotations

import asyncio
import hashlib
import random

from mmad.models.base import Completion, Model, Request


def _reply(letters: list[str]) -> str:
    if len(letters) == 1:
        return f"Answer: {letters[0]}"
    return "\n".join(f"{i}. Answer: {letter}." for i, letter in enumerate(letters, start=1))


class RandomModel(Model):
    """Guesses uniformly among each question's options, seeded by the question, so re-runs agree."""

    def __init__(self, seed: int = 0, latency_s: float = 0.0) -> None:
        self.name = f"random:{seed}"
        self.seed = seed
        self.latency_s = latency_s

    async def generate(self, request: Request) -> Completion:
        """Pick a letter per question."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        choices = request.choices
        # Over HTTP the server draws each question's id from the request's text and images.
        ids = request.question_ids or tuple(f"#{i}" for i in range(len(choices)))
        letters = []
        for qid, options in zip(ids, choices, strict=False):
            digest = hashlib.sha256(f"{self.seed}|{qid}|{''.join(options)}".encode()).digest()
            letters.append(random.Random(digest).choice(options) if options else "A")
        # No tokenizer reads the question: the reply has no token count, and 0 would be a measured free answer.
        return Completion(text=_reply(letters or ["A"]))


class FixedModel(Model):
    """Always answers the same letter (where the question has it; else its first option)."""

    def __init__(self, letter: str = "A", latency_s: float = 0.0) -> None:
        self.name = f"fixed:{letter}"
        self.letter = letter.upper()
        self.latency_s = latency_s

    async def generate(self, request: Request) -> Completion:
        """Answer the fixed letter to every question."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        choices = request.choices or (("A",),)
        letters = [self.letter if self.letter in options else (options[0] if options else "A") for options in choices]
        return Completion(text=_reply(letters))
