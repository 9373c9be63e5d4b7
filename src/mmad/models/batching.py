"""Requests that arrive together, generated together: the micro-batching of in-process backends.

The engine calls ``generate`` once per request, concurrently. A local model is fastest when it
sees many requests at once, so requests queue here until ``batch_size`` have arrived or
``window_s`` has passed since the first, then one synchronous ``run_batch`` call answers them in
a worker thread (the event loop keeps running). Batches run one at a time: a GPU model is not
made faster by two batches competing for it, and not every library is thread-safe. When a batch
fails, its requests are asked one at a time, so that only the ones that fail alone fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mmad.models.base import Completion, Request

logger = logging.getLogger(__name__)

BatchRunner = Callable[[list[Request]], list[Completion]]


@dataclass
class _Pending:
    request: Request
    future: asyncio.Future[Completion] = field(repr=False)


class MicroBatcher:
    """Collects concurrent requests into batches for a synchronous batch function."""

    def __init__(self, run_batch: BatchRunner, *, batch_size: int, window_s: float = 0.02) -> None:
        if batch_size < 1:
            msg = f"batch_size must be at least 1, got {batch_size}"
            raise ValueError(msg)
        self.run_batch = run_batch
        self.batch_size = batch_size
        self.window_s = window_s
        self.batches: list[int] = []  # the size of each batch run, for describe() and tests
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._running = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # held so that running flushes are not collected

    async def submit(self, request: Request) -> Completion:
        """Queue one request and wait for its completion."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A model outlives an event loop when one process runs several evaluations: what
            # belonged to the old loop (its lock, its futures) cannot be used in the new one.
            self._loop, self._running, self._pending, self._flusher = loop, asyncio.Lock(), [], None
        pending = _Pending(request, loop.create_future())
        self._pending.append(pending)
        if len(self._pending) >= self.batch_size:
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())
        return await pending.future

    def _run_checked(self, requests: list[Request]) -> list[Completion]:
        results = self.run_batch(requests)
        if len(results) != len(requests):
            msg = f"the batch function returned {len(results)} completions for {len(requests)} requests"
            raise RuntimeError(msg)
        return results

    def _run_one_by_one(self, requests: list[Request]) -> list[Completion | BaseException]:
        results: list[Completion | BaseException] = []
        for request in requests:
            self.batches.append(1)
            try:
                results.extend(self._run_checked([request]))
            except Exception as exc:
                results.append(exc)
        return results

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.window_s)
        await self._flush()

    async def _flush(self) -> None:
        async with self._running:
            # Take the batch only once the previous one is done, so that it is as full as it can be.
            batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
            if not batch:
                return
            self.batches.append(len(batch))
            try:
                results: list[Completion | BaseException] = list(
                    await asyncio.to_thread(self._run_checked, [p.request for p in batch])
                )
            except Exception as exc:
                if len(batch) == 1:
                    results = [exc]
                else:
                    # One bad request (too long a prompt, an unreadable image) or a batch too large
                    # for the memory must not fail the others: ask each on its own.
                    logger.warning("a batch of %d failed (%s); asking its requests one at a time", len(batch), exc)
                    results = await asyncio.to_thread(self._run_one_by_one, [p.request for p in batch])
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_later())
