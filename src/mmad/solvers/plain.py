"""The plain solver: send the prompt as built, parse the reply by the run's parser."""

from __future__ import annotations

import time

from mmad.errors import PermanentError
from mmad.protocol.messages import Prompt
from mmad.solvers.base import Answer, ModelCaller, Solver, register_solver


@register_solver("plain")
class PlainSolver(Solver):
    """One request per prompt; its reply answers the prompt's questions."""

    async def answer(self, prompt: Prompt, call: ModelCaller) -> Answer:
        """The prompt sent as it is."""
        if prompt.needs_preamble:
            error = PermanentError(
                "the prompt starts with a chain-of-thought turn: ask it with the cot solver", error_class="solver"
            )
            return Answer(prompt=prompt, started=time.monotonic(), error=error, asked=False)
        return await self.ask(prompt, call)
