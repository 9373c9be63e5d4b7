"""Requests that arrive together, generated together: the micro-batching of in-process backends.

The engine calls ``generate`` once per request, concurrently. A local model is fastest when it
sees many requests at once, so requests queue here until ``batch_size`` have arrived or
``window_s`` has passed since the first, then one synchronous ``run_batch`` call answers them in
a worker thread (the event loop keeps running). Batches run one at a time: a GPU model is not
made faster by two batches competing for it, and not every library is thread-safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from mmad.models.base import Completion, Request

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
                results = await asyncio.to_thread(self.run_batch, [p.request for p in batch])
                if len(results) != len(batch):
                    msg = f"the batch function returned {len(results)} completions for {len(batch)} requests"
                    raise RuntimeError(msg)
            except Exception as exc:  # every waiting request learns of the failure
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
            else:
                for pending, result in zip(batch, results, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(result)
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_later())
