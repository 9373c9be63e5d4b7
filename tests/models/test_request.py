"""A request carries its questions structured, and its images by role."""

from __future__ import annotations

from mmad.models.base import Request
from mmad.protocol.messages import ImagePart, Message, PosedQuestion, TextPart


def _question(qid: str, letters: str) -> PosedQuestion:
    return PosedQuestion(
        question_id=qid,
        image="DS-MVTec/bottle/image/broken_large/000.png",
        question_type="Anomaly Detection",
        text="Is there any defect in the object?",
        options={letter: f"option {letter}" for letter in letters},
        correct_answer=letters[0],
        number=1,
    )


def test_letters_and_ids_come_from_the_questions() -> None:
    request = Request(messages=(), questions=(_question("q#0", "AB"), _question("q#1", "ABCD")))
    assert request.choices == (("A", "B"), ("A", "B", "C", "D"))
    assert request.question_ids == ("q#0", "q#1")


def test_images_are_read_by_role_from_the_first_turn_that_shows_them() -> None:
    template = ImagePart(path="t.png", role="template")
    query = ImagePart(path="q.png", role="query")
    rendered = ImagePart(path="map.png", role="expert")
    messages = (
        Message(role="system", parts=(TextPart(text="inspect"),)),
        Message(role="user", parts=(template, rendered, query, TextPart(text="look"))),
        Message(role="assistant", parts=(TextPart(text="thoughts"),)),
        Message(role="user", parts=(TextPart(text="now answer"),)),
    )
    request = Request(messages=messages)
    assert request.query_images == (query,)
    assert request.template_images == (template,)
    assert request.expert_images == (rendered,)
    assert Request(messages=()).query_images == ()


def test_a_backend_never_sees_the_gold_letter() -> None:
    posed = _question("q#0", "ABCD")
    assert posed.correct_answer == "A"
    request = Request(messages=(), questions=(posed,))
    assert [q.correct_answer for q in request.questions] == [""]
    assert request.questions[0].options == posed.options and request.choices == (("A", "B", "C", "D"),)
