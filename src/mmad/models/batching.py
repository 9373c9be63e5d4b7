"""Requests that arrive together, generated together: the micro-batching of in-process backends.

The engine calls ``generate`` once per request, concurrently. A local model is fastest when it
sees many requests at once, so requests queue here until ``batch_size`` have arrived or
``window_s`` has passed since the first, then one synchronous call answers them in a worker
thread (the event loop keeps running).

A batch goes through two stages, each in a worker thread: ``prepare_batch`` (the CPU work:
reading images, the processor, tensors onto the device) and ``run_batch`` (the model). While
batch N runs, batch N+1 is prepared, so the model does not wait for the CPU; at most one batch
waits prepared, so memory holds two batches, not the queue. Batches run one at a time: a GPU
model is not made faster by two batches competing for it, and not every library is
thread-safe. When a batch fails (in either stage), its requests are asked one at a time, so
that only the ones that fail alone fail. A backend without a preparation stage passes
``run_batch`` alone, taking the requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from mmad.models.base import Completion, Request

logger = logging.getLogger(__name__)

Prepared = TypeVar("Prepared")
BatchRunner = Callable[[list[Request]], list[Completion]]


@dataclass
class _Pending:
    request: Request
    future: asyncio.Future[Completion] = field(repr=False)


@dataclass
class _Batch(Generic[Prepared]):
    """A batch between the two stages: its requests, then what preparation made of them or why it failed."""

    requests: list[Request]
    prepared: Prepared | None = None
    error: Exception | None = None


def _as_is(requests: list[Request]) -> Any:
    return requests


class MicroBatcher(Generic[Prepared]):
    """Collects concurrent requests into batches, prepares the next batch while the current one runs."""

    @overload
    def __init__(
        self: MicroBatcher[list[Request]],
        run_batch: Callable[[list[Request]], list[Completion]],
        *,
        batch_size: int,
        window_s: float = 0.02,
        prepare_batch: None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        run_batch: Callable[[Prepared], list[Completion]],
        *,
        batch_size: int,
        window_s: float = 0.02,
        prepare_batch: Callable[[list[Request]], Prepared],
    ) -> None: ...

    def __init__(
        self,
        run_batch: Callable[[Any], list[Completion]],
        *,
        batch_size: int,
        window_s: float = 0.02,
        prepare_batch: Callable[[list[Request]], Any] | None = None,
    ) -> None:
        if batch_size < 1:
            msg = f"batch_size must be at least 1, got {batch_size}"
            raise ValueError(msg)
        self.run_batch: Callable[[Prepared], list[Completion]] = run_batch
        self.prepare_batch: Callable[[list[Request]], Prepared] = prepare_batch or _as_is
        self.batch_size = batch_size
        self.window_s = window_s
        self.batches: list[int] = []  # the size of each batch run, in the order run, for describe() and tests
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._preparing = asyncio.Lock()
        self._running = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # held so that running flushes are not collected

    async def submit(self, request: Request) -> Completion:
        """Queue one request and wait for its completion."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A model outlives an event loop when one process runs several evaluations: what
            # belonged to the old loop (its locks, its futures) cannot be used in the new one.
            self._loop, self._pending, self._flusher = loop, [], None
            self._preparing, self._running = asyncio.Lock(), asyncio.Lock()
        pending = _Pending(request, loop.create_future())
        self._pending.append(pending)
        if len(self._pending) >= self.batch_size:
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())
        return await pending.future

    def _run_checked(self, prepared: Prepared, expected: int) -> list[Completion]:
        results = self.run_batch(prepared)
        if len(results) != expected:
            msg = f"the batch function returned {len(results)} completions for {expected} requests"
            raise RuntimeError(msg)
        return results

    def _run_one_by_one(self, requests: list[Request]) -> list[Completion | BaseException]:
        results: list[Completion | BaseException] = []
        for request in requests:
            self.batches.append(1)
            try:
                results.extend(self._run_checked(self.prepare_batch([request]), 1))
            except Exception as exc:
                results.append(exc)
        return results

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.window_s)
        await self._flush()

    async def _flush(self) -> None:
        async with self._preparing:
            # Take the batch only once the previous one is prepared (and running), so that it is as
            # full as it can be while still being ready when the model is free.
            taken, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
            if not taken:
                return
            batch: _Batch[Prepared] = _Batch([p.request for p in taken])
            try:
                batch.prepared = await asyncio.to_thread(self.prepare_batch, batch.requests)
            except Exception as exc:
                batch.error = exc
            # Wait for the model while holding the preparation stage: the next batch is not
            # prepared before this one runs, so no more than one batch waits prepared.
            await self._running.acquire()
        try:
            results = await self._answer(batch)
        finally:
            self._running.release()
        for pending, result in zip(taken, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_later())

    async def _answer(self, batch: _Batch[Prepared]) -> list[Completion | BaseException]:
        """Run a prepared batch; on failure ask its requests one at a time (called holding the model)."""
        requests, error = batch.requests, batch.error
        if error is None:
            self.batches.append(len(requests))
            try:
                return list(await asyncio.to_thread(self._run_checked, batch.prepared, len(requests)))  # type: ignore[arg-type]
            except Exception as exc:
                error = exc
            finally:
                batch.prepared = None
        if len(requests) == 1:
            return [error]
        # One bad request (too long a prompt, an unreadable image) or a batch too large for the
        # memory must not fail the others: ask each on its own, once the failed batch's tensors
        # are gone (the traceback's frames hold them too).
        error.__traceback__ = None
        logger.warning("a batch of %d failed (%s); asking its requests one at a time", len(requests), error)
        return await asyncio.to_thread(self._run_one_by_one, requests)
