"""Run prompts against a model: bounded and adaptive concurrency, retries, cache, budget, records.

Each finished request becomes one record per question it carried, appended at once. A request
whose retries all failed becomes records with status ``error`` and the error's class; a refusal
is recorded as ``refused`` and never retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmad.errors import DataError, ModelCallError, PermanentError
from mmad.models.base import Completion, Model, Request
from mmad.models.prices import cost_usd
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Message, PosedQuestion, Prompt, TextPart
from mmad.protocol.parse import (
    UPSTREAM_PARSERS,
    Parsed,
    ParseMethod,
    parse_answer,
    parse_last_letter,
    parse_numbered_list,
    upstream_parse,
    upstream_parse_list,
)
from mmad.protocol.prompts import preamble_prompt, with_preamble
from mmad.records.record import Record, Status
from mmad.run.cache import ResponseCache, cache_key
from mmad.run.limits import AdaptiveLimit, RetryPolicy, call_with_retries
from mmad.run.secrets import redact
from mmad.run.store import RunStore
from mmad.run.tokens import estimate

logger = logging.getLogger(__name__)


@dataclass
class EngineStats:
    """Live counters for progress display."""

    total: int = 0
    done: int = 0
    answered: int = 0
    failed: int = 0
    unparsed: int = 0
    cached: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stopped_reason: str | None = None
    concurrency: int = 0
    without_logprobs: int = 0

    @property
    def elapsed_s(self) -> float:
        """Seconds from the first request to the last record (or to now, while running)."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Questions per second so far."""
        elapsed = self.elapsed_s
        return self.done / elapsed if elapsed > 0 else 0.0


@dataclass
class EngineSettings:
    """How the engine behaves."""

    policy: RetryPolicy
    concurrency: int
    temperature: float | None = 0.0
    parser: str = "mmad"
    likelihood: bool = False
    answer_from: str = "text"
    max_cost: float | None = None
    max_errors: int | None = None
    price: tuple[float, float] | None = None
    cache_settings: dict[str, Any] = field(default_factory=dict)
    spent_before_usd: float = 0.0
    """What earlier sessions of a resumed run spent: --max-cost is the run's budget, not each session's."""


JUDGE_PROMPT = (
    "A model answered a multiple-choice question. Which option did its reply choose?\n\n"
    "Question: {question}\nOptions:\n{options}\n\nReply:\n{reply}\n\n"
    "Answer with the option's letter only, or Z if the reply chooses none of them."
)


FLUSH_INTERVAL_S = 0.1
FATAL_ERROR_CLASSES = frozenset({"auth", "not_found", "dns", "tls", "images_refused"})
"""Failures that every later request would meet too: the run stops at the first one."""
NO_REPLY_CLASSES = frozenset(
    {"connection_refused", "connection_dropped", "connection", "timeout", "dns", "tls", "client"}
)
"""Failures of a call that never heard from the server (the rest are the server's own answers)."""


@dataclass(frozen=True)
class PlanFailure:
    """An image whose prompts could not be built (a missing template or mask, an unreadable file)."""

    image: str
    questions: tuple[PosedQuestion, ...]
    error: Exception


Work = Prompt | PlanFailure


