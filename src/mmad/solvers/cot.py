"""The chain-of-thought solver: the official CoT turn first (asked once per image and shared by its
questions), its reply kept in the history, then the question turn (``Transformers/internvl_query.py``
with ``--CoT``).

With ``carries_history`` (InternVL's chat() appends every turn to the history it is given) a
question's turn also carries each earlier question of its image and the reply to it, so it waits
for the earlier question's turn; one that was never asked (the run stopped) fails its successors
with error class ``history``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from mmad.errors import PermanentError
from mmad.protocol.messages import Message, Prompt
from mmad.protocol.prompts import preamble_prompt, with_preamble
from mmad.solvers.base import Answer, ModelCaller, Reply, Solver, SolverSetup, fail, register_solver

Turns = list[tuple[Message, str]]


@register_solver("cot")
class ChainOfThoughtSolver(Solver):
    """The CoT turn, shared per image; a prompt without one is asked as the plain solver asks it."""

    def __init__(self, setup: SolverSetup) -> None:
        super().__init__(setup)
        self._preambles: dict[str, asyncio.Task[Reply]] = {}
        # Per posing of a prompt that carries its image's history: the turns up to and including its own.
        # None: the posing was not asked (a stop), so the questions after it fail as 'history' errors. A
        # result, not an exception: an exception nobody awaits is logged by asyncio as a traceback.
        self._turns: dict[tuple[str, str], asyncio.Future[Turns | None]] = {}

    async def answer(self, prompt: Prompt, call: ModelCaller) -> Answer:
        """The CoT turn's reply in the history, then the prompt's question turn; with
        ``carries_history`` the earlier questions' turns between them, once they are answered."""
        if not prompt.carries_history:
            return await self._answer(prompt, call, [])
        mine = self._turn(prompt.questions[0].key)
        turns: Turns = []
        if prompt.after is not None:
            earlier = await asyncio.shield(self._turn(prompt.after))
            if earlier is None:
                if not mine.done():
                    mine.set_result(None)
                error = PermanentError("an earlier question of the image was not asked", error_class="history")
                return Answer(prompt=prompt, started=time.monotonic(), error=error, asked=False)
            turns = list(earlier)
        try:
            answer = await self._answer(prompt, call, turns)
            if answer.reply is not None:  # a failed request leaves no turn, as the later questions would not see one
                turns = [*turns, (prompt.messages[-1], answer.reply.completion.text)]
            return answer
        finally:
            if not mine.done():
                mine.set_result(turns)

    async def _answer(self, prompt: Prompt, call: ModelCaller, history: Turns) -> Answer:
        if not prompt.needs_preamble:
            return await self.ask(prompt, call)
        started = time.monotonic()
        try:
            thoughts = await self._thoughts(prompt, call)
        except Exception as exc:
            return fail(Answer(prompt=prompt, started=started, digest=prompt.digest()), exc)
        text = thoughts.completion.text
        answer = await self.ask(prompt, call, sent=with_preamble(prompt, text, history))
        answer.started = started
        answer.extra["preamble"] = text
        if answer.reply is not None and answer.reply.cached and not thoughts.cached:
            # From the cache only when nothing was sent: the CoT turn it needed was (its question turn,
            # the same text again, was then found in the cache).
            answer.reply = replace(answer.reply, cached=False)
        elif answer.reply is not None and answer.reply.cached:
            # The question waited for its image's CoT turn as well when it was asked: both took the model's time.
            asked, preamble = answer.reply.completion, thoughts.completion.latency_s
            both = None if asked.latency_s is None or preamble is None else round(asked.latency_s + preamble, 4)
            answer.reply = replace(answer.reply, completion=replace(asked, latency_s=both))
        return answer

    async def _thoughts(self, prompt: Prompt, call: ModelCaller) -> Reply:
        """The chain-of-thought reply for an image, asked once and shared by its questions."""
        if prompt.image not in self._preambles:
            self._preambles[prompt.image] = asyncio.create_task(call(preamble_prompt(prompt), answer=False))
        return await asyncio.shield(self._preambles[prompt.image])

    def _turn(self, key: tuple[str, str]) -> asyncio.Future[Turns | None]:
        if key not in self._turns:
            self._turns[key] = asyncio.get_running_loop().create_future()
        return self._turns[key]

    def abandon(self, prompt: Prompt) -> None:
        """A prompt that will not be asked: the later questions waiting for its turn fail instead of waiting."""
        if prompt.carries_history:
            turn = self._turn(prompt.questions[0].key)
            if not turn.done():
                turn.set_result(None)

    def close(self) -> None:
        """Cancel the CoT turns still running."""
        for preamble in self._preambles.values():
            preamble.cancel()
