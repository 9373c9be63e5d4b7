"""Accuracy per category or per defect type, beside the per-dataset table."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, SUBTASKS, Subtask
from mmad.score.answers import VALID_LETTERS, GradedAnswer, covered
from mmad.score.table import DetectionStats, Tally


class GroupBy(StrEnum):
    """What a breakdown groups answers by."""

    DATASET = "dataset"
    CATEGORY = "category"
    DEFECT_TYPE = "defect_type"


_KEYS: dict[GroupBy, Callable[[GradedAnswer], str]] = {
    GroupBy.DATASET: lambda a: a.dataset,
    GroupBy.CATEGORY: lambda a: f"{a.dataset}/{a.category}",
    GroupBy.DEFECT_TYPE: lambda a: f"{a.dataset}/{a.category}/{a.defect_type}",
}


@dataclass
class BreakdownRow:
    """One group's accuracies (strict policy): None where the group has no such questions, or where
    the model declined every one of them (as in the MMAD table: a declined cell is not a 0)."""

    group: str
    cells: dict[Subtask, float | None]
    tallies: dict[Subtask, Tally]
    detection: DetectionStats
    average: float | None
    n_questions: int

    @property
    def covers(self) -> list[Subtask]:
        """The subtasks its average covers."""
        return covered(self.cells)

    @property
    def declined(self) -> list[Subtask]:
        """The subtasks whose every question in this group the model declined."""
        return [s for s in SUBTASKS if self.tallies[s].declined_all]


def breakdown(answers: Iterable[GradedAnswer], by: GroupBy | str) -> list[BreakdownRow]:
    """Strict accuracies per group; Anomaly Discrimination is balanced where both classes occur.

    A defect-type group holds only normal or only abnormal images, so its Anomaly Discrimination
    cell is the plain accuracy of that class. A subtask the model declined on every question of
    a group is missing there, and the group's average is over the subtasks it covers.
    """
    key = _KEYS[GroupBy(by)]
    tallies: dict[str, dict[Subtask, Tally]] = {}
    detection: dict[str, DetectionStats] = {}
    for a in answers:
        subtask = RAW_TYPE_TO_SUBTASK.get(a.question_type)
        if subtask is None or a.correct_answer not in VALID_LETTERS:
            continue
        group = key(a)
        if group not in tallies:
            tallies[group] = {s: Tally() for s in SUBTASKS}
            detection[group] = DetectionStats()
        tally = tallies[group][subtask]
        tally.total += 1
        tally.correct += a.is_correct
        tally.unanswered += a.answer is None
        tally.abstained += a.failure == "abstained"
        if subtask is Subtask.ANOMALY_DISCRIMINATION:
            side = detection[group].normal if a.is_normal else detection[group].abnormal
            side.total += 1
            side.correct += a.is_correct
    rows = []
    for group in sorted(tallies):
        cells: dict[Subtask, float | None] = {}
        for subtask in SUBTASKS:
            if tallies[group][subtask].declined_all:
                cells[subtask] = None
            elif subtask is Subtask.ANOMALY_DISCRIMINATION:
                balanced = detection[group].balanced()
                cells[subtask] = balanced if balanced is not None else tallies[group][subtask].accuracy
            else:
                cells[subtask] = tallies[group][subtask].accuracy
        present = [v for v in cells.values() if v is not None]
        rows.append(
            BreakdownRow(
                group=group,
                cells=cells,
                tallies=tallies[group],
                detection=detection[group],
                average=sum(present) / len(present) if present else None,
                n_questions=sum(t.total for t in tallies[group].values()),
            )
        )
    return rows
