"""The solver interface: how one prompt's questions get answered, turn by turn, by a model.

A solver is handed a `Prompt` (the rendered messages and the typed `PosedQuestion` s they pose:
id, subtask type, options as posed, image key, gold letter) and a `ModelCaller`, and returns the
prompt's records, one per posed question, in the prompt's order. It writes nothing: the run's
ledger writes, counts and applies the stop rules; the scheduler (local asyncio, a Ray actor, Ray
Data LLM) decides when and where a solver runs.

The contract, kept stable for every solver (the built-in ones and those a test or plugin adds):

- ``await solver.solve(prompt, call) -> list[Record]``: one record per ``prompt.questions``
  item (``question_record`` builds one). Any failure becomes records (status ``error`` with an
  error class), never an exception: a broken image or a backend bug must not end the run (the
  schedulers call it through `solve_or_fail`, which fails the prompt's questions with an exception
  that escapes).
- ``call(prompt) -> Reply``: one model call for a prompt of the solver's making (a chain-of-thought
  turn, a tool turn, the prompt itself): response cache, retries with backoff, the adaptive
  concurrency limit, and usage (tokens, dollars) counted for the run. It raises
  `ModelCallError` (``error_class``, ``attempts``) when the retries are spent or the reply was a
  refusal; ``Reply.cost_usd`` is what the reply cost at the run's price (None when unpriced; a
  cached reply's is what it cost when it was asked, not paid again: ``Reply.cached``). Pass
  ``answer=False`` for a turn whose reply answers no question (it is not counted as an answer
  lacking log-probabilities).
- ``await solver.prepare(prompt)``: make the files the prompt refers to before the scheduler
  prices or sends it (the agent's rendered image); never raises (a failure is reported by
  ``solve``). Most solvers need nothing here.
- ``solver.abandon(prompt)``: the scheduler will not ask `prompt` (the run stopped); a solver
  whose later prompts wait on it (the chain-of-thought history) releases them.
  ``solver.close()``: the run is over; cancel background work.
- ``solver.answer(prompt, call) -> Answer`` is the step-by-step form the built-in solvers share:
  the reply and its parsed letters, before they become records, so a wrapper (the judge fallback,
  the agent's renderer) can act on the pieces. A new solver may implement ``solve`` alone.

Solvers are chosen by name: `register_solver` ("name") adds a class to `SOLVERS` (a test file can
register its own without touching another module), and `build_solver` builds the chain a run's
settings name, innermost first: ``["cot", "agent-render", "judge"]`` is the judge fallback around
the agent's renderer around the chain-of-thought solver. A solver class is built from a
`SolverSetup`; a wrapper finds the solver it wraps in ``setup.inner``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from mmad.errors import ConfigError, DataError, ModelCallError
from mmad.models.base import Completion
from mmad.protocol.messages import PosedQuestion, Prompt
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
from mmad.records.record import Record, Status

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """What one model call gave: the completion, the attempts it took, whether the cache answered,
    and its cost in dollars at the run's price (None when the model has no price). A cached reply's
    cost is what its tokens cost when it was asked: the question costs that, though nothing is paid now."""

    completion: Completion
    attempts: int = 1
    cached: bool = False
    cost_usd: float | None = None


class ModelCaller(Protocol):
    """One call to the run's model: cache, retries, concurrency limit and usage, for a prompt."""

    async def __call__(self, prompt: Prompt, *, answer: bool = True) -> Reply:
        """The reply to `prompt`; raises `ModelCallError` when the retries are spent."""
        ...


@dataclass(frozen=True)
class SolverSettings:
    """How replies become letters: the parser (``mmad`` or an upstream one) and where the answer
    is read from (``text``, or ``likelihood``: the best-scored option letter where the model gave scores)."""

    parser: str = "mmad"
    answer_from: str = "text"


@dataclass(frozen=True)
class SolverSetup:
    """What a solver may use; every field but `settings` is optional (a solver checks what it needs)."""

    settings: SolverSettings = field(default_factory=SolverSettings)
    judge: ModelCaller | None = None
    """The caller of the model that reads an unparsed reply (``--judge``): the judge fallback's."""
    agent: Any = None
    """The agent strategy's renderer (`mmad.protocol.agent.AgentRenderer`) and the benchmark it reads."""
    benchmark: Any = None
    inner: Solver | None = None
    """For a wrapper: the solver it wraps."""
    options: dict[str, Any] = field(default_factory=dict)
    """Free settings for solvers that need their own (a plugin's)."""


