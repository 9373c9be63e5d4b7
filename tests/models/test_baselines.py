"""The baselines answer the structured questions of a request: the prompt's wording changes nothing."""

from __future__ import annotations

import asyncio

from mmad.models.base import Request
from mmad.models.baselines import FixedModel, RandomModel
from mmad.protocol.messages import Message, PosedQuestion, TextPart


def _question(qid: str, letters: str) -> PosedQuestion:
    return PosedQuestion(
        question_id=qid,
        image="VisA/pcb1/test/good/0001.JPG",
        question_type="Defect Classification",
        text="What is the type of the defect?",
        options={letter: f"option {letter}" for letter in letters},
        correct_answer="A",
        number=1,
    )


def _ask(model: RandomModel | FixedModel, text: str, *questions: PosedQuestion) -> str:
    message = Message(role="user", parts=(TextPart(text=text),))
    return asyncio.run(model.generate(Request(messages=(message,), questions=questions))).text


def test_the_letters_come_from_the_structured_questions_not_the_text() -> None:
    questions = (_question("q#0", "ABC"), _question("q#1", "ABCDE"))
    # The text names no option at all (a rephrased or translated prompt): the answers are the same.
    random_model = RandomModel(seed=3)
    plain = _ask(random_model, "Question 1: x?\nA. a\nB. b\nQuestion 2: y?\nA. a\nB. b\n", *questions)
    assert plain == _ask(random_model, "Zwei Fragen zum Bild.", *questions)
    assert len(plain.splitlines()) == 2
    # fixed:E answers E where a question has it, else its first option
    assert _ask(FixedModel("E"), "", *questions) == "1. Answer: A.\n2. Answer: E."
