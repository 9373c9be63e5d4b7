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


class Stages:
    """A prepare/run pair that records each call's start and end, and checks the pipeline's rules as it goes.

    Batch k's run waits (up to 5 s) until batch k+1's preparation has begun, so a batcher that
    prepared only after running would make every wait time out and the test fail; no wall-clock
    time is asserted.
    """

    def __init__(self, batches_expected: int, fail_prepare_on: str | None = None) -> None:
        self.events: list[tuple[str, int, str]] = []  # (stage, batch number, "start" | "end")
        self.lock = threading.Lock()
        self.started = [threading.Event() for _ in range(batches_expected)]
        self.waited_in_vain: list[int] = []
        self.fail_prepare_on = fail_prepare_on
        self.preparing = self.running = self.prepared_waiting = 0
        self.max_preparing = self.max_running = self.max_prepared_waiting = 0
        self.count = 0

    def _note(self, stage: str, number: int, edge: str) -> None:
        with self.lock:
            self.events.append((stage, number, edge))

    def prepare(self, requests: list[Request]) -> tuple[int, list[str]]:
        texts = [r.messages[0].text for r in requests]
        with self.lock:
            number, self.count = self.count, self.count + 1
            self.preparing += 1
            self.max_preparing = max(self.max_preparing, self.preparing)
        self._note("prepare", number, "start")
        if number < len(self.started):
            self.started[number].set()
        time.sleep(0.005)
        with self.lock:
            self.preparing -= 1
        if self.fail_prepare_on in texts:
            raise ValueError(f"cannot read the image of {self.fail_prepare_on}")
        with self.lock:
            self.prepared_waiting += 1
            self.max_prepared_waiting = max(self.max_prepared_waiting, self.prepared_waiting)
        self._note("prepare", number, "end")
        return number, texts

    def run(self, prepared: tuple[int, list[str]]) -> list[Completion]:
        number, texts = prepared
        with self.lock:
            self.prepared_waiting -= 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        self._note("run", number, "start")
        if number + 1 < len(self.started) and not self.started[number + 1].wait(5):
            self.waited_in_vain.append(number)
        self._note("run", number, "end")
        with self.lock:
            self.running -= 1
        return [Completion(text=f"answer to {t}") for t in texts]

    def position(self, stage: str, number: int, edge: str) -> int:
        return self.events.index((stage, number, edge))


def test_the_next_batch_is_prepared_while_the_current_one_runs() -> None:
    stages = Stages(batches_expected=5)
    batcher = MicroBatcher(stages.run, prepare_batch=stages.prepare, batch_size=4, window_s=0.01)
    results = asyncio.run(_submit_all(batcher, 20))
    assert [r.text for r in results] == [f"answer to q{i}" for i in range(20)]  # type: ignore[union-attr]
    assert batcher.batches == [4, 4, 4, 4, 4]
    assert stages.waited_in_vain == []
    for number in range(4):  # batch n+1's preparation began before batch n's run ended
        assert stages.position("prepare", number + 1, "start") < stages.position("run", number, "end")
    # ... while the model ran one batch at a time, one preparation at a time, at most one batch waiting prepared
    assert stages.max_running == 1 and stages.max_preparing == 1 and stages.max_prepared_waiting == 1
    for number in range(4):
        assert stages.position("run", number, "end") < stages.position("run", number + 1, "start")


def test_a_request_that_cannot_be_prepared_fails_alone() -> None:
    stages = Stages(batches_expected=0, fail_prepare_on="q1")
    batcher = MicroBatcher(stages.run, prepare_batch=stages.prepare, batch_size=4, window_s=0.01)
    results = asyncio.run(_submit_all(batcher, 8))
    assert isinstance(results[1], ValueError) and "image of q1" in str(results[1])
    ok = [r for i, r in enumerate(results) if i != 1]
    assert [r.text for r in ok] == [f"answer to q{i}" for i in range(8) if i != 1]  # type: ignore[union-attr]
    assert batcher.batches == [1, 1, 1, 1, 4]  # the batch that failed to prepare was never run whole


def test_overlap_gives_the_answers_of_one_batch_at_a_time() -> None:
    """The same batches through the two-stage pipeline and through run_batch alone, prepare included."""
    stages, alone = Stages(batches_expected=3), Stages(batches_expected=0)
    piped = MicroBatcher(stages.run, prepare_batch=stages.prepare, batch_size=4, window_s=0.01)
    plain = MicroBatcher(lambda requests: alone.run(alone.prepare(requests)), batch_size=4, window_s=0.01)
    first = asyncio.run(_submit_all(piped, 11))
    second = asyncio.run(_submit_all(plain, 11))
    assert [r.text for r in first] == [r.text for r in second]  # type: ignore[union-attr]
    assert stages.waited_in_vain == [] and alone.max_prepared_waiting == 1
    assert piped.batches == plain.batches == [4, 4, 3]
