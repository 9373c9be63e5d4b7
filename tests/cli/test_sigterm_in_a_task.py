"""A SIGTERM that lands inside an asyncio task's step while SIGINT is ignored (mmad started with `&`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest

from mmad.cli import _terminate_as_interrupt


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_sigterm_inside_a_task_stops_the_loop_without_a_never_retrieved_task_exception(sigint_ignored: None) -> None:
    # `mmad demo &` then `kill` printed "Task exception was never retrieved" and a 60-line traceback:
    # the KeyboardInterrupt raised inside a task's step was stored in that task as well.
    tasks: list[asyncio.Task[None]] = []

    async def step_hit_by_the_signal() -> None:
        _terminate_as_interrupt(signal.SIGTERM, None)  # as if the signal arrived during this step
        await asyncio.sleep(30)

    async def run() -> None:
        tasks.append(asyncio.create_task(step_hit_by_the_signal()))
        await asyncio.sleep(30)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(run())
    assert tasks and tasks[0].cancelled()  # stopped by asyncio.run's clean-up, holding no exception
