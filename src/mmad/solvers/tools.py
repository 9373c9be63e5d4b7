"""The tools solver: a tool-using inspector, always asked beside a plain (direct) answer.

Each question is asked twice, in parallel (its wall time is the slower of the two): plainly, by the
solver this one wraps (the direct branch), and in a conversation where the model may call the
run's tools (`mmad.tools`) for up to ``max_turns - 1`` turns before the last turn forbids them and
asks for the answer. The record's answer is the tools branch's, or with ``blend`` the option whose
blended score is highest: ``blend × tools + (1 - blend) × direct`` over the options' probabilities
(from the letters' log-probabilities where the model gave them; otherwise a branch's answer counts
as probability 1); a branch with neither leaves the blend to the other. Both branches' answers and
score vectors, every model turn (tokens, latency, cost) and every tool call (name, arguments,
result summary) are kept in the record's ``extra``, with the whole conversation, so a report can
replay it.

Protocols (`mmad.protocol.tool_text`): ``native`` is OpenAI function calling; ``text`` is one JSON
object per turn; ``auto`` starts native and, the first time the server refuses tools (error class
``tools_refused``), switches the whole run to text and asks that conversation again.

Resume: each conversation's turns are journalled in the run folder (``tools/turns/``) as they come
back, so a question interrupted mid-conversation is replayed from its journal on resume: no turn
that was answered is asked again, whether or not the response cache is on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mmad.errors import ConfigError, ModelCallError
from mmad.models.base import Completion
from mmad.protocol.messages import ImagePart, Message, Prompt, TextPart, ToolCall
from mmad.protocol.parse import Parsed, ParseMethod
from mmad.protocol.tool_text import (
    FINAL_TURN,
    TEXT_FINAL_TURN,
    TEXT_INVALID,
    Protocol,
    ToolReply,
    intro,
    parse_text_turn,
    result_messages,
    with_tools_intro,
)
from mmad.records.record import Record, Status
from mmad.score.metrics.tools import option_probabilities
from mmad.solvers.base import (
    Answer,
    ModelCaller,
    Reply,
    Solver,
    SolverSetup,
    error_class_of,
    question_record,
    register_solver,
    reply_status,
)
from mmad.tools import Toolbox

logger = logging.getLogger(__name__)
DEFAULT_MAX_TURNS = 4
BLIND_NOTE = "(Its image is not shown: this run sends no images.)"
TOOL_TURN_TOKENS = 256
"""The reply limit of a tool turn at least: a call's JSON must fit."""


@dataclass(frozen=True)
class ToolLoopSettings:
    """The tools strategy's settings (``--tools``, ``--max-turns``, ``--tool-protocol``, ``--blend``)."""

    max_turns: int = DEFAULT_MAX_TURNS
    protocol: str = "auto"
    blend: float | None = None

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            msg = f"--max-turns {self.max_turns}: the tools strategy needs at least 1 turn (the last one answers)"
            raise ConfigError(msg)
        if self.protocol not in {"auto", "native", "text"}:
            msg = f"--tool-protocol {self.protocol}: choose auto, native (function calling) or text (JSON replies)"
            raise ConfigError(msg)
        if self.blend is not None and not 0 <= self.blend <= 1:
            msg = f"--blend {self.blend:g}: the tools branch's weight must be 0 to 1 (0.5 averages the two)"
            raise ConfigError(msg)


@dataclass
class Branch:
    """The tools branch of one question: its turns, calls, conversation and final reply."""

    protocol: Protocol
    messages: list[Message]
    turns: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    final: Completion | None = None
    answer_text: str = ""
    parsed: Parsed | None = None
    """The final reply's letter, read once (the record and a wrapper both use it)."""
    forced: bool = False
    attempts: int = 0
    cached: bool = True
    """Whether every turn so far came from the cache (or the run's journal): nothing was sent."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None

    def count(self, reply: Reply) -> None:
        """Add one model turn's usage."""
        completion = reply.completion
        self.attempts += reply.attempts
        self.cached = self.cached and reply.cached
        self.prompt_tokens = _add(self.prompt_tokens, completion.prompt_tokens)
        self.completion_tokens = _add(self.completion_tokens, completion.completion_tokens)
        self.cost_usd = _add(self.cost_usd, reply.cost_usd)