class Engine:
    """Runs prompts and writes records."""

    def __init__(
        self,
        model: Model,
        store: RunStore,
        images: ImageEncoder,
        settings: EngineSettings,
        *,
        cache: ResponseCache | None = None,
        judge: Model | None = None,
        on_progress: Callable[[EngineStats], None] | None = None,
    ) -> None:
        self.model = model
        self.store = store
        self.images = images
        self.settings = settings
        self.cache = cache
        self.judge = judge
        self.on_progress = on_progress
        self.stats = EngineStats()
        self.limit = AdaptiveLimit(settings.concurrency)
        self._preambles: dict[str, asyncio.Task[tuple[str, int]]] = {}
        # Per posing of a prompt that carries its image's history: the turns up to and including its own.
        # None: the posing was not asked (a stop), so the questions after it fail as 'history' errors. A
        # result, not an exception: an exception nobody awaits is logged by asyncio as a traceback.
        self._turns: dict[tuple[str, str], asyncio.Future[list[tuple[Message, str]] | None]] = {}
        self._model_description = model.describe()
        self._in_flight = 0
        self._reserved_usd = 0.0  # what the requests in flight are expected to cost (with --max-cost)
        self._priced_requests = 0
        self._image_sizes: dict[str, tuple[int, int]] = {}
        self._failures_in_a_row = 0
        self._replied = False  # whether any request has had an answer (a reply or an HTTP error) from the server
        self.wanted: set[tuple[str, str]] | None = None

    async def run(self, work: AsyncIterator[Work] | Iterable[Work], total_questions: int) -> EngineStats:
        """Run every prompt; returns the counters (``stopped_reason`` says why a run stopped early).

        Prompts are taken from `work` only as slots free up, so a run holds the payloads of the
        requests in flight and little more, however many questions it asks.
        """
        self.stats = EngineStats(total=total_questions)
        source = work if isinstance(work, AsyncIterator) else _aiter(work)
        lock = asyncio.Lock()
        workers = [asyncio.create_task(self._worker(source, lock)) for _ in range(self.settings.concurrency)]
        flusher = asyncio.create_task(self._flush_often())
        try:
            await asyncio.gather(*workers)
        finally:
            flusher.cancel()
            self.store.flush()
            if self.cache is not None:
                self.cache.flush()
            for worker in workers:
                worker.cancel()
            for preamble in self._preambles.values():
                preamble.cancel()
            self.stats.finished = time.monotonic()
            self._report()
        return self.stats

    async def _flush_often(self) -> None:
        """Hand appended records to the operating system every FLUSH_INTERVAL_S."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self.store.flush()
            if self.store.lost() and self.stats.stopped_reason is None:
                # Asking on would only spend money on answers with nowhere to go.
                self.stats.stopped_reason = f"the run folder {self.store.folder} was deleted while the run wrote it"

    def _over_budget(self) -> bool:
        budget = self.settings.max_cost
        if budget is None:
            return False
        # Engines that send without reserving (the Ray Data LLM stage) fall back on the average so far.
        average = self.stats.cost_usd / max(1, self.stats.done) if self.stats.done else 0.0
        return self._spent() + max(self._reserved_usd, average * self._in_flight) >= budget

    def _spent(self) -> float:
        """Dollars the run has spent, earlier sessions of a resumed run included."""
        return self.settings.spent_before_usd + self.stats.cost_usd

    def _expected_cost(self, prompt: Prompt) -> float:
        """What one more request is expected to cost: the larger of the average so far and the
        prompt's own estimate (the --dry-run rule), so the first requests are priced too."""
        observed = self.stats.cost_usd / self._priced_requests if self._priced_requests else 0.0
        try:
            prior = estimate([prompt], self.images.settings, self.settings.price, self._image_sizes).cost_usd
        except Exception:  # an unreadable image: the request itself will fail and say why
            prior = None
        return max(observed, prior or 0.0)

    async def _reserve(self, prompt: Prompt) -> float | None:
        """Set aside a request's expected cost; None (and the run stops) when it would pass --max-cost.

        The estimate reads image sizes, so it is made off the event loop; the check and the
        reservation follow with no await between them and the request being counted in flight, so
        concurrent workers cannot all pass the check on the same spent amount.
        """
        if self.settings.max_cost is None:
            return 0.0
        expected = await asyncio.to_thread(self._expected_cost, prompt)
        return expected if self._set_aside(expected, "the next request") else None

    def _set_aside(self, expected: float, what: str) -> bool:
        """Add an expected cost to what is in flight, unless spent + in flight + it passes --max-cost
        (then the run stops, saying by how much)."""
        budget = self.settings.max_cost
        if budget is None:
            return True
        spent = self._spent()
        if spent + self._reserved_usd + expected > budget:
            if self.stats.stopped_reason is None:
                before = (
                    f", ${self.settings.spent_before_usd:.4f} of it before this session"
                    if self.settings.spent_before_usd
                    else ""
                )
                self.stats.stopped_reason = (
                    f"the cost budget of ${budget:.2f} would be passed: ${spent:.4f} spent{before}, "
                    f"${self._reserved_usd:.4f} expected for the requests in flight and ${expected:.4f} for "
                    f"{what}; raise --max-cost to go on"
                )
            return False
        self._reserved_usd += expected
        return True

    def _should_stop(self) -> bool:
        if self.stats.stopped_reason is not None:
            return True
        if self._over_budget():
            self.stats.stopped_reason = (
                f"the cost budget of ${self.settings.max_cost:.2f} was reached (${self._spent():.4f} spent); "
                "raise --max-cost to go on"
            )
            return True
        return False

    async def _worker(self, source: AsyncIterator[Work], lock: asyncio.Lock) -> None:
        while not self._should_stop():
            async with lock:  # one worker at a time advances the plan
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
            if isinstance(item, PlanFailure):
                records = self._plan_failure_records(item)
            else:
                # A question answered before is asked again where a later one needs its reply as history.
                if (
                    self.wanted is not None
                    and not item.carries_history
                    and not any(q.key in self.wanted for q in item.questions)
                ):
                    continue
                reserved = await self._reserve(item)
                if reserved is None:
                    self._abandon(item)
                    return  # its questions stay unasked: the run is partial and --resume asks them
                self._in_flight += 1
                try:
                    records = await self._run_prompt(item)
                finally:
                    self._in_flight -= 1
                    self._reserved_usd -= reserved
            if self.wanted is not None:
                records = [r for r in records if r.key in self.wanted]
            self.store.append(records, flush=False)
            self._count(records)
            self._watch_failures(records)

    def _watch_failures(self, records: list[Record]) -> None:
        """Stop a run that cannot succeed: a fatal error at once, else after max_errors failures in a row."""
        failed = [r for r in records if r.status is Status.ERROR and r.error_class != "input"]
        if not failed:
            if records:
                self._failures_in_a_row = 0
            return
        self._failures_in_a_row += 1
        error = failed[0]
        fatal = error.error_class in FATAL_ERROR_CLASSES or (
            error.error_class == "connection_refused" and not self._replied
        )
        if fatal and self.stats.stopped_reason is None:
            self.stats.stopped_reason = f"{error.error_class}: {error.error_message}"
        limit = self.settings.max_errors
        if limit and self._failures_in_a_row >= limit and self.stats.stopped_reason is None:
            self.stats.stopped_reason = (
                f"{self._failures_in_a_row} requests failed in a row (--max-errors {limit}); "
                f"the last: {error.error_class}: {error.error_message}"
            )

    def _plan_failure_records(self, failure: PlanFailure) -> list[Record]:
        return plan_failure_records(failure)

    def _count(self, records: list[Record]) -> None:
        stats = self.stats
        for record in records:
            stats.done += 1
            stats.answered += record.status is Status.ANSWERED
            stats.failed += record.status is Status.ERROR
            stats.unparsed += record.status is Status.UNPARSED
        stats.concurrency = self.limit.limit
        self._report()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

    async def _complete(self, prompt: Prompt) -> tuple[Completion, int, bool]:
        """The completion of a prompt: from the cache, or from the model with retries."""
        if self.cache is not None:
            parts = [p for m in prompt.messages for p in m.images]
            # Prefetched images are hashed already; a thread hop per request costs more than the lookup.
            digests = self.images.digests_if_encoded(parts)
            if digests is None:
                digests = await asyncio.to_thread(self.images.digests, parts)
            key = cache_key(self._model_description, prompt.digest(digests), self.settings.cache_settings)
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.cached += len(prompt.questions) or 1
                return hit, 0, True
        else:
            key = ""
        request = Request(
            messages=prompt.messages,
            max_tokens=prompt.max_tokens,
            temperature=self.settings.temperature,
            want_logprobs=self.settings.likelihood,
            images=self.images,
            questions=prompt.questions,
        )

        def on_retry(error: ModelCallError) -> None:
            self.stats.retries += 1
            logger.info("retrying %s after %s", prompt.image, error.error_class)

        completion, attempts = await call_with_retries(
            lambda: self._generate(request), self.settings.policy, self.limit, on_retry=on_retry
        )
        if self.cache is not None and not completion.refusal:
            self.cache.put(key, completion)  # queued in memory; the cache's own thread writes it
        return completion, attempts, False

    async def _generate(self, request: Request) -> Completion:
        """One call to the model, noting whether the server has ever answered."""
        try:
            completion = await self.model.generate(request)
        except ModelCallError as exc:
            if exc.error_class not in NO_REPLY_CLASSES:
                self._replied = True
            elif exc.error_class == "connection_refused" and not self._replied:
                # Nothing has ever reached the server: it is not running (or --base-url is wrong), and
                # a minute of retries would not change that. Once it has answered, a refusal is a restart.
                raise PermanentError(str(exc), error_class="connection_refused") from exc
            raise
        self._replied = True
        return completion

    async def _thoughts(self, prompt: Prompt) -> tuple[str, int]:
        """The chain-of-thought reply for an image, asked once and shared by its questions."""
        if prompt.image not in self._preambles:

            async def ask() -> tuple[str, int]:
                completion, attempts, _ = await self._complete(preamble_prompt(prompt))
                self._add_usage(completion)
                return completion.text, attempts

            self._preambles[prompt.image] = asyncio.create_task(ask())
        return await asyncio.shield(self._preambles[prompt.image])

    def _add_usage(self, completion: Completion) -> float | None:
        self.stats.prompt_tokens += completion.prompt_tokens or 0
        self.stats.completion_tokens += completion.completion_tokens or 0
        cost = cost_usd(completion.prompt_tokens, completion.completion_tokens, self.settings.price)
        self.stats.cost_usd += cost or 0.0
        self._priced_requests += cost is not None
        return cost

    async def answer(self, prompt: Prompt) -> list[Record]:
        """The records of one prompt (cache, retries, parsing, judge), not written anywhere.

        The Ray engine's actors call this and send the records to the driver, which writes them.
        """
        return await self._run_prompt(prompt)

    def _turn(self, key: tuple[str, str]) -> asyncio.Future[list[tuple[Message, str]] | None]:
        if key not in self._turns:
            self._turns[key] = asyncio.get_running_loop().create_future()
        return self._turns[key]

    def _abandon(self, prompt: Prompt) -> None:
        """A prompt that will not be asked: the later questions waiting for its turn fail instead of waiting."""
        if prompt.carries_history:
            turn = self._turn(prompt.questions[0].key)
            if not turn.done():
                turn.set_result(None)

    async def _run_prompt(self, prompt: Prompt) -> list[Record]:
        """The records of a prompt; one that carries its image's history first waits for the earlier
        question's turn (InternVL's chat() history: the CoT turn, then every earlier question and reply)."""
        if not prompt.carries_history:
            return await self._ask(prompt)
        mine = self._turn(prompt.questions[0].key)
        turns: list[tuple[Message, str]] = []
        if prompt.after is not None:
            earlier = await asyncio.shield(self._turn(prompt.after))
            if earlier is None:
                if not mine.done():
                    mine.set_result(None)
                message = "an earlier question of the image was not asked"
                return [
                    self._record(q, status=Status.ERROR, error_class="history", error_message=message, attempts=0)
                    for q in prompt.questions
                ]
            turns = list(earlier)
        try:
            records = await self._ask(prompt, turns)
            reply = next((r.raw_reply for r in records if r.raw_reply is not None), None)
            if reply is not None:  # a failed request leaves no turn, as the later questions would not see one
                turns = [*turns, (prompt.messages[-1], reply)]
            return records
        finally:
            if not mine.done():
                mine.set_result(turns)

    async def _ask(self, prompt: Prompt, history: Sequence[tuple[Message, str]] = ()) -> list[Record]:
        started = time.monotonic()
        digest = prompt.digest()
        extra: dict[str, Any] = {}
        try:
            if prompt.needs_preamble:
                thoughts, _ = await self._thoughts(prompt)
                prompt = with_preamble(prompt, thoughts, history)
                extra["preamble"] = thoughts
            completion, attempts, cached = await self._complete(prompt)
        except ModelCallError as exc:
            status = Status.REFUSED if exc.error_class == "refused" else Status.ERROR
            return [
                self._record(
                    q,
                    status=status,
                    prompt_hash=digest,
                    error_class=exc.error_class,
                    error_message=redact(str(exc)),
                    attempts=getattr(exc, "attempts", 1),
                    latency_s=time.monotonic() - started,
                    extra=extra,
                )
                for q in prompt.questions
            ]
        except Exception as exc:  # a broken image or a backend bug must not end the run
            if isinstance(exc, DataError):  # a missing or unreadable file: the data's fault, not the model's
                logger.warning("cannot ask about %s: %s", prompt.image, exc)
                error = PermanentError(str(exc), error_class="input")
            else:
                logger.exception("request for %s failed", prompt.image)
                error = PermanentError(str(exc), error_class=type(exc).__name__)
            return [
                self._record(
                    q,
                    status=Status.ERROR,
                    prompt_hash=digest,
                    error_class=error.error_class,
                    error_message=redact(str(exc)),
                    latency_s=time.monotonic() - started,
                    extra=extra,
                )
                for q in prompt.questions
            ]
        return await self.records_from_completion(
            prompt, completion, attempts=attempts, cached=cached, started=started, digest=digest, extra=extra
        )

    async def records_from_completion(
        self,
        prompt: Prompt,
        completion: Completion,
        *,
        attempts: int,
        cached: bool,
        started: float,
        digest: str,
        extra: dict[str, Any],
    ) -> list[Record]:
        """A reply's records: usage counted, the reply parsed (and judged), one record per question.

        `started` is the `time.monotonic()` at which the prompt was sent.
        """
        cost = None if cached else self._add_usage(completion)
        if self.settings.likelihood and not completion.letter_logprobs and not completion.refusal:
            self.stats.without_logprobs += 1
        parsed = self._parse(prompt, completion)
        judged = await self._judge_unparsed(prompt, completion, parsed)
        latency = time.monotonic() - started
        share = max(1, len(prompt.questions))
        records = []
        declined = set(completion.abstained_items)
        for index, (question, result) in enumerate(zip(prompt.questions, judged, strict=True)):
            if completion.abstained or (index in declined and not result.letter):
                status = Status.ABSTAINED
            elif result.letter:
                status = Status.ANSWERED
            elif completion.refusal or result.refusal:
                status = Status.REFUSED
            else:
                status = Status.UNPARSED
            records.append(
                self._record(
                    question,
                    status=status,
                    answer=result.letter,
                    parse_method=result.method.value if result.method else None,
                    raw_reply=completion.text,
                    prompt_hash=digest,
                    latency_s=latency,
                    prompt_tokens=_share(completion.prompt_tokens, share),
                    completion_tokens=_share(completion.completion_tokens, share),
                    cost_usd=None if cost is None else cost / share,
                    attempts=attempts,
                    cached=cached,
                    scores={**completion.scores, **(completion.letter_logprobs or {})},
                    extra={**extra, **completion.extra},
                )
            )
        return records

    def _parse(self, prompt: Prompt, completion: Completion) -> list[Parsed]:
        questions = prompt.questions
        reply = completion.text
        if self.settings.answer_from == "likelihood" and completion.letter_logprobs and len(questions) == 1:
            scored = {k: v for k, v in completion.letter_logprobs.items() if k in questions[0].options}
            if scored:
                return [Parsed(max(scored, key=lambda k: scored[k]), ParseMethod.LIKELIHOOD)]
        upstream = self.settings.parser in UPSTREAM_PARSERS
        if prompt.answer_format == "numbered-list":
            if upstream:
                return upstream_parse_list(reply, len(questions))
            return parse_numbered_list(reply, [q.options for q in questions])
        if upstream:
            first = self.settings.parser == "upstream-first"
            return [upstream_parse(reply, q.options, first=first) for q in questions]
        if prompt.answer_format == "last-letter":
            return [parse_last_letter(reply, q.options) for q in questions]
        return [parse_answer(reply, q.options) for q in questions]

    async def _judge_unparsed(self, prompt: Prompt, completion: Completion, parsed: list[Parsed]) -> list[Parsed]:
        if self.judge is None or completion.refusal:
            return parsed
        out = []
        for question, result in zip(prompt.questions, parsed, strict=True):
            if result.letter is not None or not completion.text.strip():
                out.append(result)
                continue
            options = "\n".join(f"{k}. {v}" for k, v in question.options.items())
            text = JUDGE_PROMPT.format(question=question.text, options=options, reply=completion.text)
            request = Request(messages=(Message(role="user", parts=(TextPart(text=text),)),), max_tokens=8)
            try:
                verdict = await self.judge.generate(request)
            except ModelCallError:
                out.append(result)
                continue
            letter = parse_answer(verdict.text, question.options).letter
            out.append(Parsed(letter, ParseMethod.JUDGE) if letter else result)
        return out

    def _record(self, question: PosedQuestion, *, status: Status, **fields: Any) -> Record:
        return question_record(question, status=status, **fields)


def question_record(question: PosedQuestion, *, status: Status, **fields: Any) -> Record:
    """The record of one posed question."""
    return Record(
        question_id=question.question_id,
        image=question.image,
        question_type=question.question_type,
        question_text=question.text,
        options=dict(question.options),
        correct_answer=question.correct_answer,
        variant=question.variant,
        status=status,
        **fields,
    )


def plan_failure_records(failure: PlanFailure) -> list[Record]:
    """The error records of an image whose prompts could not be built (error class ``input``)."""
    message = redact(str(failure.error))
    return [
        question_record(q, status=Status.ERROR, error_class="input", error_message=message, attempts=0)
        for q in failure.questions
    ]


async def _aiter(items: Iterable[Work]) -> AsyncIterator[Work]:
    for item in items:
        yield item


def _share(tokens: int | None, share: int) -> int | None:
    return None if tokens is None else round(tokens / share)
