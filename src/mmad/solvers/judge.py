"""The judge fallback (``--judge MODEL``): a second model reads the replies the parser could not.

A wrapper: the solver it wraps answers; each question whose reply holds text but no letter the
parser could find (and is not a refusal) is put to the judge with the options and the reply, and
the judge's letter (parse method ``judge``) replaces the empty one. A judge that fails or names
no option leaves the parse as it was.
"""

from __future__ import annotations

from mmad.errors import ConfigError, ModelCallError
from mmad.models.base import Request
from mmad.protocol.messages import Message, Prompt, TextPart
from mmad.protocol.parse import Parsed, ParseMethod, parse_answer
from mmad.solvers.base import Answer, ModelCaller, Solver, SolverSetup, register_solver

JUDGE_PROMPT = (
    "A model answered a multiple-choice question. Which option did its reply choose?\n\n"
    "Question: {question}\nOptions:\n{options}\n\nReply:\n{reply}\n\n"
    "Answer with the option's letter only, or Z if the reply chooses none of them."
)


@register_solver("judge")
class JudgeFallback(Solver):
    """The wrapped solver's answer, with the judge's letter where the parser found none."""

    def __init__(self, setup: SolverSetup) -> None:
        super().__init__(setup)
        if setup.inner is None or setup.judge is None:
            msg = "the judge solver wraps another and needs a judge model (--judge MODEL)"
            raise ConfigError(msg)
        self.judge = setup.judge

    async def answer(self, prompt: Prompt, call: ModelCaller) -> Answer:
        """The inner solver's answer, its unparsed replies judged."""
        answer = await super().answer(prompt, call)
        if answer.reply is None or answer.reply.completion.refusal:
            return answer
        reply = answer.reply.completion.text
        judged = []
        for question, result in zip(prompt.questions, answer.parsed, strict=True):
            if result.letter is not None or not reply.strip():
                judged.append(result)
                continue
            options = "\n".join(f"{k}. {v}" for k, v in question.options.items())
            text = JUDGE_PROMPT.format(question=question.text, options=options, reply=reply)
            # The letters go beside the text: a backend reads the structured choices, never the prompt.
            request = Request(
                messages=(Message(role="user", parts=(TextPart(text=text),)),),
                max_tokens=8,
                choices=(tuple(question.options),),
                question_ids=(question.question_id,),
            )
            try:
                verdict = await self.judge.generate(request)
            except ModelCallError:
                judged.append(result)
                continue
            letter = parse_answer(verdict.text, question.options).letter
            judged.append(Parsed(letter, ParseMethod.JUDGE) if letter else result)
        answer.parsed = judged
        return answer