@dataclass
class ToolsAnswer(Answer):
    """A tools question's answer: the tools branch's reply and letter (what a wrapper reads), and the
    record made of both branches. A wrapper's letter for a reply the parser could not read (the judge
    fallback's) goes into the record; the rest of the record is the branches'."""

    record: Record | None = None

    def records(self) -> list[Record]:
        """The record of both branches, with a wrapper's letter where the tools branch had none."""
        if self.record is None:
            return super().records()
        record = self.record
        found = self.parsed[0] if self.parsed else None
        if record.status is Status.UNPARSED and found is not None and found.letter:
            update = {"answer": found.letter, "parse_method": found.method.value if found.method else None}
            record = record.model_copy(update={**update, "status": Status.ANSWERED})
        return [record]


class TurnJournal:
    """The model turns of each conversation so far, one JSON line per turn, in the run folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def _path(self, key: tuple[str, str], branch: str) -> Path:
        name = hashlib.sha1(json.dumps([*key, branch]).encode()).hexdigest()[:20]
        return self.folder / f"{name}.jsonl"

    def read(self, key: tuple[str, str], branch: str) -> dict[str, Completion]:
        """The turns journalled for a question's branch, by the digest of the prompt that asked them."""
        path = self._path(key, branch)
        found: dict[str, Completion] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return found
        for line in lines:
            try:
                entry = json.loads(line)
                found[entry["digest"]] = Completion(**entry["completion"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash: that turn is asked again
        return found

    def write(self, key: tuple[str, str], branch: str, digest: str, completion: Completion) -> None:
        """Append one turn."""
        line = json.dumps({"digest": digest, "completion": asdict(completion)}) + "\n"
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._path(key, branch).open("a", encoding="utf-8") as handle:
                handle.write(line)


@register_solver("tools")
class ToolsSolver(Solver):
    """Asks each question plainly (the wrapped solver) and with tools; see the module docstring."""

    def __init__(self, setup: SolverSetup) -> None:
        super().__init__(setup)
        toolbox = setup.options.get("toolbox")
        if setup.inner is None or not isinstance(toolbox, Toolbox):
            msg = "the tools solver wraps another (the direct branch) and needs the run's toolbox (options['toolbox'])"
            raise ConfigError(msg)
        self.toolbox: Toolbox = toolbox
        self.loop: ToolLoopSettings = setup.options.get("tool_loop") or ToolLoopSettings()
        self.protocol: Protocol = "text" if self.loop.protocol == "text" else "native"
        self.journal = TurnJournal(self.toolbox.folder / "turns")
        self.run_dir = self.toolbox.folder.parent.resolve()  # once: `_stored` is asked for every image of every turn
        self._fallbacks_told: set[str] = set()
        """The failure classes a warning has named already: a fallback is said once per class, not per question."""

    async def answer(self, prompt: Prompt, call: ModelCaller) -> Answer:
        """The direct and the tools branch in parallel, as one answer (a `ToolsAnswer`): its reply and
        letter are the tools branch's, for a wrapper (the judge fallback) to work on; its record holds both."""
        started = time.monotonic()
        assert self.setup.inner is not None
        if len(prompt.questions) != 1:
            several = ConfigError("the tools strategy asks one question per request: leave out --per-image")
            return Answer(prompt=prompt, started=started, error=several, asked=False)
        direct_task = asyncio.create_task(self._direct(prompt, call))
        error: BaseException | None = None
        tried: list[Branch] = []
        try:
            branch: Branch | None = await self._converse(prompt, call, tried)
        except ModelCallError as exc:
            branch, error = None, exc
        except Exception as exc:  # a bug must become records, not end the run
            logger.exception("the tools conversation about %s failed", prompt.image)
            branch, error = None, exc
        except BaseException:  # cancelled (the run stopped): the direct branch stops with it
            direct_task.cancel()
            raise
        direct = await direct_task
        wall_s = time.monotonic() - started
        if branch is None and self.loop.blend is not None:
            record = self._fallback(prompt, tried[-1] if tried else None, error, direct, wall_s)
        else:
            record = self._record(prompt, branch, error, direct, wall_s)
        outcome = ToolsAnswer(prompt=prompt, started=started, error=error, digest=prompt.digest(), record=record)
        if branch is not None and branch.final is not None and branch.parsed is not None:
            outcome.reply = Reply(
                branch.final, attempts=branch.attempts, cached=branch.cached, cost_usd=branch.cost_usd
            )
            parsed = branch.parsed
            if parsed.letter is None and record.status is Status.ANSWERED and record.answer:
                # The blend answered from the direct branch: a judge's verdict on the tools reply would be
                # paid for and then dropped (the record keeps its answer), so a wrapper sees the blend's letter.
                parsed = Parsed(record.answer, ParseMethod.LIKELIHOOD)
            outcome.parsed = [parsed]
        return outcome

    async def _direct(self, prompt: Prompt, call: ModelCaller) -> Record:
        """The plain answer's record (the wrapped solver's), made when it comes back (its latency is its
        own, not the tools branch's); from the journal when it was answered before."""
        assert self.setup.inner is not None
        key = prompt.questions[0].key
        digest = prompt.digest()
        known = self.journal.read(key, "direct").get(digest)
        if known is not None:
            answer = Answer(prompt=prompt, started=time.monotonic(), digest=digest)
            answer.reply = Reply(known, attempts=0, cached=True)
            answer.parsed = self.parse(prompt, known)
            return answer.records()[0]
        answer = await self.setup.inner.answer(prompt, call)
        if answer.reply is not None and not answer.reply.cached:
            self.journal.write(key, "direct", digest, answer.reply.completion)
        return answer.records()[0]

    async def _converse(self, prompt: Prompt, call: ModelCaller, tried: list[Branch]) -> Branch:
        """The tools conversation, falling back to the text protocol once if the server refuses tools.
        Each conversation begun goes into `tried`, so a failed one's turns and calls can be recorded."""
        protocol = self.protocol
        try:
            return await self._conversation(prompt, call, protocol, tried)
        except ModelCallError as exc:
            if exc.error_class != "tools_refused" or self.loop.protocol != "auto" or protocol == "text":
                raise
            if self.protocol != "text":
                logger.warning("the server refuses tools (%s); the rest of the run uses the text protocol", exc)
                self.protocol = "text"
            return await self._conversation(prompt, call, "text", tried)

    async def _conversation(self, prompt: Prompt, call: ModelCaller, protocol: Protocol, tried: list[Branch]) -> Branch:
        specs = self.toolbox.specs()
        last = self.loop.max_turns
        branch = Branch(protocol, list(with_tools_intro(prompt.messages, intro(protocol, specs, last - 1))))
        tried.append(branch)
        item = self.toolbox.benchmark.item(prompt.image)
        key = prompt.questions[0].key
        journal = self.journal.read(key, protocol)
        blind = not any(m.images for m in prompt.messages)
        max_tokens = None if prompt.max_tokens is None else max(prompt.max_tokens, TOOL_TURN_TOKENS)
        for turn in range(1, last + 1):
            final = turn == last
            if final:
                branch.forced = True
                branch.messages.append(
                    Message(role="user", parts=(TextPart(text=TEXT_FINAL_TURN if protocol == "text" else FINAL_TURN),))
                )
            sent = Prompt(
                image=prompt.image,
                messages=tuple(branch.messages),
                questions=prompt.questions,
                max_tokens=max_tokens,
                tools=tuple(specs) if protocol == "native" else (),
                tool_choice="none" if protocol == "native" and final else None,
            )
            # Tool images by their name in the run folder: a resume from another directory (or of a
            # moved run folder) sends the same images under other paths, and must find its turns.
            digest = sent.digest({p.path: self._stored(p.path) for m in sent.messages for p in m.images if p.path})
            began = time.monotonic()
            known = journal.get(digest)
            if known is not None:
                reply = Reply(known, attempts=0, cached=True)
            else:
                reply = await call(sent, answer=False)
                if not reply.cached:
                    self.journal.write(key, protocol, digest, reply.completion)
            branch.count(reply)
            completion = reply.completion
            # A backend that declines by design (the visual expert) has answered: nothing to call.
            calls = [] if final or completion.abstained else self._calls(protocol, completion)
            parsed: Parsed | None = None
            if calls is None:
                # Not the protocol's JSON, but a plain answer the parser can read is taken as the answer.
                parsed = self.parse(prompt, completion)[0]
                calls = [] if parsed.letter else None
            branch.turns.append(
                {
                    "turn": turn,
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "latency_s": round(time.monotonic() - began, 4),
                    "cost_usd": reply.cost_usd,
                    "cached": reply.cached,
                    # latency_s above is this run's lookup: the model's seconds are those of when it was asked
                    **({"asked_latency_s": completion.latency_s} if reply.cached else {}),
                    "reply": completion.text,
                    "calls": [c.name for c in calls or ()],
                }
            )
            if calls is None:  # a text-protocol reply that is neither a call nor an answer
                branch.messages += [
                    Message(role="assistant", parts=(TextPart(text=completion.text),)),
                    Message(role="user", parts=(TextPart(text=self._invalid(completion.text)),)),
                ]
                continue
            if not calls:
                branch.final = completion
                branch.answer_text = self._answer_text(protocol, completion)
                # A plain reply read above is its own answer text (it is not the protocol's JSON).
                branch.parsed = parsed or self.parse(prompt, replace(completion, text=branch.answer_text))[0]
                branch.messages.append(Message(role="assistant", parts=(TextPart(text=completion.text),)))
                return branch
            branch.messages += await self._run_calls(protocol, item, turn, completion, calls, branch, blind=blind)
        msg = "the last turn always answers"
        raise AssertionError(msg)  # pragma: no cover

    def _stored(self, path: str) -> str:
        """An image's path for the record and the journal: a tool image relative to the run folder
        (``tools/<name>.png``, so the record is read from any directory, the folder moved or not);
        any other image (the benchmark's) as it was sent."""
        try:
            return Path(path).resolve().relative_to(self.run_dir).as_posix()
        except ValueError:
            return path

    def _calls(self, protocol: Protocol, completion: Completion) -> list[ToolCall] | None:
        """The tool calls of a reply: [] for an answer, None for a text-protocol reply that is
        neither a call nor an answer in the protocol's JSON."""
        if protocol == "native":
            return list(completion.tool_calls)
        turn = parse_text_turn(completion.text)
        if turn.kind == "tool":
            return [ToolCall(id="text", name=turn.tool, arguments=json.dumps(turn.args))]
        if turn.kind == "answer":
            return []
        return None

    def _invalid(self, text: str) -> str:
        return TEXT_INVALID.format(problem=parse_text_turn(text).problem)

    def _answer_text(self, protocol: Protocol, completion: Completion) -> str:
        if protocol == "text":
            turn = parse_text_turn(completion.text)
            if turn.kind == "answer":
                return turn.answer
        return completion.text

    async def _run_calls(
        self,
        protocol: Protocol,
        item: Any,
        turn: int,
        completion: Completion,
        calls: list[ToolCall],
        branch: Branch,
        *,
        blind: bool,
    ) -> list[Message]:
        """Run a turn's calls (in a worker thread each), note them, and return the messages to send back.

        In a blind run (the question carries no image) the tools' images stay out too: their text
        says so, and a text-only server is never sent one."""
        if protocol == "native":
            asked = Message(role="assistant", parts=_text_parts(completion.text), tool_calls=tuple(calls))
        else:
            asked = Message(role="assistant", parts=(TextPart(text=completion.text),))
        replies = []
        for index, tool_call in enumerate(calls):
            began = time.monotonic()
            result = await asyncio.to_thread(self.toolbox.call, item, tool_call.name, tool_call.arguments)
            branch.calls.append(
                {
                    "turn": turn,
                    "name": tool_call.name,
                    "arguments": _arguments(tool_call.arguments),
                    "summary": result.summary,
                    "error": result.error,
                    "latency_s": round(time.monotonic() - began, 4),
                    "images": [self._stored(p.path) for p in result.images if p.path],
                    **({"data": result.data} if result.data else {}),
                }
            )
            call_id = tool_call.id if protocol == "native" else f"text_{turn}_{index}"
            if blind and result.images:
                replies.append(ToolReply(call_id, tool_call.name, f"{result.text} {BLIND_NOTE}"))
            else:
                replies.append(ToolReply(call_id, tool_call.name, result.text, result.images))
        return [asked, *result_messages(protocol, replies)]

    def _record(
        self, prompt: Prompt, branch: Branch | None, error: BaseException | None, direct_record: Record, wall_s: float
    ) -> Record:
        question = prompt.questions[0]
        extra = self._shared_extra(direct_record)
        usage = _usage(direct_record, branch)
        if branch is None or branch.final is None or branch.parsed is None:
            assert error is not None
            return _failed(prompt, error, extra, usage, wall_s)
        parsed = branch.parsed
        completion = branch.final
        tools_scores = {k: v for k, v in (completion.letter_logprobs or {}).items() if k in question.options}
        extra["tools"] = self._tools_extra(branch, parsed.letter, tools_scores)
        # The tools loop ends a conversation the model declines: a letter read anyway is its answer.
        status = reply_status(parsed, refusal=completion.refusal, declined=completion.abstained)
        answer, method, scores = parsed.letter, parsed.method, tools_scores
        if self.loop.blend is not None:
            tools_probabilities = option_probabilities(tools_scores, question.options, parsed.letter)
            mixed, extra["blend"] = self._blended(tools_probabilities, parsed.letter, direct_record, question.options)
            if mixed:
                answer = extra["blend"]["answer"]
                scores = {k: math.log(v) if v > 0 else -math.inf for k, v in mixed.items()}
                if not tools_probabilities:  # the direct answer stands in for a branch that gave none
                    extra["blend"]["fallback"] = f"the tools branch gave no answer ({status.value})"
                status, method = Status.ANSWERED, ParseMethod.LIKELIHOOD
            extra["blend"]["answer"] = answer
        return question_record(
            question,
            status=status,
            answer=answer,
            parse_method=method.value if method else None,
            raw_reply=completion.text,
            prompt_hash=prompt.digest(),
            latency_s=wall_s,
            attempts=branch.attempts,
            # From the cache only when nothing was sent: the direct request and every turn.
            cached=branch.cached and direct_record.cached,
            asked_latency_s=_asked_latency(branch, direct_record) if branch.cached and direct_record.cached else None,
            scores={k: v for k, v in scores.items() if math.isfinite(v)},
            extra=extra,
            **usage,
        )

    def _fallback(
        self, prompt: Prompt, tried: Branch | None, error: BaseException | None, direct_record: Record, wall_s: float
    ) -> Record:
        """A conversation that failed outright under ``--blend``: the blend of a branch that knows
        nothing is the other's, so the direct answer stands, recorded as a fallback (``extra.blend.fallback``
        says why, ``extra.tools`` holds the turns and calls made before the failure). Where the
        direct branch has no answer either, the question fails as it does without ``--blend``."""
        assert error is not None
        question = prompt.questions[0]
        extra = self._shared_extra(direct_record)
        direct_scores = option_probabilities(direct_record.scores, question.options, direct_record.answer)
        if not direct_scores:
            return _failed(prompt, error, extra, _usage(direct_record, None), wall_s)
        branch = tried or Branch(self.protocol, [])
        error_class = error_class_of(error)
        if error_class not in self._fallbacks_told:
            self._fallbacks_told.add(error_class)
            # The class only: the message (which a server may fill with what it was sent) is in the
            # record, where the ledger scrubs it of credentials.
            logger.warning(
                "the tools conversation about %s failed (%s); --blend takes the direct answer, as for each "
                "such question (the record's extra.tools.error_message says why; tool-use: 'fell back to direct')",
                prompt.image,
                error_class,
            )
        extra["tools"] = {
            **self._tools_extra(branch, None, {}),
            "error_class": error_class,
            "error_message": str(error),
        }
        mixed, extra["blend"] = self._blended({}, None, direct_record, question.options)
        extra["blend"]["fallback"] = f"the tools conversation failed ({error_class})"
        return question_record(
            question,
            status=Status.ANSWERED,
            answer=extra["blend"]["answer"],
            parse_method=ParseMethod.LIKELIHOOD.value,
            raw_reply=direct_record.raw_reply,
            prompt_hash=prompt.digest(),
            latency_s=wall_s,
            # The turns sent before the failure, and the failed request's own attempts.
            attempts=branch.attempts + getattr(error, "attempts", 1),
            cached=False,
            scores={k: math.log(v) for k, v in mixed.items() if v > 0},
            extra=extra,
            **_usage(direct_record, branch),
        )

    def _blended(
        self, tools: dict[str, float], tools_letter: str | None, direct_record: Record, options: dict[str, str]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """The blend's option probabilities and its part of the record (``extra.blend``)."""
        assert self.loop.blend is not None
        direct = option_probabilities(direct_record.scores, options, direct_record.answer)
        mixed, source = _blend(tools, direct, self.loop.blend)
        answer = None
        if mixed:
            favoured = direct_record.answer if source == "direct" else tools_letter
            answer = max(mixed, key=lambda k: (mixed[k], k == favoured))
        return mixed, {"weight": self.loop.blend, "answer": answer, "probabilities": mixed, "from": source}

    def _shared_extra(self, direct_record: Record) -> dict[str, Any]:
        """The record's ``extra`` that every outcome has: the direct branch and the tools settings."""
        return {
            "direct": {
                "answer": direct_record.answer,
                "status": direct_record.status.value,
                "raw_reply": direct_record.raw_reply,
                "scores": direct_record.scores,
                "prompt_tokens": direct_record.prompt_tokens,
                "completion_tokens": direct_record.completion_tokens,
                "latency_s": direct_record.latency_s,
                **({"cached": True, "asked_latency_s": direct_record.asked_latency_s} if direct_record.cached else {}),
                "cost_usd": direct_record.cost_usd,
                **({"error_class": direct_record.error_class} if direct_record.error_class else {}),
            },
            "tool_settings": {
                **self.toolbox.describe(),
                "max_turns": self.loop.max_turns,
                "blend": self.loop.blend,
            },
        }

    def _tools_extra(self, branch: Branch, answer: str | None, scores: dict[str, float]) -> dict[str, Any]:
        """The tools branch in the record (``extra.tools``)."""
        return {
            "protocol": branch.protocol,
            "answer": answer,
            "scores": scores,
            "forced_final": branch.forced,
            "turns": branch.turns,
            "calls": branch.calls,
            "conversation": [_message_json(m, self._stored) for m in branch.messages],
        }


def _asked_latency(branch: Branch, direct_record: Record) -> float | None:
    """A question answered from the cache alone: the seconds it took the model when it was asked, as the
    slower of its branches (they run side by side); the tools branch's turns then, its tool calls now. None
    where a reply's cache entry kept no time."""
    turns = [t.get("asked_latency_s") for t in branch.turns]
    if direct_record.asked_latency_s is None or any(t is None for t in turns):
        return None
    calls = float(sum(c.get("latency_s") or 0.0 for c in branch.calls))
    tools = float(sum(t for t in turns if t is not None)) + calls
    return round(max(direct_record.asked_latency_s, tools), 4)


def _failed(
    prompt: Prompt, error: BaseException, extra: dict[str, Any], usage: dict[str, Any], wall_s: float
) -> Record:
    """The failed question's record, with both branches' usage and the direct branch kept."""
    failed = Answer(prompt=prompt, started=time.monotonic() - wall_s, error=error, digest=prompt.digest())
    record = failed.records()[0]
    return record.model_copy(update={"extra": {**record.extra, **extra}, **usage, "latency_s": wall_s})


def _usage(direct_record: Record, branch: Branch | None) -> dict[str, Any]:
    """Both branches' tokens and cost together."""
    return {
        "prompt_tokens": _add(direct_record.prompt_tokens, branch.prompt_tokens if branch else None),
        "completion_tokens": _add(direct_record.completion_tokens, branch.completion_tokens if branch else None),
        "cost_usd": _add(direct_record.cost_usd, branch.cost_usd if branch else None),
    }


def _text_parts(text: str) -> tuple[TextPart, ...]:
    return (TextPart(text=text),) if text else ()


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _add(total: Any, value: Any) -> Any:
    if value is None:
        return total
    return value if total is None else total + value


def _blend(tools: dict[str, float], direct: dict[str, float], weight: float) -> tuple[dict[str, float], str | None]:
    """weight × tools + (1 - weight) × direct, per option, and which branch decided: ``both``, or
    ``tools`` / ``direct`` where the other knows nothing (no letter, no scores: its share of the
    average would be a guess) or has no weight; empty, None, where neither branch answered."""
    if not tools and not direct:
        return {}, None
    if not tools or (direct and weight == 0):
        return dict(direct), "direct"
    if not direct or weight == 1:
        return dict(tools), "tools"
    return {k: weight * tools.get(k, 0.0) + (1 - weight) * direct.get(k, 0.0) for k in tools}, "both"


def _message_json(message: Message, stored: Callable[[str], str]) -> dict[str, Any]:
    """A conversation turn for the record: role, text, image files (tool images relative to the run
    folder), tool calls."""
    out: dict[str, Any] = {"role": message.role, "text": message.text}
    images = [stored(p.path) for p in message.parts if isinstance(p, ImagePart) and p.path]
    if images:
        out["images"] = images
    if message.tool_calls:
        out["tool_calls"] = [asdict(c) for c in message.tool_calls]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out
