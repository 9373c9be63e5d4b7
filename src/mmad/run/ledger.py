"""The run's books: one owner of what a run has asked, has in flight, answered and failed.

A scheduler (the local engine, the Ray actor pool, Ray Data LLM) decides when and where each
prompt is asked; it asks the ledger before sending (`wants`, `should_stop`, `reserve`), tells it
what is in flight (`sent`, `returned`) and hands it every record (`write`). The ledger alone:

- writes records (through the run's `RunStore`, a key at most once where the scheduler may send
  a prompt twice), with error messages scrubbed of credentials;
- keeps the counters (`EngineStats`) and reports them to the progress display;
- reserves and spends the budget (--max-cost, with what earlier sessions of a resumed run spent);
- applies the stop rules: a fatal error at once, --max-errors failures in a row, a budget that
  would be passed, a run folder deleted while the run wrote it;
- changes the run's manifest (run.json) mid-run: `describe_model`, and what the run has spent so
  far (every MANIFEST_INTERVAL_S while records come), so a killed run's spending counts in its resume
  (its usage, and --max-cost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import PosedQuestion, Prompt
from mmad.records.record import Record, Status
from mmad.run.cache import ResponseCache
from mmad.run.limits import RetryPolicy
from mmad.run.manifest import JudgeUsage, Usage, write_manifest
from mmad.run.secrets import redact
from mmad.run.store import RunStore
from mmad.run.tokens import cost, estimate, with_tool_turns
from mmad.solvers.base import question_record

logger = logging.getLogger(__name__)

Key = tuple[str, str]

FLUSH_INTERVAL_S = 0.1
MANIFEST_INTERVAL_S = 1.0
"""How often run.json is given the spending so far while records come (a SIGKILL runs no finish stage)."""
FATAL_ERROR_CLASSES = frozenset({"auth", "not_found", "dns", "tls", "images_refused", "judge_unreachable"})
"""Failures that every later request would meet too: the run stops at the first one."""


@dataclass
class CallCounts:
    """What one model's calls used: the counters a `mmad.run.caller.ModelClient` adds to."""

    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    without_logprobs: int = 0
    priced_requests: int = 0
    """Calls whose cost is known (the average a further request is expected to cost is taken over them)."""
    unpriced_requests: int = 0
    """Calls that came back with no cost: no price for the model, or no usage in the reply."""

    @property
    def cost_known(self) -> bool:
        """Whether `cost_usd` is a measured figure: it is not when calls came back and none was priced."""
        return bool(self.priced_requests or not self.unpriced_requests)


@dataclass
class JudgeCounts(CallCounts):
    """The judge's calls (--judge): their own usage, and what became of them."""

    requests: int = 0
    """Replies put to the judge (from the cache or sent)."""
    cached: int = 0
    failed: int = 0
    """Judge calls that gave no verdict (retries spent, or the budget would have been passed): their
    prompt's questions fail (class ``judge``, or ``budget``), for --resume to judge."""


JUDGE_FIELDS = ("requests", "cached", "failed", *CallCounts.__dataclass_fields__)
"""The judge's counters, as a Ray actor sends them (prefixed ``judge_``) and the driver adds them up."""


@dataclass
class EngineStats(CallCounts):
    """Live counters for progress display.

    The usage counters (tokens, ``cost_usd``) are the whole run's, the judge's calls included, so the
    budget and every figure shown count what was spent; ``judge`` holds the judge's share, and
    ``retries`` and the priced/unpriced counts are the model's own."""

    total: int = 0
    done: int = 0
    answered: int = 0
    failed: int = 0
    unparsed: int = 0
    cached: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stopped_reason: str | None = None
    concurrency: int = 0
    judge: JudgeCounts = field(default_factory=JudgeCounts)

    @property
    def cost_known(self) -> bool:
        """Whether `cost_usd` is a measured figure: not when the model's calls came back and none was
        priced, nor when the judge's did (the total would leave the judge out)."""
        return super().cost_known and self.judge.cost_known

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
    tool_turns: int | None = None
    """A tools run's --max-turns: each question sends its direct request and up to this many turns,
    all set aside under --max-cost before it starts."""


@dataclass(frozen=True)
class PlanFailure:
    """An image whose prompts could not be built (a missing template or mask, an unreadable file)."""

    image: str
    questions: tuple[PosedQuestion, ...]
    error: Exception


