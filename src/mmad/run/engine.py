"""The local scheduler: prompts asked on this machine, with bounded and adaptive concurrency.

It decides when each prompt is asked, nothing more: a solver (`mmad.solvers`) answers it
through the run's model caller (`mmad.run.caller`: cache, retries, usage), and the run's
`Ledger` (`mmad.run.ledger`) keeps the books: the budget, the stop rules, the counters, and the
records, appended as each request finishes. A request whose retries all failed becomes records
with status ``error`` and the error's class; a refusal is recorded as ``refused`` and never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable

from mmad.models.base import Model
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Prompt
from mmad.run.cache import ResponseCache
from mmad.run.caller import ModelClient, sent_as_is
from mmad.run.ledger import (
    EngineSettings,
    EngineStats,
    Ledger,
    PlanFailure,
    Scheduler,
    Work,
    aiter_of,
    plan_failure_records,
)
from mmad.run.limits import AdaptiveLimit
from mmad.run.store import RunStore
from mmad.solvers import Solver
from mmad.solvers.base import solve_or_fail

logger = logging.getLogger(__name__)

__all__ = ["Engine", "EngineSettings", "EngineStats", "PlanFailure"]


class Engine(Scheduler):
    """Asks prompts with a solver, on this machine, and hands the records to the ledger."""

    def __init__(
        self,
        model: Model,
        store: RunStore,
        images: ImageEncoder,
        settings: EngineSettings,
        *,
        solver: Solver,
        cache: ResponseCache | None = None,
        on_progress: Callable[[EngineStats], None] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        """`ledger`: one made before the solver (whose judge counts into it and reserves from it)."""
        self.model = model
        self.images = images
        self.settings = settings
        self.cache = cache
        self.ledger = ledger or Ledger(store, settings, images, on_progress=on_progress)
        self.limit = AdaptiveLimit(settings.concurrency)
        self.call = ModelClient(model, images, settings, self.ledger.stats, cache=cache, limit=self.limit)
        self.ledger.replied = lambda: self.call.replied
        self.ledger.concurrency = lambda: self.limit.limit
        self.solver = solver

    async def run(self, work: AsyncIterator[Work] | Iterable[Work], total_questions: int) -> EngineStats:
        """Run every prompt; returns the counters (``stopped_reason`` says why a run stopped early).

        Prompts are taken from `work` only as slots free up, so a run holds the payloads of the
        requests in flight and little more, however many questions it asks.
        """
        self.ledger.begin(total_questions)
        source = aiter_of(work)
        lock = asyncio.Lock()
        workers = [asyncio.create_task(self._worker(source, lock)) for _ in range(self.settings.concurrency)]
        flusher = asyncio.create_task(self.ledger.flush_often())
        try:
            await asyncio.gather(*workers)
        finally:
            flusher.cancel()
            self.store.flush()
            if self.cache is not None:
                self.cache.flush()
            for worker in workers:
                worker.cancel()
            self.solver.close()
            self.ledger.close()
        return self.stats

    async def _worker(self, source: AsyncIterator[Work], lock: asyncio.Lock) -> None:
        ledger = self.ledger
        while not ledger.should_stop():
            async with lock:  # one worker at a time advances the plan
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
            if isinstance(item, PlanFailure):
                ledger.write(plan_failure_records(item), flush=False)
                continue
            # A question answered before is asked again where a later one needs its reply as history.
            if not item.carries_history and not ledger.wants(item):
                continue
            await self.solver.prepare(item)
            reserved = await self._reserve(item)
            if reserved is None:
                self.solver.abandon(item)
                return  # its questions stay unasked: the run is partial and --resume asks them
            ledger.sent()
            try:
                records = await solve_or_fail(self.solver, item, self.call)
            finally:
                ledger.returned(reserved_usd=reserved)
            ledger.write(records, flush=False)

    async def _reserve(self, item: Prompt) -> float | None:
        """What `item` is expected to cost, set aside (None: over --max-cost); nothing for a prompt the
        response cache answers, which costs nothing (a cached run under a small budget was refused)."""
        # Else the solver sends prompts of its own (a tools question's conversation is never this prompt).
        as_is = sent_as_is(item, self.settings)
        if self.settings.max_cost is not None and as_is and await self.call.answered_by_cache(item):
            return 0.0
        return await self.ledger.reserve([item])
