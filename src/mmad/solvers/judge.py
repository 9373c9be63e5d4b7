"""The judge fallback (``--judge MODEL``): a second model reads the replies the parser could not.

A wrapper: the solver it wraps answers; each question whose reply holds text but no letter the
parser could find (and is not a refusal) is put to the judge with the options and the reply, and
the judge's letter (parse method ``judge``) replaces the empty one. A judge that names no option
leaves the parse as it was, as does one whose content filter refuses the call (in its reply or
with HTTP 400: its answer, which a resume would only get again). A judge that gives no verdict
(its retries spent, an error no retry mends) fails the prompt's questions, class ``judge``
(``judge_unreachable``, which stops the run at once, where the judge never answered or refused the
run's key); a judge call the budget (--max-cost) refused fails them too (class ``budget``). Either
way --resume asks them again (the model's reply from the response cache) and judges them: a run is
complete only where every reply the parser could not read was put to the judge and answered, so
its score never depends on which judge calls got through.

The judge is asked through its own model caller (``setup.judge``, built with the run's:
`mmad.run.caller.JudgeClient`): the run's retries, a response cache, its usage and the budget.
"""

from __future__ import annotations

import logging

from mmad.errors import BudgetReachedError, ConfigError, ModelCallError, PermanentError
from mmad.models.base import Completion
from mmad.protocol.messages import Message, PosedQuestion, Prompt, TextPart
from mmad.protocol.parse import Parsed, ParseMethod, parse_answer
from mmad.solvers.base import Answer, ModelCaller, Solver, SolverSetup, fail, register_solver

JUDGE_PROMPT = (
    "A model answered a multiple-choice question. Which option did its reply choose?\n\n"
    "Question: {question}\nOptions:\n{options}\n\nReply:\n{reply}\n\n"
    "Answer with the option's letter only, or Z if the reply chooses none of them."
)
JUDGE_MAX_TOKENS = 8

logger = logging.getLogger(__name__)


@register_solver("judge")
class JudgeFallback(Solver):
    """The wrapped solver's answer, with the judge's letter where the parser found none."""

    def __init__(self, setup: SolverSetup) -> None:
        super().__init__(setup)
        if setup.inner is None or setup.judge is None:
            msg = "the judge solver wraps another and needs a judge model (--judge MODEL)"
            raise ConfigError(msg)
        self.judge = setup.judge
        self._failures = 0

    async def answer(self, prompt: Prompt, call: ModelCaller) -> Answer:
        """The inner solver's answer, its unparsed replies judged."""
        answer = await super().answer(prompt, call)
        if answer.reply is None or answer.reply.completion.refusal:
            return answer
        reply = answer.reply.completion.text
        judged = []
        for question, result in zip(prompt.questions, answer.parsed, strict=True):
            if not needs_verdict(answer.reply.completion, result):
                judged.append(result)
                continue
            try:
                verdict = await self.judge(judge_prompt(question, reply), answer=False)
            except ModelCallError as exc:
                if exc.error_class == REFUSED:
                    # The judge's answer, as a reply it refused would be: the parse stands. Failing the questions
                    # would have --resume ask again what the judge's filter turns down every time.
                    judged.append(result)
                    continue
                # A budget stop is not a verdict the judge failed to give: the run stopped before asking. Failed
                # records (class ``budget``) are asked again by --resume (the model's reply from the cache), then
                # judged.
                failure = exc if isinstance(exc, BudgetReachedError) else self._failed(question, exc)
                unjudged = Answer(prompt=prompt, started=answer.started, digest=answer.digest, extra=answer.extra)
                return fail(unjudged, failure)
            letter = parse_answer(verdict.completion.text, question.options).letter
            judged.append(Parsed(letter, ParseMethod.JUDGE) if letter else result)
        answer.parsed = judged
        return answer

    def _failed(self, question: PosedQuestion, exc: ModelCallError) -> PermanentError:
        """The failure a judge call that gave no verdict makes of its prompt's questions; said once at
        warning level, not once per question of a judge that is down."""
        self._failures += 1
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        # The transport names the model's address setting; the judge has its own (the log line's too).
        text = str(exc).replace("--base-url", "--judge-base-url")
        logger.log(level, "the judge gave no verdict on %s (%s: %s)", question.question_id, exc.error_class, text)
        never_answered = exc.error_class == "connection_refused" and not getattr(self.judge, "replied", True)
        unreachable = never_answered or exc.error_class in JUDGE_FATAL_CLASSES
        error_class = "judge_unreachable" if unreachable else "judge"
        return PermanentError(f"the judge gave no verdict ({exc.error_class}): {text}", error_class=error_class)


REFUSED = "refused"
"""A judge call its content filter turned down (HTTP 400): no verdict, but no failure either."""
JUDGE_FATAL_CLASSES = frozenset({"auth", "not_found", "dns", "tls"})
"""A judge's failures that every later judge call would meet too (and a refused connection, where the
judge has never answered: see `JudgeFallback._failed`)."""


def needs_verdict(completion: Completion, parsed: Parsed) -> bool:
    """Whether the judge is asked about a question: its reply holds text, no refusal, and no letter the
    parser found."""
    return parsed.letter is None and not completion.refusal and bool(completion.text.strip())


def judge_prompt(question: PosedQuestion, reply: str) -> Prompt:
    """What the judge is asked about one question's reply (text only)."""
    options = "\n".join(f"{k}. {v}" for k, v in question.options.items())
    text = JUDGE_PROMPT.format(question=question.text, options=options, reply=reply)
    # The question goes beside the text (its gold blanked by the request): a backend reads the structured
    # choices, never the prompt.
    return Prompt(
        image=question.image,
        messages=(Message(role="user", parts=(TextPart(text=text),)),),
        questions=(question.model_copy(update={"correct_answer": ""}),),
        max_tokens=JUDGE_MAX_TOKENS,
    )
