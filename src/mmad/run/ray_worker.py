"""What one Ray actor of the Ray engine does: hold a model and a solver, and answer prompts.

Each actor builds the backend its run config names (an OpenAI-compatible client, or an in-process
model on the GPU Ray gave it), the run's solver chain (`mmad.run.solving`) and a model caller with
its own response cache, so a prompt is asked with the same solvers, cache, retries, limits, parser
and judge as `mmad eval` on one machine. It returns records and its usage counters; it never
writes a file but the agent strategy's drawings: the driver's ledger holds the run folder and
appends what comes back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmad.models.base import Model
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Prompt
from mmad.records.record import Record
from mmad.run.cache import ResponseCache
from mmad.run.caller import ModelClient, sent_as_is
from mmad.run.config import RunConfig
from mmad.run.config.base import RECORDED
from mmad.run.ledger import JUDGE_FIELDS, EngineSettings, EngineStats
from mmad.run.solving import JudgeBooks, judge_model, make_agent, make_solver, solver_settings
from mmad.solvers import Solver
from mmad.solvers.base import parse_reply, solve_or_fail
from mmad.solvers.judge import needs_verdict

logger = logging.getLogger(__name__)

USAGE_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "retries",
    "without_logprobs",
    "priced_requests",
    "unpriced_requests",
)
"""The counters an actor keeps and the driver adds up over actors (records from the cache are counted
by the driver's ledger, from the records)."""


def usage_of(stats: EngineStats) -> dict[str, float]:
    """An actor's usage counters so far, the judge's prefixed ``judge_``."""
    usage = {name: float(getattr(stats, name)) for name in USAGE_FIELDS}
    usage.update({f"judge_{name}": float(getattr(stats.judge, name)) for name in JUDGE_FIELDS})
    return usage


def overrides_prepare(model: Model) -> bool:
    """Whether a backend looks at the benchmark before the run (so the actor must load it too)."""
    return type(model).prepare is not Model.prepare


@dataclass
class _Asker:
    """An actor's model, judge, caller and solver."""

    model: Model
    judge: Model | None
    call: ModelClient
    solver: Solver
    stats: EngineStats
    """The counters the model's and the judge's calls add to."""
    settings: EngineSettings


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
        self.asker: _Asker | None = None
        try:
            self.asker = self._build(
                RunConfig.model_validate(config, context=RECORDED), settings, run_dir, model, judge
            )
        except Exception as exc:
            logger.exception("the Ray actor could not build the model")
            self.error = f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _build(
        config: RunConfig, settings: EngineSettings, run_dir: str, model: Model | None, judge: Model | None
    ) -> _Asker:
        from mmad.run.prepare import make_model

        model = model or make_model(config)
        model.check()
        agent = make_agent(config, Path(run_dir))
        benchmark = None
        if overrides_prepare(model) or agent is not None or "tools" in config.prompt.strategies:
            from mmad.data.official import load_benchmark

            benchmark = load_benchmark(config.data)
            if overrides_prepare(model):
                model.prepare(benchmark)
        if judge is None:
            judge = judge_model(config)  # at the driver's judge's address: --judge-base-url is in the config
        if judge is not None:
            judge.check()
        cache = ResponseCache(config.execution.cache_dir) if config.execution.cache else None
        images = ImageEncoder(config.image_settings())
        stats = EngineStats()
        call = ModelClient(model, images, settings, stats, cache=cache)
        # The judge counts into the actor's counters, which the driver adds up; the driver's ledger holds the
        # budget, and reserves each job's possible judge calls with the job (`judge_allowance`).
        books = JudgeBooks(stats, images, cache)
        solver = make_solver(
            config, settings, judge=judge, judge_books=books, agent=agent, benchmark=benchmark, run_dir=run_dir
        )
        return _Asker(model, judge, call, solver, stats, settings)

    def ready(self) -> dict[str, Any]:
        """The model's description and the node, or the error that kept the actor from building it."""
        if self.asker is None:
            return {"error": self.error or "the model was not built"}
        return {"model": self.asker.model.describe(), "pid": os.getpid()}

    async def ask(self, prompts: list[Prompt]) -> tuple[list[list[Record]], dict[str, float]]:
        """The records of each prompt (asked concurrently, within the actor's limit), and the usage so far."""
        if self.asker is None:
            msg = f"the Ray actor has no model: {self.error}"
            raise RuntimeError(msg)
        asker = self.asker
        answers = await asyncio.gather(*(solve_or_fail(asker.solver, p, asker.call) for p in prompts))
        return list(answers), usage_of(asker.stats)

    async def costs(self, prompts: list[Prompt]) -> list[tuple[bool, bool]]:
        """Per prompt, what the driver must set aside for it under --max-cost before this actor asks it:
        whether the model's request is sent (the response cache does not answer it; a hit is held for
        `ask`), and whether the judge may be called (a cached reply whose every letter was found needs none)."""
        if self.asker is None:
            return [(True, True)] * len(prompts)
        asker = self.asker
        parsing = solver_settings(asker.settings)
        costs = []
        for prompt in prompts:
            await asker.solver.prepare(prompt)  # the agent's picture is drawn first: the cache key reads it
            try:
                hit = await asker.call.cached_reply(prompt) if sent_as_is(prompt, asker.settings) else None
            except Exception as exc:  # an unreadable image: `ask` records why; all of it is set aside meanwhile
                logger.debug("cannot look up %s in the response cache: %s", prompt.image, exc)
                hit = None
            if hit is None:
                costs.append((True, asker.judge is not None))
                continue
            parsed = parse_reply(prompt, hit, parsing)
            costs.append((False, asker.judge is not None and any(needs_verdict(hit, p) for p in parsed)))
        return costs

    async def close(self) -> None:
        """Write what the response cache holds in memory; release the model's connections."""
        if self.asker is not None:
            self.asker.solver.close()
            if self.asker.call.cache is not None:
                await asyncio.to_thread(self.asker.call.cache.close)
            await self.asker.model.aclose()
            if self.asker.judge is not None:
                await self.asker.judge.aclose()
