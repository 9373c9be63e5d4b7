"""The run record: one finished request for one question, one json object per line.

This module sits at the bottom of mmad: the run writes records, the scorer and the report read them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from mmad.errors import AnswersFormatError

PLAIN_VARIANTS = frozenset({"", "rot0"})
"""Variant names of a question posed as written: "" in a plain run, "rot0" under circular evaluation."""


class Status(StrEnum):
    """What became of a question.

    Only ``answered`` carries a letter. The others are kinds of "couldn't answer", never "wrong":
    the scorer's policy decides how they count.
    """

    ANSWERED = "answered"
    UNPARSED = "unparsed"
    REFUSED = "refused"
    ERROR = "error"
    ABSTAINED = "abstained"


class Record(BaseModel):
    """One question's outcome in a run."""

    question_id: str
    image: str
    question_type: str
    question_text: str = ""
    options: dict[str, str] = Field(default_factory=dict, description="the options as they were posed")
    correct_answer: str = Field(description="the gold letter as posed (after any re-lettering)")
    variant: str = Field(default="", description="which posing of the question (circular rotations)")
    status: Status
    answer: str | None = None
    parse_method: str | None = None
    raw_reply: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    prompt_hash: str = ""
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    attempts: int = 1
    cached: bool = False
    asked_latency_s: float | None = Field(
        default=None,
        description="a reply from the response cache: the seconds its request took when it was asked "
        "(latency_s is this run's lookup); None where the cache kept none",
    )
    finished_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    scores: dict[str, float] = Field(default_factory=dict, description="option log-probabilities, expert scores")
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """What makes a record unique in a run: the question and the variant."""
        return (self.question_id, self.variant)

    @property
    def plain(self) -> bool:
        """Whether this is the unrotated posing (the one the MMAD table scores)."""
        return self.variant in PLAIN_VARIANTS

    @property
    def model_latency_s(self) -> float | None:
        """The seconds the model took to give this record's reply: this run's wait for it or, for a reply from
        the response cache, its request's when it was asked (None: not measured, never a lookup's time)."""
        return self.asked_latency_s if self.cached else self.latency_s

    @property
    def failed(self) -> bool:
        """Whether the request itself failed (worth retrying on resume)."""
        return self.status is Status.ERROR


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """Read a records.jsonl; a torn last line (a crash mid-write) is ignored, other bad lines raise."""
    source = Path(path)
    records: list[Record] = []
    try:
        lines = source.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        msg = f"cannot read {source}: {exc.strerror}"
        raise AnswersFormatError(msg) from exc
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(Record.model_validate_json(line))
        except ValidationError as exc:
            if number - 1 == last:
                break  # a line without its newline is a write the crash interrupted
            reason = exc.errors()[0]["msg"]
            msg = f"{source}, line {number}: not a valid record ({reason}); remove or fix that line"
            raise AnswersFormatError(msg) from exc
    return records


def latest_records(records: Iterable[Record]) -> dict[tuple[str, str], Record]:
    """The last record of each (question, variant): a retry's record supersedes the failure it retried."""
    latest: dict[tuple[str, str], Record] = {}
    for record in records:
        latest[record.key] = record
    return latest
