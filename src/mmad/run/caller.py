"""The model caller a solver is given: response cache, retries, the adaptive limit, usage.

One per model per process: the local engine's, each Ray actor's. Usage is counted into the
`EngineStats` it is given (the ledger's locally, the actor's own on Ray, which the driver adds up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from mmad.errors import BudgetReachedError, ModelCallError, PermanentError
from mmad.models.base import Completion, Model, Request
from mmad.models.prices import cost_usd
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Prompt
from mmad.run.cache import ResponseCache, cache_key
from mmad.run.ledger import CallCounts, EngineSettings, EngineStats
from mmad.run.limits import AdaptiveLimit, call_with_retries
from mmad.run.tokens import estimate
from mmad.solvers.base import Reply
from mmad.solvers.judge import REFUSED, judge_prompt

logger = logging.getLogger(__name__)

NO_REPLY_CLASSES = frozenset(
    {"connection_refused", "connection_dropped", "connection", "timeout", "dns", "tls", "client"}
)
"""Failures of a call that never heard from the server (the rest are the server's own answers)."""


class ModelClient:
    """Calls one model for solvers (a `mmad.solvers.ModelCaller`)."""

    def __init__(
        self,
        model: Model,
        images: ImageEncoder,
        settings: EngineSettings,
        usage: CallCounts,
        *,
        cache: ResponseCache | None = None,
        limit: AdaptiveLimit | None = None,
    ) -> None:
        self.model = model
        self.images = images
        self.settings = settings
        self.usage = usage
        self.cache = cache
        self.limit = limit or AdaptiveLimit(settings.concurrency)
        self.description = model.describe()
        self.replied = False
        """Whether any request has had an answer (a reply or an HTTP error) from the server."""
        self._held: dict[str, Completion] = {}
        """Replies `answered_by_cache` found, kept for the call that follows (a hit is counted once)."""

    async def answered_by_cache(self, prompt: Prompt) -> bool:
        """Whether the response cache holds the reply to `prompt` as it is: asking it costs nothing."""
        return await self.cached_reply(prompt) is not None

    async def cached_reply(self, prompt: Prompt) -> Completion | None:
        """The response cache's reply to `prompt` as it is (None: it must be sent), held for the call that
        follows."""
        if self.cache is None:
            return None
        key = await self._key(prompt)
        hit = self.cache.get(key)
        if hit is not None:
            self._held[key] = hit
        return hit

    async def _key(self, prompt: Prompt) -> str:
        """The prompt's response-cache key."""
        parts = [p for m in prompt.messages for p in m.images]
        # Keyed by the image files' digests (a prefetch hashes them ahead; a thread hop per request
        # would cost more than the lookup), so a hit never prepares an image.
        digests = self.images.digests_if_known(parts)
        if digests is None:
            digests = await asyncio.to_thread(self.images.digests, parts)
        return cache_key(self.description, prompt.digest(digests), self.settings.cache_settings)

    async def __call__(self, prompt: Prompt, *, answer: bool = True) -> Reply:
        """The reply to a prompt: from the cache, or from the model with retries; usage counted."""
        stats = self.usage
        began = time.monotonic()
        key = ""
        parts = [p for m in prompt.messages for p in m.images]
        if self.cache is not None:
            key = await self._key(prompt)
            hit = self._held.pop(key, None)
            if hit is None:
                hit = self.cache.get(key)
            if hit is not None:
                # Records from the cache are counted by the ledger, from the records: a solver that
                # sends several requests per question (tools) knows whether all of them were cached.
                note_answer(self.usage, hit, self.settings, answer=answer)
                # What the reply costs at this run's price, as its tokens say it did when it was asked: a
                # question's cost is that, paid again or not (the usage above counts only what is paid).
                price = cost_usd(hit.prompt_tokens, hit.completion_tokens, self.settings.price)
                return Reply(hit, attempts=0, cached=True, cost_usd=price)
        if not self.images.encoded_all(parts):  # prepared off the event loop, before the body is built on it
            await asyncio.to_thread(self.images.encode_all, parts)
        request = Request(
            messages=prompt.messages,
            max_tokens=prompt.max_tokens,
            temperature=self.settings.temperature,
            want_logprobs=self.settings.likelihood,
            images=self.images,
            questions=prompt.questions,
            tools=prompt.tools,
            tool_choice=prompt.tool_choice,
        )

        def on_retry(error: ModelCallError) -> None:
            stats.retries += 1
            logger.info("retrying %s after %s", prompt.image, error.error_class)

        completion, attempts = await call_with_retries(
            lambda: self._generate(request), self.settings.policy, self.limit, on_retry=on_retry
        )
        # What the question waited for this reply, as its record's latency counts it (images, the concurrency
        # limit, retries), kept with it so that a later run answered from the cache can say the same.
        completion = replace(completion, latency_s=round(time.monotonic() - began, 4))
        if self.cache is not None and not completion.refusal:
            self.cache.put(key, completion)  # queued in memory; the cache's own thread writes it
        cost = self.add_usage(completion)
        note_answer(self.usage, completion, self.settings, answer=answer)
        return Reply(completion, attempts=attempts, cached=False, cost_usd=cost)

    def add_usage(self, completion: Completion) -> float | None:
        """Count a completion's tokens and dollars; its cost (None without a price)."""
        return add_usage(self.usage, completion, self.settings.price)

    async def _generate(self, request: Request) -> Completion:
        """One call to the model, noting whether the server has ever answered."""
        try:
            completion = await self.model.generate(request)
        except ModelCallError as exc:
            if exc.error_class not in NO_REPLY_CLASSES:
                self.replied = True
            elif exc.error_class == "connection_refused" and not self.replied:
                # Nothing has ever reached the server: it is not running (or --base-url is wrong), and
                # a minute of retries would not change that. Once it has answered, a refusal is a restart.
                raise PermanentError(str(exc), error_class="connection_refused") from exc
            raise
        self.replied = True
        return completion


def sent_as_is(prompt: Prompt, settings: EngineSettings) -> bool:
    """Whether the solver sends `prompt` itself, as it is: no chain-of-thought turn before it and no tools
    conversation (whose requests are made as it goes), so the cache can say ahead whether it costs anything."""
    return not prompt.needs_preamble and not prompt.tools and not settings.tool_turns


def note_answer(stats: CallCounts, completion: Completion, settings: EngineSettings, *, answer: bool) -> None:
    """Count a reply that answers questions (`answer`) but lacks the log-probabilities --likelihood asked for."""
    if answer and settings.likelihood and not completion.letter_logprobs and not completion.refusal:
        stats.without_logprobs += 1


def add_usage(stats: CallCounts, completion: Completion, price: tuple[float, float] | None) -> float | None:
    """Add a completion's tokens and dollars to `stats`; its cost, None without a price."""
    stats.prompt_tokens += completion.prompt_tokens or 0
    stats.completion_tokens += completion.completion_tokens or 0
    cost = cost_usd(completion.prompt_tokens, completion.completion_tokens, price)
    stats.cost_usd += cost or 0.0
    stats.priced_requests += cost is not None
    stats.unpriced_requests += cost is None
    return cost


NO_IMAGES = ImageSettings()
"""The image settings a judge's estimate is made with: it is sent none."""
LONGEST_REPLY_TOKENS = 4096
"""The reply length a judge's allowance assumes for a prompt that sets no token limit."""


class Budget(Protocol):
    """Where a caller whose calls the scheduler does not reserve sets their cost aside (the run's ledger)."""

    @property
    def budgeted(self) -> bool:
        """Whether there is a budget (--max-cost) at all."""
        ...

    def set_aside(self, expected: float, what: str) -> bool:
        """Reserve `expected` dollars; False (and the run stops) when that would pass the budget."""
        ...

    def release(self, reserved_usd: float) -> None:
        """Hand back what `set_aside` reserved."""
        ...


class JudgeClient:
    """The judge's model caller (--judge): a `ModelClient` of its own, so the judge's calls have the
    run's retries, a response cache (keyed by the judge's description and its prompt) and counted usage.

    Its tokens and dollars go to the run's totals (what --max-cost, the closing line and run.json
    count) and to ``stats.judge``; with a `Budget`, each call the cache does not answer is reserved
    first, as the scheduler reserves the model's. A call that fails raises `ModelCallError`
    (`BudgetReachedError` where the budget refused it), counted in ``stats.judge.failed`` unless the
    judge's content filter refused it (class ``refused``: an answer, not a failure).
    """

    def __init__(
        self,
        model: Model,
        images: ImageEncoder,
        settings: EngineSettings,
        stats: EngineStats,
        *,
        cache: ResponseCache | None = None,
        budget: Budget | None = None,
    ) -> None:
        # Greedy and without log-probabilities whatever the run asks of its model: a verdict is read, not
        # sampled, and the same reply judged again must be answered by the cache.
        judge_settings = replace(
            settings, temperature=0.0, likelihood=False, answer_from="text", cache_settings={"role": "judge"}
        )
        self.client = ModelClient(model, images, judge_settings, stats.judge, cache=cache)
        self.stats = stats
        self.budget = budget

    @property
    def model(self) -> Model:
        """The judge."""
        return self.client.model

    @property
    def replied(self) -> bool:
        """Whether the judge's server has ever answered (a refused connection before that: it is not there)."""
        return self.client.replied

    async def __call__(self, prompt: Prompt, *, answer: bool = True) -> Reply:
        """The judge's reply to `prompt`, counted; raises `ModelCallError` when it gives none."""
        counts = self.stats.judge
        counts.requests += 1
        reserved = 0.0
        budget = self.budget
        if budget is not None and budget.budgeted and not await self.client.answered_by_cache(prompt):
            expected = self.expected_cost(prompt)  # text only: no image to read
            if not budget.set_aside(expected, "the judge's next request"):
                counts.failed += 1
                msg = "the judge's call was not sent: it would pass --max-cost; resume with a higher one"
                raise BudgetReachedError(msg)
            reserved = expected
        try:
            reply = await self.client(prompt, answer=False)
        except ModelCallError as exc:
            counts.failed += exc.error_class != REFUSED  # a refusal is the judge's answer: its parse stands
            raise
        finally:
            if budget is not None and reserved:
                budget.release(reserved)
        if reply.cached:
            counts.cached += 1
        else:
            # The run's totals hold the judge's spending: --max-cost and every figure shown count it.
            completion = reply.completion
            self.stats.prompt_tokens += completion.prompt_tokens or 0
            self.stats.completion_tokens += completion.completion_tokens or 0
            self.stats.cost_usd += reply.cost_usd or 0.0
        return reply

    def expected_cost(self, prompt: Prompt) -> float:
        """What a judge call is expected to cost (the --dry-run rule); 0 without a price."""
        settings = self.client.settings
        return estimate([prompt], self.client.images.settings, settings.price).cost_usd or 0.0


def judge_allowance(prompts: Iterable[Prompt], price: tuple[float, float] | None) -> float | None:
    """The most a judge at `price` can cost for `prompts`' questions: one call each, on a reply as long as
    its prompt allows; None without a price."""
    if price is None:
        return None
    total = 0.0
    for prompt in prompts:
        longest = "x" * 4 * (prompt.max_tokens or LONGEST_REPLY_TOKENS)
        judged = [judge_prompt(q, longest) for q in prompt.questions]
        total += estimate(judged, NO_IMAGES, price).cost_usd or 0.0
    return total
