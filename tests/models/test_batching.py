"""The micro-batcher that in-process backends share: batch sizes, order, failures, one batch at a time."""

import asyncio
import threading
import time

import pytest

from mmad.models.base import Completion, Request
from mmad.models.batching import MicroBatcher
from mmad.protocol.messages import Message, TextPart


def _request(i: int) -> Request:
    return Request(messages=(Message(role="user", parts=(TextPart(text=f"q{i}"),)),))


class Recorder:
    """A batch function that answers each request with its own text and notes overlapping calls."""

    def __init__(self, delay_s: float = 0.01, fail_on: str | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def __call__(self, requests: list[Request]) -> list[Completion]:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay_s)
            texts = [r.messages[0].text for r in requests]
            if self.fail_on in texts:
                raise RuntimeError("the model broke")
            return [Completion(text=f"answer to {t}") for t in texts]
        finally:
            with self.lock:
                self.active -= 1


async def _submit_all(batcher: MicroBatcher, n: int) -> list[Completion | BaseException]:
    return await asyncio.gather(*(batcher.submit(_request(i)) for i in range(n)), return_exceptions=True)


def test_every_request_gets_its_own_answer_in_full_batches_one_at_a_time() -> None:
    runner = Recorder()
    batcher = MicroBatcher(runner, batch_size=8, window_s=0.05)
    results = asyncio.run(_submit_all(batcher, 20))
    assert [r.text for r in results] == [f"answer to q{i}" for i in range(20)]  # type: ignore[union-attr]
    assert sum(batcher.batches) == 20 and max(batcher.batches) == 8 and batcher.batches.count(8) == 2
    assert runner.max_active == 1


def test_a_lone_request_is_answered_after_the_window() -> None:
    batcher = MicroBatcher(Recorder(), batch_size=64, window_s=0.01)
    (result,) = asyncio.run(_submit_all(batcher, 1))
    assert result.text == "answer to q0"  # type: ignore[union-attr]
    assert batcher.batches == [1]


def test_a_failing_request_fails_alone() -> None:
    batcher = MicroBatcher(Recorder(fail_on="q1"), batch_size=4, window_s=0.01)
    results = asyncio.run(_submit_all(batcher, 8))
    assert isinstance(results[1], RuntimeError) and "broke" in str(results[1])
    ok = [r for i, r in enumerate(results) if i != 1]
    assert [r.text for r in ok] == [f"answer to q{i}" for i in range(8) if i != 1]  # type: ignore[union-attr]
    assert batcher.batches == [4, 1, 1, 1, 1, 4]  # the failed batch was asked again one by one


def test_a_batch_function_that_loses_answers_is_an_error() -> None:
    batcher = MicroBatcher(lambda requests: [], batch_size=2, window_s=0.01)
    results = asyncio.run(_submit_all(batcher, 2))
    assert all(isinstance(r, RuntimeError) and "0 completions for 1" in str(r) for r in results)


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(Recorder(), batch_size=0)


def test_one_batcher_serves_several_event_loops_in_turn() -> None:
    """mmad.evaluate called twice in one process with the same model runs two event loops."""
    batcher = MicroBatcher(Recorder(), batch_size=4, window_s=0.01)
    for _ in range(2):
        results = asyncio.run(_submit_all(batcher, 6))
        assert [r.text for r in results] == [f"answer to q{i}" for i in range(6)]  # type: ignore[union-attr]
    assert batcher.batches == [4, 2, 4, 2]