@dataclass
class Answer:
    """One prompt's outcome, before it becomes records: the reply and its letters, or the failure."""

    prompt: Prompt
    started: float
    reply: Reply | None = None
    parsed: list[Parsed] = field(default_factory=list)
    error: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    """The hash of the prompt as posed (before any turn a solver adds); the records' prompt_hash."""
    asked: bool = True
    """False for a failure before anything was sent (no attempts, hash or latency recorded)."""

    def records(self) -> list[Record]:
        """One record per posed question."""
        if self.reply is None:
            return self._failure_records()
        completion = self.reply.completion
        cost = self.reply.cost_usd
        latency = time.monotonic() - self.started
        share = max(1, len(self.prompt.questions))
        declined = set(completion.abstained_items)
        records = []
        for index, (question, result) in enumerate(zip(self.prompt.questions, self.parsed, strict=True)):
            status = reply_status(
                result, refusal=completion.refusal, abstained=completion.abstained, declined=index in declined
            )
            records.append(
                question_record(
                    question,
                    status=status,
                    answer=result.letter,
                    parse_method=result.method.value if result.method else None,
                    raw_reply=completion.text,
                    prompt_hash=self.digest,
                    latency_s=latency,
                    prompt_tokens=_share(completion.prompt_tokens, share),
                    completion_tokens=_share(completion.completion_tokens, share),
                    cost_usd=None if cost is None else cost / share,
                    attempts=self.reply.attempts,
                    cached=self.reply.cached,
                    asked_latency_s=completion.latency_s if self.reply.cached else None,
                    scores={**completion.scores, **(completion.letter_logprobs or {})},
                    extra={**self.extra, **completion.extra},
                )
            )
        return records

    def _failure_records(self) -> list[Record]:
        exc = self.error or RuntimeError("the solver gave neither a reply nor an error")
        if not self.asked:
            error_class = "input" if isinstance(exc, DataError) else getattr(exc, "error_class", type(exc).__name__)
            return [
                question_record(q, status=Status.ERROR, error_class=error_class, error_message=str(exc), attempts=0)
                for q in self.prompt.questions
            ]
        latency = time.monotonic() - self.started
        if isinstance(exc, ModelCallError):
            status = Status.REFUSED if exc.error_class == "refused" else Status.ERROR
            error_class = exc.error_class
            attempts = getattr(exc, "attempts", 1)
        else:
            status = Status.ERROR
            error_class = error_class_of(exc)
            attempts = 1
        return [
            question_record(
                q,
                status=status,
                prompt_hash=self.digest,
                error_class=error_class,
                error_message=str(exc),
                attempts=attempts,
                latency_s=latency,
                extra=self.extra,
            )
            for q in self.prompt.questions
        ]


class Solver:
    """Answers one prompt's questions with a model; see the module docstring for the contract."""

    name = ""

    def __init__(self, setup: SolverSetup) -> None:
        self.setup = setup

    async def prepare(self, prompt: Prompt) -> None:
        """Make what the prompt refers to before it is priced or sent; never raises."""
        if self.setup.inner is not None:
            await self.setup.inner.prepare(prompt)

    def abandon(self, prompt: Prompt) -> None:
        """The scheduler will not ask `prompt` (the run stopped): release whatever waits for it."""
        if self.setup.inner is not None:
            self.setup.inner.abandon(prompt)

    def close(self) -> None:
        """The run is over: cancel what the solver still runs in the background."""
        if self.setup.inner is not None:
            self.setup.inner.close()

    async def solve(self, prompt: Prompt, call: ModelCaller) -> list[Record]:
        """The prompt's records, one per posed question."""
        return (await self.answer(prompt, call)).records()

    async def answer(self, prompt: Prompt, call: ModelCaller) -> Answer:
        """The prompt's reply and letters (or its failure), not yet records."""
        if self.setup.inner is None:
            msg = f"the solver {self.name or type(self).__name__} implements neither answer() nor solve()"
            raise NotImplementedError(msg)
        return await self.setup.inner.answer(prompt, call)

    def parse(self, prompt: Prompt, completion: Completion) -> list[Parsed]:
        """The letters of a reply, one per posed question, by the run's parser."""
        return parse_reply(prompt, completion, self.setup.settings)

    async def ask(self, prompt: Prompt, call: ModelCaller, *, sent: Prompt | None = None) -> Answer:
        """Send `sent` (default: `prompt`) and parse its reply as the answer to `prompt`'s questions.

        A failure is kept in the answer: a `ModelCallError` as the model's, a `DataError` (a missing
        or unreadable image) as the input's, anything else logged with its traceback as a bug.
        """
        answer = Answer(prompt=prompt, started=time.monotonic(), digest=prompt.digest())
        try:
            answer.reply = await call(sent or prompt)
        except Exception as exc:
            return fail(answer, exc)
        answer.parsed = self.parse(prompt, answer.reply.completion)
        return answer


