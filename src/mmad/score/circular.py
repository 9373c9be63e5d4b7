"""Circular evaluation (MMBench-style): every rotation of a question's options is asked, and the
question counts as right only if every rotation is. Beside plain accuracy (the unrotated
posing), it exposes a model that answers by letter rather than by content."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, SUBTASKS
from mmad.records.record import Record, Status


@dataclass
class CircularRow:
    """Plain and circular accuracy of one group."""

    group: str
    plain: float
    circular: float
    questions: int


@dataclass
class CircularReport:
    """Per-subtask rows, overall, and how often each letter was answered against how often it was right."""

    rows: list[CircularRow]
    answered_letters: dict[str, int]
    gold_letters: dict[str, int]


class CircularTally:
    """Circular evaluation counted record by record (the latest record of each posing wins)."""

    def __init__(self) -> None:
        # question id -> (subtask group, {variant: (right, plain)})
        self._questions: dict[str, tuple[str, dict[str, tuple[bool, bool]]]] = {}
        self._answered: dict[tuple[str, str], str | None] = {}
        self._gold: dict[tuple[str, str], str] = {}

    def add(self, record: Record) -> None:
        """Count one record (a later record of the same posing replaces an earlier one)."""
        subtask = RAW_TYPE_TO_SUBTASK.get(record.question_type)
        group = subtask.value if subtask else record.question_type
        right = record.status is Status.ANSWERED and record.answer == record.correct_answer
        entry = self._questions.setdefault(record.question_id, (group, {}))
        entry[1][record.variant] = (right, record.plain)
        answered = record.answer if record.status is Status.ANSWERED else None
        self._answered[record.key] = answered
        self._gold[record.key] = record.correct_answer

    def report(self) -> CircularReport:
        """Plain (rot0) and circular accuracy per subtask and overall."""
        tallies: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        for group, posings in self._questions.values():
            plain = next((right for right, is_plain in posings.values() if is_plain), False)
            outcome = (plain, all(right for right, _ in posings.values()))
            tallies[group].append(outcome)
            tallies["All"].append(outcome)
        answered = Counter(letter for letter in self._answered.values() if letter)
        gold = Counter(self._gold.values())
        order = [s.value for s in SUBTASKS if s.value in tallies] + ["All"]
        rows = [
            CircularRow(
                group,
                100.0 * sum(p for p, _ in tallies[group]) / len(tallies[group]),
                100.0 * sum(c for _, c in tallies[group]) / len(tallies[group]),
                len(tallies[group]),
            )
            for group in order
            if tallies.get(group)
        ]
        return CircularReport(rows, dict(sorted(answered.items())), dict(sorted(gold.items())))


def circular_report(records: Iterable[Record]) -> CircularReport:
    """Plain (rot0) and circular accuracy per subtask and overall."""
    tally = CircularTally()
    for record in records:
        tally.add(record)
    return tally.report()