Work = Prompt | PlanFailure


def plan_failure_records(failure: PlanFailure) -> list[Record]:
    """The error records of an image whose prompts could not be built (error class ``input``)."""
    message = redact(str(failure.error))
    return [
        question_record(q, status=Status.ERROR, error_class="input", error_message=message, attempts=0)
        for q in failure.questions
    ]


async def aiter_of(items: AsyncIterator[Work] | Iterable[Work]) -> AsyncIterator[Work]:
    """The plan as an async iterator, whether it is one already or a plain iterable."""
    if isinstance(items, AsyncIterator):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class Ledger:
    """What a run has asked, has in flight, answered and failed; its budget, stop rules and records."""

    def __init__(
        self,
        store: RunStore,
        settings: EngineSettings,
        images: ImageEncoder,
        *,
        on_progress: Callable[[EngineStats], None] | None = None,
        once: bool = False,
        manifest_holder: Any = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.images = images
        self.on_progress = on_progress
        self.manifest_holder = manifest_holder
        """The prepared run (`mmad.run.prepare.PreparedRun`) whose manifest `describe_model` changes; None:
        nothing to change."""
        self.stats = EngineStats()
        self.wanted: set[Key] | None = None
        """The keys this session asks (None: all); records of other keys are not written."""
        self.recorded: set[Key] | None = set() if once else None
        """With `once`: the keys written this session (a scheduler that may send a prompt twice)."""
        self.in_flight = 0
        self.reserved_usd = 0.0  # what the requests in flight are expected to cost (with --max-cost)
        self.replied: Callable[[], bool] = lambda: False
        """Whether the model's server has ever answered (a refused connection before that is fatal)."""
        self.concurrency: Callable[[], int] = lambda: settings.concurrency
        """The requests the scheduler allows in flight now (the local engine's adaptive limit)."""
        self._image_sizes: dict[str, tuple[int, int]] = {}
        self._failures_in_a_row = 0
        self._spent_before: Usage | None = None

    # What to ask
    def begin(self, total_questions: int) -> None:
        """A session starts: `total_questions` to ask, the clock from now."""
        self.stats.total = total_questions
        self.stats.started = time.monotonic()
        if self.manifest_holder is not None:  # a resumed run's manifest holds what its earlier sessions spent
            self._spent_before = self.manifest_holder.manifest.usage

    def wants(self, prompt: Prompt) -> bool:
        """Whether a prompt poses a question this session asks."""
        return self.wanted is None or any(q.key in self.wanted for q in prompt.questions)

    # Stop rules
    def stop(self, reason: str) -> None:
        """Stop the run (the first reason is kept)."""
        if self.stats.stopped_reason is None:
            self.stats.stopped_reason = reason

    def should_stop(self) -> bool:
        """Whether to send nothing more: a stop rule has fired, or the budget is reached."""
        if self.stats.stopped_reason is not None:
            return True
        if self._over_budget():
            self.stop(
                f"the cost budget of ${self.settings.max_cost:.2f} was reached (${self.spent():.4f} spent); "
                "raise --max-cost to go on"
            )
            return True
        return False

    def _over_budget(self) -> bool:
        budget = self.settings.max_cost
        if budget is None:
            return False
        # Schedulers that send without reserving (the Ray Data LLM stage) fall back on the average so far.
        average = self.stats.cost_usd / max(1, self.stats.done) if self.stats.done else 0.0
        return self.spent() + max(self.reserved_usd, average * self.in_flight) >= budget

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
            error.error_class == "connection_refused" and not self.replied()
        )
        if fatal:
            self.stop(f"{error.error_class}: {error.error_message}")
        limit = self.settings.max_errors
        if limit and self._failures_in_a_row >= limit:
            self.stop(
                f"{self._failures_in_a_row} requests failed in a row (--max-errors {limit}); "
                f"the last: {error.error_class}: {error.error_message}"
            )

    # Budget
    def spent(self) -> float:
        """Dollars the run has spent, earlier sessions of a resumed run included."""
        return self.settings.spent_before_usd + self.stats.cost_usd

    def expected_cost(self, prompt: Prompt) -> float:
        """What one more request is expected to cost: the larger of the average so far and the
        prompt's own estimate (the --dry-run rule), so the first requests are priced too."""
        priced = self.stats.priced_requests
        # The model's own average: priced_requests counts its calls alone, and the judge reserves its calls itself.
        observed = (self.stats.cost_usd - self.stats.judge.cost_usd) / priced if priced else 0.0
        turns = self.settings.tool_turns
        try:
            guess = estimate([prompt], self.images.settings, self.settings.price, self._image_sizes)
            if turns and self.settings.price is not None:
                with_tool_turns(guess, turns)
                guess.cost_usd = cost(guess, self.settings.price)
            prior = guess.cost_usd
        except Exception:  # an unreadable image: the request itself will fail and say why
            prior = None
        # A tools question is one plain request and a conversation of up to `turns` more.
        return max(observed * (1 + (turns or 0)), prior or 0.0)

    async def reserve(
        self, prompts: Sequence[Prompt], what: str = "the next request", *, extra_usd: float = 0.0
    ) -> float | None:
        """Set aside what `prompts` are expected to cost (and `extra_usd`: calls they may lead to, the
        judge's on Ray); None (and the run stops) when that would pass --max-cost.

        The estimate reads image sizes, so it is made off the event loop; the check and the
        reservation follow with no await between them and the scheduler counting the requests in
        flight (`sent`), so concurrent workers cannot all pass the check on the same spent amount.
        """
        if self.settings.max_cost is None:
            return 0.0
        expected = await asyncio.to_thread(lambda: sum(self.expected_cost(p) for p in prompts)) + extra_usd
        return expected if self._set_aside(expected, what) else None

    @property
    def budgeted(self) -> bool:
        """Whether the run has a budget (--max-cost) to reserve from."""
        return self.settings.max_cost is not None

    def set_aside(self, expected: float, what: str) -> bool:
        """Reserve `expected` dollars for a call the scheduler does not count in flight (the judge's);
        False (and the run stops) when that would pass --max-cost. `release` hands it back."""
        return self._set_aside(expected, what)

    def release(self, reserved_usd: float) -> None:
        """What `set_aside` reserved, handed back once the call came back (its cost counted)."""
        self.reserved_usd -= reserved_usd

    def _set_aside(self, expected: float, what: str) -> bool:
        budget = self.settings.max_cost
        if budget is None:
            return True
        spent = self.spent()
        if spent + self.reserved_usd + expected > budget:
            before = (
                f", ${self.settings.spent_before_usd:.4f} of it before this session"
                if self.settings.spent_before_usd
                else ""
            )
            self.stop(
                f"the cost budget of ${budget:.2f} would be passed: ${spent:.4f} spent{before}, "
                f"${self.reserved_usd:.4f} expected for the requests in flight and ${expected:.4f} for "
                f"{what}; raise --max-cost to go on"
            )
            return False
        self.reserved_usd += expected
        return True

    def sent(self, requests: int = 1) -> None:
        """`requests` more are in flight (their cost reserved before)."""
        self.in_flight += requests

    def returned(self, requests: int = 1, reserved_usd: float = 0.0) -> None:
        """`requests` came back (or were given up); what was reserved for them is released."""
        self.in_flight -= requests
        self.reserved_usd -= reserved_usd

    # Records
    def write(self, records: list[Record], *, flush: bool = True) -> None:
        """Append records (those this session asks, each key once with `once`), then count and watch them."""
        records = [r for r in records if self.wanted is None or r.key in self.wanted]
        if self.recorded is not None:
            records = [r for r in records if r.key not in self.recorded]
            self.recorded.update(r.key for r in records)
        records = [_scrubbed(r) for r in records]
        self.store.append(records, flush=flush)
        self._count(records)
        self._watch_failures(records)

    def _count(self, records: list[Record]) -> None:
        stats = self.stats
        for record in records:
            stats.done += 1
            stats.answered += record.status is Status.ANSWERED
            stats.failed += record.status is Status.ERROR
            stats.unparsed += record.status is Status.UNPARSED
            stats.cached += record.cached
        stats.concurrency = self.concurrency()
        self.report()

    def add_usage_totals(self, totals: dict[str, float]) -> None:
        """Usage counted elsewhere (the Ray actors' sums, by counter name) as this run's."""
        for name, total in totals.items():
            counts: CallCounts = self.stats
            if name.startswith("judge_"):
                counts, name = self.stats.judge, name.removeprefix("judge_")
            setattr(counts, name, total if name == "cost_usd" else int(total))

    def report(self) -> None:
        """Hand the counters to the progress display."""
        if self.on_progress is not None:
            self.on_progress(self.stats)

    async def flush_often(self) -> None:
        """Hand appended records to the operating system every FLUSH_INTERVAL_S, and the spending so far
        to run.json every MANIFEST_INTERVAL_S while records come; stop on a deleted folder."""
        saved_at, saved_done = time.monotonic(), 0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self.store.flush()
            if self.store.lost():
                # Asking on would only spend money on answers with nowhere to go.
                self.stop(f"the run folder {self.store.folder} was deleted while the run wrote it")
                continue
            if self.stats.done != saved_done and time.monotonic() - saved_at >= MANIFEST_INTERVAL_S:
                saved_at, saved_done = time.monotonic(), self.stats.done
                try:
                    self.save_spending()
                except OSError as exc:  # the records matter more: this loop must go on flushing them
                    logger.warning("run.json could not be given the spending so far: %s", exc)

    def save_spending(self) -> None:
        """Write run.json with what the run has spent so far (status still running): a run killed
        with SIGKILL never reaches its finish stage, and its resume reads the spending from here."""
        holder = self.manifest_holder
        if holder is None:
            return
        usage = session_usage(self.stats)
        if self._spent_before is not None:
            usage = usage.plus(self._spent_before)
        if not self.store.lost():  # a deleted run folder is not made again
            write_manifest(self.store.folder, holder.manifest.spending(usage), create=False)

    def close(self) -> None:
        """The session is over: records flushed, the clock stopped, the last counters reported."""
        self.store.flush()
        self.stats.finished = time.monotonic()
        self.report()

    # The manifest
    def describe_model(self, description: dict[str, Any]) -> None:
        """What the run's manifest records about the model, once it is known mid-run (built on Ray)."""
        holder = self.manifest_holder
        if holder is not None:  # finish() writes it; a killed run keeps what prepare() wrote
            holder.manifest = holder.manifest.with_model(description)


