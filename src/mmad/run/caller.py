"""The model caller a solver is given: response cache, retries, the adaptive limit, usage.

One per model per process: the local engine's, each Ray actor's. Usage is counted into the
`EngineStats` it is given (the ledger's locally, the actor's own on Ray, which the driver adds up).
"""

from __future__ import annotations

import asyncio
import logging

from mmad.errors import ModelCallError, PermanentError
from mmad.models.base import Completion, Model, Request
from mmad.models.prices import cost_usd
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Prompt
from mmad.run.cache import ResponseCache, cache_key
from mmad.run.ledger import EngineSettings, EngineStats
from mmad.run.limits import AdaptiveLimit, call_with_retries
from mmad.solvers.base import Reply

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
        usage: EngineStats,
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
        if self.cache is None:
            return False
        key = await self._key(prompt)
        hit = self.cache.get(key)
        if hit is None:
            return False
        self._held[key] = hit
        return True

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
                return Reply(hit, attempts=0, cached=True)
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


def note_answer(stats: EngineStats, completion: Completion, settings: EngineSettings, *, answer: bool) -> None:
    """Count a reply that answers questions (`answer`) but lacks the log-probabilities --likelihood asked for."""
    if answer and settings.likelihood and not completion.letter_logprobs and not completion.refusal:
        stats.without_logprobs += 1


def add_usage(stats: EngineStats, completion: Completion, price: tuple[float, float] | None) -> float | None:
    """Add a completion's tokens and dollars to `stats`; its cost, None without a price."""
    stats.prompt_tokens += completion.prompt_tokens or 0
    stats.completion_tokens += completion.completion_tokens or 0
    cost = cost_usd(completion.prompt_tokens, completion.completion_tokens, price)
    stats.cost_usd += cost or 0.0
    stats.priced_requests += cost is not None
    stats.unpriced_requests += cost is None
    return cost