async def solve_or_fail(solver: Solver, prompt: Prompt, call: ModelCaller) -> list[Record]:
    """The prompt's records by `solver`; an exception it lets out (against the contract: a plugin's
    bug, a ModelCallError it did not catch) fails the prompt's questions instead of ending the run."""
    started = time.monotonic()
    try:
        return await solver.solve(prompt, call)
    except Exception as exc:
        return fail(Answer(prompt=prompt, started=started, digest=prompt.digest()), exc).records()


def error_class_of(exc: BaseException) -> str:
    """A failure's class, as its failed record names it: the model call's, ``input`` for a missing or
    unreadable file (the data's fault, not the model's), else the exception's type."""
    if isinstance(exc, ModelCallError):
        return exc.error_class
    return "input" if isinstance(exc, DataError) else type(exc).__name__


def fail(answer: Answer, exc: BaseException) -> Answer:
    """`answer` as a failure: logged (a bug with its traceback), kept for its records."""
    if isinstance(exc, DataError):
        logger.warning("cannot ask about %s: %s", answer.prompt.image, exc)
    elif not isinstance(exc, ModelCallError):
        logger.exception("request for %s failed", answer.prompt.image, exc_info=exc)
    answer.error = exc
    return answer


def parse_reply(prompt: Prompt, completion: Completion, settings: SolverSettings) -> list[Parsed]:
    """A reply's letters, one per posed question: by likelihood where asked and given, else by the
    answer format's parser (mmad's or the upstream scripts')."""
    questions = prompt.questions
    reply = completion.text
    if settings.answer_from == "likelihood" and completion.letter_logprobs and len(questions) == 1:
        scored = {k: v for k, v in completion.letter_logprobs.items() if k in questions[0].options}
        if scored:
            return [Parsed(max(scored, key=lambda k: scored[k]), ParseMethod.LIKELIHOOD)]
    upstream = settings.parser in UPSTREAM_PARSERS
    if prompt.answer_format == "numbered-list":
        if upstream:
            return upstream_parse_list(reply, len(questions))
        return parse_numbered_list(reply, [q.options for q in questions])
    if upstream:
        first = settings.parser == "upstream-first"
        return [upstream_parse(reply, q.options, first=first) for q in questions]
    if prompt.answer_format == "last-letter":
        return [parse_last_letter(reply, q.options) for q in questions]
    return [parse_answer(reply, q.options) for q in questions]


def reply_status(parsed: Parsed, *, refusal: bool, abstained: bool = False, declined: bool = False) -> Status:
    """A question's status from its reply: ``abstained`` where the whole reply declines (whatever
    was read from it), or where the model declined this question (``declined``) and no letter was
    read anyway; else answered with a letter, refused where the reply (``refusal``) or the parser
    says so, unparsed otherwise."""
    if abstained or (declined and not parsed.letter):
        return Status.ABSTAINED
    if parsed.letter:
        return Status.ANSWERED
    if refusal or parsed.refusal:
        return Status.REFUSED
    return Status.UNPARSED


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


def _share(tokens: int | None, share: int) -> int | None:
    return None if tokens is None else round(tokens / share)


SolverClass = TypeVar("SolverClass", bound=type[Solver])

SOLVERS: dict[str, Callable[[SolverSetup], Solver]] = {}
"""Solver factories by name (a class taking a `SolverSetup` is one)."""


def register_solver(name: str) -> Callable[[SolverClass], SolverClass]:
    """Class decorator: make a solver selectable by `name` (``--solver NAME``)."""

    def add(cls: SolverClass) -> SolverClass:
        known = SOLVERS.get(name)
        if known is not None and known is not cls:
            msg = f"a solver named {name!r} is registered already ({known}); choose another name"
            raise ConfigError(msg)
        cls.name = name
        SOLVERS[name] = cls
        return cls

    return add


def unregister_solver(name: str) -> None:
    """Forget a solver (a test's own, once the test is over)."""
    SOLVERS.pop(name, None)


def build_solver(names: list[str] | tuple[str, ...], setup: SolverSetup) -> Solver:
    """The chain of solvers `names` names, innermost first, each wrapping the one before."""
    if not names:
        msg = "a run needs a solver: name one (plain, cot, ...)"
        raise ConfigError(msg)
    solver: Solver | None = None
    for name in names:
        factory = SOLVERS.get(name)
        if factory is None:
            msg = f"unknown solver {name!r}; the solvers are {', '.join(sorted(SOLVERS))}"
            raise ConfigError(msg)
        solver = factory(replace(setup, inner=solver))
    assert solver is not None
    return solver