class Scheduler:
    """What every scheduler offers the runner: the ledger's counters, the keys asked, the image
    encoder (prefetched by the runner), the response cache it closes, and `run`."""

    ledger: Ledger
    images: ImageEncoder
    cache: ResponseCache | None = None

    @property
    def stats(self) -> EngineStats:
        """The run's counters (the ledger's)."""
        return self.ledger.stats

    @property
    def store(self) -> RunStore:
        """The run folder's records."""
        return self.ledger.store

    @property
    def wanted(self) -> set[Key] | None:
        """The keys this session asks (None: all)."""
        return self.ledger.wanted

    @wanted.setter
    def wanted(self, keys: set[Key] | None) -> None:
        self.ledger.wanted = keys

    async def run(self, work: AsyncIterator[Work] | Iterable[Work], total_questions: int) -> EngineStats:
        """Ask every prompt of `work`; the counters (``stopped_reason`` says why a run stopped early)."""
        raise NotImplementedError


def session_usage(stats: EngineStats) -> Usage:
    """What this session has spent, as run.json records it: the totals hold the judge's calls, and
    ``judge`` their share (None when no reply was put to a judge)."""
    judge = stats.judge
    return Usage(
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        cost_usd=round(stats.cost_usd, 6) if stats.cost_known else None,
        cached=stats.cached,
        retries=stats.retries,
        elapsed_s=round(stats.elapsed_s, 3),
        judge=JudgeUsage(
            requests=judge.requests,
            cached=judge.cached,
            failed=judge.failed,
            retries=judge.retries,
            prompt_tokens=judge.prompt_tokens,
            completion_tokens=judge.completion_tokens,
            cost_usd=round(judge.cost_usd, 6) if judge.cost_known else None,
        )
        if judge.requests
        else None,
    )


def _scrubbed(record: Record) -> Record:
    """A record whose error messages hold no credential: its own, and a branch's in ``extra``
    (``extra.<branch>.error_message``: a tools conversation that failed under --blend)."""
    update: dict[str, Any] = {}
    if record.error_message is not None:
        message = redact(record.error_message)
        if message != record.error_message:
            update["error_message"] = message
    branches = {}
    for key, part in record.extra.items():
        if isinstance(part, dict) and isinstance(part.get("error_message"), str):
            message = redact(part["error_message"])
            if message != part["error_message"]:
                branches[key] = {**part, "error_message": message}
    if branches:
        update["extra"] = {**record.extra, **branches}
    return record.model_copy(update=update) if update else record
