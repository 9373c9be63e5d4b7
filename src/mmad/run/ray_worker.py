"""What one Ray actor of the Ray engine does: hold a model and answer prompts with the local engine's logic.

Each actor builds the backend its run config names (an OpenAI-compatible client, or an in-process
model on the GPU Ray gave it) and an `Engine` around it, so a prompt is asked with the same cache,
retries, limits, parser and judge as `mmad eval` on one machine. It returns records; it never
writes a file: the driver holds the run folder and appends what comes back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from mmad.models.base import Model
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Prompt
from mmad.records.record import Record
from mmad.run.cache import ResponseCache
from mmad.run.config import RunConfig
from mmad.run.engine import Engine, EngineSettings, EngineStats
from mmad.run.store import RunStore

logger = logging.getLogger(__name__)

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cost_usd", "cached", "retries", "without_logprobs")
"""The counters an actor keeps and the driver adds up over actors."""


def usage_of(stats: EngineStats) -> dict[str, float]:
    """An actor's usage counters so far."""
    return {name: float(getattr(stats, name)) for name in USAGE_FIELDS}


def overrides_prepare(model: Model) -> bool:
    """Whether a backend looks at the benchmark before the run (so the actor must load it too)."""
    return type(model).prepare is not Model.prepare


class PromptWorker:
    """A Ray actor's state (wrapped with ``ray.remote`` by the driver)."""

    def __init__(
        self,
        config: dict[str, Any],
        settings: EngineSettings,
        run_dir: str,
        model: Model | None = None,
        judge: Model | None = None,
    ) -> None:
        # A failure here is kept and reported by `ready`: a Ray actor whose constructor raises
        # would only say that it died, not why.
        self.error: str | None = None
        self.engine: Engine | None = None
        try:
            self.engine = self._build(RunConfig.model_validate(config), settings, run_dir, model, judge)
        except Exception as exc:
            logger.exception("the Ray actor could not build the model")
            self.error = f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _build(
        config: RunConfig, settings: EngineSettings, run_dir: str, model: Model | None, judge: Model | None
    ) -> Engine:
        from mmad.models.registry import create_model
        from mmad.run.prepare import make_model

        model = model or make_model(config)
        model.check()
        if overrides_prepare(model):
            from mmad.data.official import load_benchmark

            model.prepare(load_benchmark(config.data))
        if judge is None and config.answers.judge:
            judge = create_model(config.answers.judge)
        if judge is not None:
            judge.check()
        cache = ResponseCache(config.execution.cache_dir) if config.execution.cache else None
        # The store is never opened here: the driver holds the run folder's lock and writes the records.
        return Engine(
            model, RunStore(run_dir), ImageEncoder(config.image_settings()), settings, cache=cache, judge=judge
        )

    def ready(self) -> dict[str, Any]:
        """The model's description and the node, or the error that kept the actor from building it."""
        if self.engine is None:
            return {"error": self.error or "the model was not built"}
        return {"model": self.engine.model.describe(), "pid": os.getpid()}

    async def ask(self, prompts: list[Prompt]) -> tuple[list[list[Record]], dict[str, float]]:
        """The records of each prompt (asked concurrently, within the actor's limit), and the usage so far."""
        if self.engine is None:
            msg = f"the Ray actor has no model: {self.error}"
            raise RuntimeError(msg)
        engine = self.engine
        answers = await asyncio.gather(*(engine.answer(p) for p in prompts))
        return list(answers), usage_of(engine.stats)

    async def close(self) -> None:
        """Write what the response cache holds in memory; release the model's connections."""
        if self.engine is not None:
            if self.engine.cache is not None:
                await asyncio.to_thread(self.engine.cache.close)
            await self.engine.model.aclose()
            if self.engine.judge is not None:
                await self.engine.judge.aclose()
