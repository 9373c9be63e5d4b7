import asyncio

import pytest

from mmad.errors import PermanentError, RetryableError
from mmad.run.limits import AdaptiveLimit, RetryPolicy, call_with_retries


def test_rate_limits_halve_concurrency_and_successes_restore_it() -> None:
    async def scenario() -> list[int]:
        limit = AdaptiveLimit(16, cooldown_s=0.0)
        seen = [limit.limit]
        limit.rate_limited()
        seen.append(limit.limit)
        limit.rate_limited()
        seen.append(limit.limit)
        for _ in range(200):
            await limit.succeeded()
        seen.append(limit.limit)
        return seen

    assert asyncio.run(scenario()) == [16, 8, 4, 16]


def test_at_most_limit_calls_run_at_once() -> None:
    async def scenario() -> int:
        limit = AdaptiveLimit(3)
        active = peak = 0

        async def call() -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

        policy = RetryPolicy(max_retries=0)
        await asyncio.gather(*(call_with_retries(call, policy, limit) for _ in range(12)))
        return peak

    assert asyncio.run(scenario()) == 3


def test_retry_after_is_honoured_and_retries_are_bounded() -> None:
    async def scenario() -> tuple[float, int]:
        calls = 0

        async def flaky() -> str:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise RetryableError("429", error_class="rate_limit", retry_after=0.15)
            return "ok"

        loop = asyncio.get_running_loop()
        start = loop.time()
        result, attempts = await call_with_retries(flaky, RetryPolicy(max_retries=5, base_s=0.001), AdaptiveLimit(4))
        assert result == "ok"
        return loop.time() - start, attempts

    elapsed, attempts = asyncio.run(scenario())
    assert attempts == 3
    assert elapsed >= 0.3  # two waits of Retry-After 0.15 s, though the back-off alone is ~1 ms

    failures = iter(range(100))

    async def always_fails() -> None:
        raise RetryableError(f"503 number {next(failures)}", error_class="server_error")

    with pytest.raises(RetryableError) as caught:
        asyncio.run(call_with_retries(always_fails, RetryPolicy(max_retries=2, base_s=0.001), AdaptiveLimit(2)))
    assert caught.value.attempts == 3  # type: ignore[attr-defined]


def test_permanent_errors_are_not_retried_and_free_their_slot() -> None:
    async def scenario() -> int:
        limit = AdaptiveLimit(1)
        calls = 0

        async def rejected() -> None:
            nonlocal calls
            calls += 1
            raise PermanentError("400", error_class="bad_request")

        for _ in range(3):
            with pytest.raises(PermanentError):
                await call_with_retries(rejected, RetryPolicy(max_retries=5), limit)
        assert limit.active == 0
        return calls

    assert asyncio.run(scenario()) == 3


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_s=1.0, max_s=10.0)
    assert 0.5 <= policy.delay(0, None) <= 1.0
    assert 4.0 <= policy.delay(3, None) <= 8.0
    assert policy.delay(10, None) <= 10.0
    assert policy.delay(0, 30.0) == 10.0  # a Retry-After beyond the cap is capped


def test_the_same_server_error_three_times_is_not_retried_again() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("server error (500): unsupported content type", error_class="server_error")

    with pytest.raises(RetryableError, match="the same reply 3 times") as caught:
        asyncio.run(call_with_retries(broken, RetryPolicy(max_retries=5, base_s=0.001), AdaptiveLimit(2)))
    assert calls == 3 and caught.value.attempts == 3  # type: ignore[attr-defined]


def test_time_outs_are_retried_even_when_they_repeat() -> None:
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("no reply within 1 s", error_class="timeout")

    with pytest.raises(RetryableError):
        asyncio.run(call_with_retries(slow, RetryPolicy(max_retries=3, base_s=0.001), AdaptiveLimit(2)))
    assert calls == 4
