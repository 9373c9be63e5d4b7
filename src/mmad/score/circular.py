"""Circular evaluation (MMBench-style): every rotation of a question's options is asked, and the
question counts as right only if every rotation is. Beside plain accuracy (the unrotated
posing), it exposes a model that answers by letter rather than by content."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, SUBTASKS
from mmad.records.record import Record, Status, latest_records


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


def circular_report(records: Iterable[Record]) -> CircularReport:
    """Plain (rot0) and circular accuracy per subtask and overall."""
    latest = latest_records(records).values()
    by_question: dict[str, list[Record]] = defaultdict(list)
    answered: Counter[str] = Counter()
    gold: Counter[str] = Counter()
    for record in latest:
        by_question[record.question_id].append(record)
        gold[record.correct_answer] += 1
        if record.status is Status.ANSWERED and record.answer:
            answered[record.answer] += 1
    tallies: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for posings in by_question.values():
        plain = next((r for r in posings if r.plain), posings[0])
        right = [r.status is Status.ANSWERED and r.answer == r.correct_answer for r in posings]
        subtask = RAW_TYPE_TO_SUBTASK.get(plain.question_type)
        outcome = (plain.status is Status.ANSWERED and plain.answer == plain.correct_answer, all(right))
        tallies[subtask.value if subtask else plain.question_type].append(outcome)
        tallies["All"].append(outcome)
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
