"""Graded answers, the scorer's input, and the official answers-json format.

The official scripts write a json list of records
``{"image", "question", "question_type", "correct_answer", "gpt_answer"}``; ``gpt_answer`` holds
the parsed letter, or whatever the script kept when parsing failed.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmad._io import atomic_writer
from mmad.data.schema import LETTERS, SUBTASKS, Subtask, dataset_of, is_normal_key
from mmad.errors import AnswersFormatError
from mmad.records.record import Record, Status, latest_records
from mmad.score.auroc import detection_score

VALID_LETTERS = frozenset(LETTERS)


@functools.lru_cache(maxsize=65536)
def _image_fields(image: str) -> tuple[str, str, str, str, bool]:
    """An image key's derived fields, worked out once per image (its questions share them), with the
    strings interned so the answers of a whole run (39,672) hold each of them once."""
    parts = image.split("/")
    category = sys.intern(parts[1]) if len(parts) > 1 else ""
    defect_type = sys.intern(parts[-2]) if len(parts) > 1 else ""
    return sys.intern(image), sys.intern(dataset_of(image)), category, defect_type, is_normal_key(image)


@dataclass(slots=True)
class GradedAnswer:
    """One question's gold letter and the model's answer, as the scorer sees it.

    ``answer`` is the parsed letter, or None when there is none; ``failure`` then says why
    (``unparsed``, ``error``, ``refused``, ``abstained``, ...). ``official_answer`` is the string the
    official record would carry in ``gpt_answer``. The fields derived from the image key are
    computed once, when the answer is made: the scorer reads them for every table and breakdown.
    Treat an answer as read-only.
    """

    image: str
    question_type: str
    correct_answer: str
    answer: str | None
    failure: str | None = None
    question_text: str = ""
    official_answer: str | None = None
    dropped_image: bool = False
    score: float | None = None
    """Anomaly Discrimination only: how defective the model thinks the image is, where it says (see score_kind)."""
    score_kind: str = ""
    """``likelihood`` (a letter log-odds, log p(Yes) - log p(No)) or ``model`` (a score of its own: the expert's)."""
    dataset: str = field(init=False, default="")
    category: str = field(init=False, default="")
    defect_type: str = field(init=False, default="")
    is_normal: bool = field(init=False, default=False)
    is_correct: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.image, self.dataset, self.category, self.defect_type, self.is_normal = _image_fields(self.image)
        self.question_type = sys.intern(self.question_type)
        self.is_correct = self.answer is not None and self.answer == self.correct_answer

    @property
    def gpt_answer(self) -> str:
        """What the official answers json would hold."""
        if self.official_answer is not None:
            return self.official_answer
        return self.answer or ""


NOT_ANSWERS = frozenset({Status.ERROR.value, Status.REFUSED.value, Status.ABSTAINED.value})
"""Outcomes that are not an answer: the request failed, or the model refused or declined by design.
A reply without a letter (``unparsed``) is an answer, a wrong one, as in MMAD's protocol."""


def is_answer(answer: GradedAnswer) -> bool:
    """Whether the model answered the question (a letter, right or wrong, or a reply without one)."""
    return answer.failure not in NOT_ANSWERS


def covered(cells: Mapping[Subtask, float | None]) -> list[Subtask]:
    """The subtasks an average over these cells covers (those with a figure), in the paper's order."""
    return [s for s in SUBTASKS if cells.get(s) is not None]


def covers_text(subtasks: Iterable[Subtask | str]) -> str:
    """Which subtasks an average covers, in words: 'all 7 subtasks' or 'AD, DL (2 of 7 subtasks)'."""
    chosen = [s if isinstance(s, Subtask) else Subtask(s) for s in subtasks]
    if len(chosen) == len(SUBTASKS):
        return f"all {len(SUBTASKS)} subtasks"
    if not chosen:
        return "no subtask"
    return f"{', '.join(s.short for s in chosen)} ({len(chosen)} of {len(SUBTASKS)} subtasks)"


def any_reply(answers: Iterable[GradedAnswer]) -> bool:
    """Whether some request got a reply: without one, a run's figures would be zeros that mean nothing."""
    return any(a.failure != Status.ERROR.value for a in answers)


def graded_from_record(record: Record) -> GradedAnswer:
    """The scorer's view of a run record."""
    answered = record.status is Status.ANSWERED
    return GradedAnswer(
        image=record.image,
        question_type=record.question_type,
        correct_answer=record.correct_answer,
        answer=record.answer if answered else None,
        failure=None if answered else record.status.value,
        question_text=record.question_text,
        official_answer=record.extra.get("official_answer"),
        # Gemini/gemini_query.py drops an image whose second reply has the wrong number of letters
        dropped_image=record.parse_method == "upstream-dropped-image",
        score=detection_score(record) if record.question_type == "Anomaly Detection" else None,
        score_kind="model" if "pred_score" in record.scores else "likelihood",
    )


def graded_from_records(records: Iterable[Record]) -> list[GradedAnswer]:
    """The graded answers of the latest records, one per question: the unrotated posing when a run
    asked rotations (circular evaluation is scored separately)."""
    return [graded_from_record(r) for r in latest_records(records).values() if r.plain]


def without_dropped_images(answers: Iterable[GradedAnswer]) -> list[GradedAnswer]:
    """The answers an official script would have written: none of an image it dropped
    (Gemini/gemini_query.py, when its second reply has the wrong number of letters)."""
    kept = list(answers)
    dropped = {a.image for a in kept if a.dropped_image}
    return [a for a in kept if a.image not in dropped] if dropped else kept


def _official_question(answer: GradedAnswer) -> dict[str, Any]:
    return {"type": "text", "text": answer.question_text}


def official_records(answers: Iterable[GradedAnswer]) -> Iterator[dict[str, Any]]:
    """The official answers-json records, one at a time. A question the model declined by design (the expert's
    subtasks) is left out: the file's ``gpt_answer`` could only call it a wrong letter."""
    for a in answers:
        if a.failure == "abstained":
            continue
        yield {
            "image": a.image,
            "question": _official_question(a),
            "question_type": a.question_type,
            "correct_answer": a.correct_answer,
            "gpt_answer": a.gpt_answer,
        }


def indented_json(value: Any, indent: str = "") -> str:
    """``json.dumps(value, indent=4, ensure_ascii=False)``, each line after the first prefixed by ``indent``.

    The same text, from json's C string encoder: with ``indent`` set, json.dumps takes its pure-Python
    encoder for the whole value, which took 0.4 s for a 2,944-answer file (13 s for MMAD's 39,672) at the
    end of every run. Anything but str-keyed objects, lists and scalars goes to json.dumps itself.
    """
    if type(value) is str:
        return _encode_string(value)
    if value is None or type(value) is bool:
        return "null" if value is None else ("true" if value else "false")
    inner = indent + "    "
    if type(value) is dict and all(type(key) is str for key in value):
        if not value:
            return "{}"
        members = [f"{inner}{_encode_string(k)}: {indented_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(members) + "\n" + indent + "}"
    if type(value) in (list, tuple):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + indented_json(v, inner) for v in value) + "\n" + indent + "]"
    # A json string holds no raw newline, so indenting every line nests the value one level.
    return json.dumps(value, indent=4, ensure_ascii=False).replace("\n", "\n" + indent)


