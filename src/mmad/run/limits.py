"""Bounded concurrency that backs off while an endpoint answers 429, and bounded retries."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from mmad.errors import ModelCallError, RetryableError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class AdaptiveLimit:
    """At most `limit` calls at once. A rate-limit halves the limit (once per cool-down); every
    `limit` successes in a row raise it by one, back up to the configured maximum."""

    def __init__(self, maximum: int, cooldown_s: float = 1.0) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.active = 0
        self.lowest = maximum
        self._successes = 0
        self._cooldown_s = cooldown_s
        self._last_cut = 0.0
        self._condition = asyncio.Condition()

    async def acquire(self) -> None:
        """Wait for a free slot."""
        async with self._condition:
            await self._condition.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def release(self) -> None:
        """Free a slot."""
        async with self._condition:
            self.active -= 1
            self._condition.notify_all()

    def rate_limited(self) -> None:
        """The endpoint said 429: halve the limit, at most once per cool-down."""
        now = time.monotonic()
        if now - self._last_cut >= self._cooldown_s:
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self._last_cut = now
            self._successes = 0
            logger.info("rate limited: concurrency lowered to %d", self.limit)

    async def succeeded(self) -> None:
        """A call went through: after `limit` in a row, allow one more at once."""
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            async with self._condition:
                self.limit += 1
                self._condition.notify_all()


REPEAT_STOPS = frozenset({"server_error", "malformed"})
SAME_ERROR_LIMIT = 3
"""A request that got the same one of REPEAT_STOPS this many times in a row is not retried again."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry."""

    max_retries: int = 5
    base_s: float = 1.0
    max_s: float = 60.0
    timeout_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential back-off with full jitter; a server's Retry-After wins when it asks for longer."""
        backoff: float = min(self.max_s, self.base_s * 2**attempt) * random.uniform(0.5, 1.0)
        if retry_after is None:
            return backoff
        return max(backoff, min(float(retry_after), self.max_s))


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    limit: AdaptiveLimit,
    *,
    on_retry: Callable[[ModelCallError], None] | None = None,
) -> tuple[T, int]:
    """Run `call` inside a concurrency slot, retrying retryable failures; returns (result, attempts).

    The slot is released while waiting to retry, so back-off never holds up other requests.
    """
    attempt = 0
    previous: tuple[str, str] | None = None
    same_in_a_row = 0
    while True:
        await limit.acquire()
        try:
            result = await asyncio.wait_for(call(), timeout=policy.timeout_s + 5)
        except TimeoutError:
            error: ModelCallError = RetryableError(f"no reply within {policy.timeout_s:.0f} s", error_class="timeout")
        except RetryableError as exc:
            error = exc
        except BaseException:
            await limit.release()
            raise
        else:
            await limit.release()
            await limit.succeeded()
            return result, attempt + 1
        await limit.release()
        if error.error_class == "rate_limit":
            limit.rate_limited()
        signature = (error.error_class, str(error))
        same_in_a_row = same_in_a_row + 1 if signature == previous else 1
        previous = signature
        # A server that fails one request with the same error three times will go on doing so: stop asking.
        repeated = error.error_class in REPEAT_STOPS and same_in_a_row >= SAME_ERROR_LIMIT
        if attempt >= policy.max_retries or repeated:
            error.attempts = attempt + 1  # type: ignore[attr-defined]
            if repeated:
                error.args = (f"{error} (the same reply {SAME_ERROR_LIMIT} times; not retried again)",)
            raise error
        if on_retry is not None:
            on_retry(error)
        await asyncio.sleep(policy.delay(attempt, error.retry_after))
        attempt += 1
