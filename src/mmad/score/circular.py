"""Circular evaluation (MMBench-style): every rotation of a question's options is asked, and the
question counts as right only if every rotation is. Beside plain accuracy (the unrotated
posing), it exposes a model that answers by letter rather than by content.

A subtask whose every posing the model declined (the visual expert outside AD and DL) has no
figure, as in the MMAD table: its row is missing, and "All" covers the other subtasks only."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, SUBTASKS
from mmad.records.record import Record, Status


@dataclass
class CircularRow:
    """Plain and circular accuracy of one group; None for a subtask the model declined entirely."""

    group: str
    plain: float | None
    circular: float | None
    questions: int


@dataclass
class CircularReport:
    """Per-subtask rows, overall, and how often each letter was answered against how often it was right."""

    rows: list[CircularRow]
    answered_letters: dict[str, int]
    gold_letters: dict[str, int]
    declined: list[str] = field(default_factory=list)
    """Subtasks whose every posing the model declined: missing rows, left out of All."""
    covers: list[str] = field(default_factory=list)
    """The subtasks the All row covers."""


class CircularTally:
    """Circular evaluation counted record by record (the latest record of each posing wins)."""

    def __init__(self) -> None:
        # question id -> (subtask group, {variant: (right, plain, declined)})
        self._questions: dict[str, tuple[str, dict[str, tuple[bool, bool, bool]]]] = {}
        self._answered: dict[tuple[str, str], str | None] = {}
        self._gold: dict[tuple[str, str], str] = {}

    def add(self, record: Record) -> None:
        """Count one record (a later record of the same posing replaces an earlier one)."""
        subtask = RAW_TYPE_TO_SUBTASK.get(record.question_type)
        group = subtask.value if subtask else record.question_type
        right = record.status is Status.ANSWERED and record.answer == record.correct_answer
        entry = self._questions.setdefault(record.question_id, (group, {}))
        entry[1][record.variant] = (right, record.plain, record.status is Status.ABSTAINED)
        answered = record.answer if record.status is Status.ANSWERED else None
        self._answered[record.key] = answered
        self._gold[record.key] = record.correct_answer

    def report(self) -> CircularReport:
        """Plain (rot0) and circular accuracy per subtask and overall."""
        tallies: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        declined_questions: Counter[str] = Counter()
        for group, posings in self._questions.values():
            plain = next((right for right, is_plain, _ in posings.values() if is_plain), False)
            tallies[group].append((plain, all(right for right, _, _ in posings.values())))
            declined_questions[group] += all(declined for _, _, declined in posings.values())
        declined = {group for group, outcomes in tallies.items() if declined_questions[group] == len(outcomes)}
        tallies["All"] = [
            outcome for group, outcomes in tallies.items() if group not in declined for outcome in outcomes
        ]
        answered = Counter(letter for letter in self._answered.values() if letter)
        gold = Counter(self._gold.values())
        order = [s.value for s in SUBTASKS if s.value in tallies]
        rows = []
        for group in [*order, "All"] if self._questions else []:
            outcomes = tallies.get(group, [])
            if group in declined or not outcomes:
                # Not a result: a 0 here would rank a model below others for a subtask it never tries.
                rows.append(CircularRow(group, None, None, len(outcomes)))
                continue
            rows.append(
                CircularRow(
                    group,
                    100.0 * sum(p for p, _ in outcomes) / len(outcomes),
                    100.0 * sum(c for _, c in outcomes) / len(outcomes),
                    len(outcomes),
                )
            )
        return CircularReport(
            rows,
            dict(sorted(answered.items())),
            dict(sorted(gold.items())),
            declined=[group for group in order if group in declined],
            covers=[group for group in order if group not in declined],
        )


def circular_report(records: Iterable[Record]) -> CircularReport:
    """Plain (rot0) and circular accuracy per subtask and overall."""
    tally = CircularTally()
    for record in records:
        tally.add(record)
    return tally.report()