_encode_string = json.encoder.encode_basestring  # json.dumps's own, with ensure_ascii=False


def write_official_answers(answers: Iterable[GradedAnswer], path: str | os.PathLike[str]) -> None:
    """Write the official answers json (as ``json.dumps(records, indent=4, ensure_ascii=False)``
    would), atomically and one record at a time: the whole text of a full run is ~30 MB."""
    with atomic_writer(Path(path)) as handle:
        separator = b"[\n    "
        for record in official_records(answers):
            handle.write(separator + indented_json(record, "    ").encode("utf-8"))
            separator = b",\n    "
        handle.write(b"[]" if separator == b"[\n    " else b"\n]")


def from_official_record(record: Any, index: int, source: Path | str) -> GradedAnswer:
    """Read one official answer record."""
    if not isinstance(record, dict):
        msg = f"{source}: record {index} is a {type(record).__name__}, not an object; each answer is an object"
        raise AnswersFormatError(msg)
    try:
        image, question_type, correct, raw = (
            record["image"],
            record["question_type"],
            record["correct_answer"],
            record["gpt_answer"],
        )
    except KeyError:
        missing = [f for f in ("image", "question_type", "correct_answer", "gpt_answer") if f not in record]
        msg = (
            f"{source}: record {index} lacks {', '.join(missing)}; an official answer record has "
            "image, question, question_type, correct_answer and gpt_answer"
        )
        raise AnswersFormatError(msg) from None
    question = record.get("question")
    text = question.get("text", "") if isinstance(question, dict) else str(question or "")
    raw_text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
    letter = raw_text if raw_text in VALID_LETTERS else None
    return GradedAnswer(
        image if isinstance(image, str) else str(image),
        question_type if isinstance(question_type, str) else str(question_type),
        correct if isinstance(correct, str) else str(correct),
        letter,
        None if letter else "unparsed",
        text,
        raw_text,
    )


def read_official_answers(path: str | os.PathLike[str]) -> list[GradedAnswer]:
    """Read an official answers json (a list of records)."""
    source = Path(path)
    try:
        raw = json.loads(source.read_bytes())
    except OSError as exc:
        msg = f"cannot read {source}: {exc.strerror}"
        raise AnswersFormatError(msg) from exc
    except json.JSONDecodeError as exc:
        msg = f"{source} is not valid json (line {exc.lineno}: {exc.msg})"
        raise AnswersFormatError(msg) from exc
    if not isinstance(raw, list):
        msg = f"{source}: the top level is a {type(raw).__name__}; an answers file is a json list of records"
        raise AnswersFormatError(msg)
    return [from_official_record(record, index, source) for index, record in enumerate(raw)]
