"""A request received over HTTP is only text: the server reads its questions and query image back, once,
so the backend it serves reads structured questions as it does in `mmad eval`."""

from __future__ import annotations

import asyncio

import openai

from mmad.models.base import Completion, Model, Request
from mmad.protocol.messages import ImagePart, Message, TextPart
from mmad.serve.asked import asked_questions, question_blocks, with_roles
from mmad.serve.server import ChatServer, serve_in_thread

PER_IMAGE = (
    "Question 1: Is there any defect in the object? \nA. Yes.\nB. No.\n"
    "Question 2: Where is the defect? \nA. Top left.\nB. Center.\nC. Bottom.\n"
    "Question 3: What is the type of the defect? \nA. Crack.\nB. Stain.\n"
)


def _letters(text: str) -> list[tuple[str, ...]]:
    return [tuple(options) for _, options in question_blocks(text)]


def test_each_question_block_gives_its_stem_options_and_type() -> None:
    assert _letters(PER_IMAGE) == [("A", "B"), ("A", "B", "C"), ("A", "B")]
    stem, options = question_blocks(PER_IMAGE)[1]
    assert stem == "Where is the defect?" and options == {"A": "Top left.", "B": "Center.", "C": "Bottom."}
    message = Message(role="user", parts=(TextPart(text=PER_IMAGE),))
    asked = asked_questions((message,))
    assert [q.question_type for q in asked] == ["Anomaly Detection", "Defect Localization", ""]
    assert [q.number for q in asked] == [1, 2, 3] and {q.correct_answer for q in asked} == {""}
    # stable: the same request gets the same ids (a seeded baseline answers it the same each time)
    assert [q.question_id for q in asked] == [q.question_id for q in asked_questions((message,))]
    assert len({q.question_id for q in asked}) == 3
    # without "Question:" heads a text with options is one question; a text without options asks none
    assert _letters("Is there any defect?\nA. Yes.\nB. No.\n") == [("A", "B")]
    assert _letters("Describe the image.") == []


def test_the_last_image_of_the_first_turn_is_the_query_and_the_ones_before_it_templates() -> None:
    first, second = ImagePart(data_url="data:image/png;base64,AA"), ImagePart(data_url="data:image/png;base64,AB")
    messages = with_roles((Message(role="user", parts=(first, second, TextPart(text=PER_IMAGE))),))
    request = Request(messages=messages, questions=asked_questions(messages))
    assert [p.data_url for p in request.template_images] == [first.data_url]
    assert [p.data_url for p in request.query_images] == [second.data_url]
    assert request.choices == (("A", "B"), ("A", "B", "C"), ("A", "B"))


def test_a_served_backend_gets_the_questions_read_from_the_text() -> None:
    seen: list[Request] = []

    class Recording(Model):
        async def generate(self, request: Request) -> Completion:
            seen.append(request)
            return Completion(text="Answer: A")

    async def ask(base_url: str) -> None:
        client = openai.AsyncOpenAI(api_key="none", base_url=base_url, max_retries=0)
        try:
            await client.chat.completions.create(model="x", messages=[{"role": "user", "content": PER_IMAGE}])
        finally:
            await client.close()

    with serve_in_thread(ChatServer(Recording(), any_model=True)) as server:
        asyncio.run(ask(server.base_url))
    (request,) = seen
    assert [q.question_type for q in request.questions] == ["Anomaly Detection", "Defect Localization", ""]
    assert request.choices == (("A", "B"), ("A", "B", "C"), ("A", "B"))
