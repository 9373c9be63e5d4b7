"""The agent strategy's solver: draw the expert's map (or the ground-truth mask) before asking.

The prompt builder places the extra image's part where the strategy puts it, naming the file it
will be (`AgentRenderer.part_for`) without drawing it: building a prompt has no side effects. This
wrapper draws the file (once per image, in a worker thread: the expert takes tens of milliseconds)
before the prompt is priced or sent, then lets the solver it wraps ask. An image that cannot be
drawn (a missing mask or template) fails its questions with error class ``input``, as a prompt
that could not be built does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from mmad.errors import ConfigError
from mmad.protocol.agent import AgentRenderer
from mmad.protocol.messages import Prompt
from mmad.solvers.base import Answer, ModelCaller, Solver, SolverSetup, register_solver

logger = logging.getLogger(__name__)


@register_solver("agent-render")
class AgentRenderSolver(Solver):
    """Renders each image's agent picture, then the wrapped solver asks."""

    def __init__(self, setup: SolverSetup) -> None:
        super().__init__(setup)
        if setup.inner is None or not isinstance(setup.agent, AgentRenderer) or setup.benchmark is None:
            msg = "the agent-render solver wraps another and needs the agent strategy's renderer and the benchmark"
            raise ConfigError(msg)
        self.renderer: AgentRenderer = setup.agent
        self._drawn: dict[str, asyncio.Task[Path]] = {}

    def _draw(self, image: str) -> asyncio.Task[Path]:
        if image not in self._drawn:
            item = self.setup.benchmark.item(image)
            self._drawn[image] = asyncio.create_task(
                asyncio.to_thread(self.renderer.draw_file, self.setup.benchmark, item)
            )
        return self._drawn[image]

    async def prepare(self, prompt: Prompt) -> None:
        """Draw the image's agent picture (a failure is reported when the prompt is solved)."""
        if _sends_a_picture(prompt):
            with contextlib.suppress(Exception):  # answer() records it
                await asyncio.shield(self._draw(prompt.image))
        await super().prepare(prompt)

    async def answer(self, prompt: Prompt, call: ModelCaller) -> Answer:
        """The wrapped solver's answer once the picture is drawn."""
        if not _sends_a_picture(prompt):  # a blind run's: nothing to draw, nothing to fail on
            return await super().answer(prompt, call)
        try:
            await asyncio.shield(self._draw(prompt.image))
        except Exception as exc:
            logger.warning("cannot ask the questions of %s: %s", prompt.image, exc)
            return Answer(prompt=prompt, started=time.monotonic(), error=exc, asked=False)
        return await super().answer(prompt, call)

    def close(self) -> None:
        """Cancel drawings still running."""
        for task in self._drawn.values():
            task.cancel()
        super().close()


def _sends_a_picture(prompt: Prompt) -> bool:
    """Whether the prompt holds the agent's picture (a blind run's prompts hold no image)."""
    return any(part.role == "expert" for message in prompt.messages for part in message.images)
