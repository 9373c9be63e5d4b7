"""What a chat request received over HTTP asks, read back out of its text: its questions and its query image.

A backend reads the structured questions of a `Request`, never the prompt's text. A request from
`mmad eval` carries them; one received over HTTP is only messages, so the server reads them here,
once, for whichever backend it serves. An MMAD prompt names its questions "Question:" (or
"Question 2:") followed by lettered options ("A. Yes"); its images come templates first, the
query last.
"""

from __future__ import annotations

import hashlib
import re

from mmad.protocol.messages import ImagePart, Message, PosedQuestion

_QUESTION_HEAD = re.compile(r"^Question(?:\s*\d+)?:", re.MULTILINE)
_OPTION_LINE = re.compile(r"^([A-E])\. (.*)$", re.MULTILINE)

# The two question types a backend may tell from their wording (the visual expert answers them);
# the others' wording varies too much to tell, and stays unknown ("").
_ANOMALY_DETECTION = ("is there any defect", "any anomal")
_DEFECT_LOCALIZATION = ("where is the defect", "location")


def question_blocks(text: str) -> list[tuple[str, dict[str, str]]]:
    """Each question of a prompt's text as (stem, options); a text without "Question:" heads is
    one question when it has option lines, none otherwise."""
    heads = list(_QUESTION_HEAD.finditer(text))
    if heads:
        ends = [m.start() for m in heads[1:]] + [len(text)]
        blocks = [text[head.end() : end] for head, end in zip(heads, ends, strict=True)]
    else:
        blocks = [text] if _OPTION_LINE.search(text) else []
    out = []
    for block in blocks:
        first = _OPTION_LINE.search(block)
        stem = (block[: first.start()] if first else block).strip()
        out.append((stem, dict(_OPTION_LINE.findall(block))))
    return out


def question_type_of(stem: str) -> str:
    """The raw MMAD type a question's wording shows ("Anomaly Detection", "Defect Localization"), or ""."""
    lowered = stem.lower()
    if any(phrase in lowered for phrase in _ANOMALY_DETECTION):
        return "Anomaly Detection"
    if any(phrase in lowered for phrase in _DEFECT_LOCALIZATION):
        return "Defect Localization"
    return ""


def with_roles(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """The messages with their first images marked as MMAD shows them: the last one the query, the
    ones before it templates (an image part received over HTTP says no role)."""
    out = list(messages)
    for index, message in enumerate(out):
        if message.role != "user" or not message.images:
            continue
        last = message.images[-1]
        parts = tuple(
            p.model_copy(update={"role": "template"}) if isinstance(p, ImagePart) and p is not last else p
            for p in message.parts
        )
        out[index] = message.model_copy(update={"parts": parts})
        break
    return tuple(out)


def asked_questions(messages: tuple[Message, ...]) -> tuple[PosedQuestion, ...]:
    """The questions of the last user turn, ids drawn from the turn's text and images.

    The ids are stable (the same request gets the same ids, so a seeded baseline answers it the
    same way each time). The gold letter is unknown over HTTP: ``correct_answer`` is empty.
    """
    last = next((m for m in reversed(messages) if m.role == "user"), None)
    if last is None:
        return ()
    images = "".join(p.data_url or p.path or "" for p in last.images)
    seed = hashlib.sha256((last.text + images).encode()).hexdigest()
    query = next((m.images[-1] for m in messages if m.role == "user" and m.images), None)
    return tuple(
        PosedQuestion(
            question_id=f"{seed}#{i}",
            image=(query.path or "") if query else "",
            question_type=question_type_of(stem),
            text=stem,
            options=options,
            correct_answer="",
            number=i + 1,
        )
        for i, (stem, options) in enumerate(question_blocks(last.text))
    )
