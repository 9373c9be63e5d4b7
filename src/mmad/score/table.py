"""The MMAD table: accuracy per source dataset × subtask, and its averages.

Anomaly Discrimination is balanced accuracy (the mean of the normal and abnormal images'
accuracies); each dataset row is the macro-average over its subtasks; the headline is the
unweighted mean over datasets. Two policies decide what an answer without a letter does:

- ``strict`` (default): it counts as wrong, and the count is reported. A cell with no questions
  is missing (None), and averages skip it (the row is flagged incomplete).
- ``upstream``: what the official ``summary.py`` computes. Records whose answer (or gold) is not a
  letter A-E are removed from the list while it is being iterated, which also skips the record
  after each removed one; empty cells count as 0 in the averages; a dataset with no normal
  (abnormal) Anomaly Discrimination answer has Overkill (Miss) 100.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from statistics import fmean

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, SUBTASKS, Subtask
from mmad.score.answers import VALID_LETTERS, GradedAnswer, covered, covers_text, without_dropped_images


class Policy(StrEnum):
    """How answers without a letter count."""

    STRICT = "strict"
    UPSTREAM = "upstream"


@dataclass
class Tally:
    """Correct out of total, plus how many of the total had no answer."""

    correct: int = 0
    total: int = 0
    unanswered: int = 0
    abstained: int = 0
    """Of the unanswered, how many the model declined by design (the visual expert outside AD and DL)."""

    @property
    def declined_all(self) -> bool:
        """The model declined every question of this cell: it does not do this subtask."""
        return self.total > 0 and self.abstained == self.total

    @property
    def accuracy(self) -> float | None:
        """Percent correct, or None when there are no questions."""
        return 100.0 * self.correct / self.total if self.total else None


@dataclass
class DetectionStats:
    """Anomaly Discrimination counts of one group (normal and abnormal images kept apart)."""

    normal: Tally = field(default_factory=Tally)
    abnormal: Tally = field(default_factory=Tally)

    def balanced(self, *, zero_for_missing: bool = False) -> float | None:
        """Balanced accuracy in percent; None when a class is absent (unless zero_for_missing)."""
        normal, abnormal = self.normal.accuracy, self.abnormal.accuracy
        if zero_for_missing:
            return ((normal or 0.0) + (abnormal or 0.0)) / 2
        if normal is None or abnormal is None:
            return None
        return (normal + abnormal) / 2

    @property
    def overkill(self) -> float | None:
        """Percent of normal images called defective (1 - normal accuracy)."""
        acc = self.normal.accuracy
        return None if acc is None else 100.0 - acc

    @property
    def miss(self) -> float | None:
        """Percent of defective images called normal (1 - abnormal accuracy)."""
        acc = self.abnormal.accuracy
        return None if acc is None else 100.0 - acc

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN) in percent, defect = positive."""
        return self.abnormal.accuracy

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP) in percent; FP = normal images not answered correctly."""
        tp = self.abnormal.correct
        fp = self.normal.total - self.normal.correct
        return 100.0 * tp / (tp + fp) if tp + fp else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall, in percent."""
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0


DETECTION_COLUMNS = ("Recall", "Precision", "F1", "Overkill", "Miss")


@dataclass
class DatasetRow:
    """One source dataset's row of the table."""

    name: str
    cells: dict[Subtask, float | None]
    tallies: dict[Subtask, Tally]
    detection: DetectionStats
    average: float | None
    complete: bool
    upstream: bool = False
    declined: frozenset[Subtask] = frozenset()
    """Subtasks of this dataset whose every question the model declined: missing cells under either policy."""

    @property
    def covers(self) -> list[Subtask]:
        """The subtasks its average covers (every column under the upstream policy, which counts 0)."""
        return covered(self.cells)

    def detection_metrics(self) -> dict[str, float | None]:
        """Recall, Precision, F1, Overkill and Miss of this dataset.

        Under the upstream policy Overkill and Miss are what ``summary.py`` computes: an absent
        class has accuracy 0, so a dataset without a normal (abnormal) Anomaly Discrimination
        answer has Overkill (Miss) 100. Under the strict policy a dataset whose every Anomaly
        Discrimination question the model declined has none of them.
        """
        if Subtask.ANOMALY_DISCRIMINATION in self.declined:
            # Abstentions are not "normal"/"defective" calls: figures here would be 100s the model never earned.
            return dict.fromkeys(DETECTION_COLUMNS, None)
        d = self.detection
        overkill, miss = d.overkill, d.miss
        if self.upstream:
            overkill = 100.0 - (d.normal.accuracy or 0.0)
            miss = 100.0 - (d.abnormal.accuracy or 0.0)
        return {
            "Recall": d.recall,
            "Precision": d.precision,
            "F1": d.f1,
            "Overkill": overkill,
            "Miss": miss,
        }


@dataclass
class ScoreTable:
    """The MMAD table and how it was made."""

    policy: Policy
    rows: list[DatasetRow]
    average_cells: dict[Subtask, float | None]
    average: float | None
    average_detection: dict[str, float | None]
    n_answers: int
    n_counted: int
    n_unanswered: int
    n_skipped: int = 0
    n_bad_gold: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    """Subtasks whose every question the model declined (strict policy shows them as missing)."""

    @property
    def average_covers(self) -> list[Subtask]:
        """The subtasks the headline average covers (those with a figure in the Average row)."""
        return covered(self.average_cells)

    def row(self, name: str) -> DatasetRow:
        """The row of a dataset."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)


def _mean(values: Sequence[float | None], *, zero_for_missing: bool) -> float | None:
    present = [0.0 if v is None else v for v in values] if zero_for_missing else [v for v in values if v is not None]
    return fmean(present) if present else None


def declined_cells(answers: Sequence[GradedAnswer]) -> set[tuple[str, Subtask]]:
    """The (dataset, subtask) cells whose every question the model declined."""
    asked: set[tuple[str, Subtask]] = set()
    answered: set[tuple[str, Subtask]] = set()
    for a in answers:
        subtask = RAW_TYPE_TO_SUBTASK.get(a.question_type)
        if subtask is None or a.correct_answer not in VALID_LETTERS:
            continue
        asked.add((a.dataset, subtask))
        if a.failure != "abstained":
            answered.add((a.dataset, subtask))
    return asked - answered


def upstream_selection(answers: Sequence[GradedAnswer]) -> tuple[list[GradedAnswer], int, int]:
    """The records the official scorer counts: (kept, removed, skipped).

    ``summary.py`` iterates over a list while calling ``list.remove`` on it for each record whose
    answer or gold is not a letter A-E. The removal shifts the rest of the list left by one, so
    the iterator never visits the record after each removed one. ``remove`` deletes the first
    *equal* record; with repeated records that may be an earlier copy, but any deletion at or
    before the current position shifts the rest identically, so the outcome is the same as
    deleting the current record: skip it and the one after it.
    """
    kept: list[GradedAnswer] = []
    removed = 0
    index = 0
    while index < len(answers):
        answer = answers[index]
        if answer.correct_answer not in VALID_LETTERS or answer.gpt_answer not in VALID_LETTERS:
            removed += 1
            index += 2
        else:
            kept.append(answer)
            index += 1
    skipped = len(answers) - removed - len(kept)
    return kept, removed, skipped


@dataclass
class Selection:
    """The answers a policy counts, and the table's shape: what ``score_answers`` and the bootstrap
    intervals both start from, so that the policy is defined once."""

    kept: list[GradedAnswer]
    """The answers the policy looks at (upstream: without declined ones and dropped images)."""
    counted: list[GradedAnswer]
    """Of those, the ones that enter the tallies."""
    datasets: list[str]
    """Rows, in order of first appearance, as the official scorer's are."""
    columns: list[Subtask]
    """Subtasks asked, in the paper's order."""
    declined: set[tuple[str, Subtask]]
    """The (dataset, subtask) cells whose every question the model declined: missing under either policy."""
    n_removed: int = 0
    n_skipped: int = 0
    n_bad_gold: int = 0
    n_dropped_images: int = 0


def select_answers(answers: Sequence[GradedAnswer], policy: Policy) -> Selection:
    """What ``policy`` counts of ``answers`` (see the module's docstring)."""
    datasets = list(dict.fromkeys(a.dataset for a in answers))
    present = {RAW_TYPE_TO_SUBTASK[a.question_type] for a in answers if a.question_type in RAW_TYPE_TO_SUBTASK}
    columns = [s for s in SUBTASKS if s in present]
    # One rule under both policies: a (dataset, subtask) whose every question the model declined is not a result.
    declined = declined_cells(answers)
    if policy is not Policy.UPSTREAM:
        counted = [a for a in answers if a.correct_answer in VALID_LETTERS]
        return Selection(list(answers), counted, datasets, columns, declined, n_bad_gold=len(answers) - len(counted))
    # No official script's model declines, so declined questions are left out before summary.py's selection,
    # as they are left out of the official answers json (they are not wrong letters).
    kept = [a for a in answers if a.failure != "abstained"]
    # The script that dropped an image wrote none of its answers, question 1 included.
    whole = without_dropped_images(kept)
    n_dropped = 0
    if len(whole) < len(kept):
        n_dropped = len({a.image for a in kept}) - len({a.image for a in whole})
        kept = whole
        datasets = list(dict.fromkeys(a.dataset for a in kept))
    counted, removed, skipped = upstream_selection(kept)
    return Selection(
        kept, counted, datasets, columns, declined, n_removed=removed, n_skipped=skipped, n_dropped_images=n_dropped
    )


def score_answers(answers: Iterable[GradedAnswer], policy: Policy | str = Policy.STRICT) -> ScoreTable:
    """Compute the MMAD table from graded answers."""
    policy = Policy(policy)
    all_answers = list(answers)
    upstream = policy is Policy.UPSTREAM
    notes: list[str] = []
    failures: dict[str, int] = {}
    for a in all_answers:
        if a.answer is None:
            reason = a.failure or "unparsed"
            failures[reason] = failures.get(reason, 0) + 1
    chosen = select_answers(all_answers, policy)
    all_answers, counted, dataset_names, declined_here = chosen.kept, chosen.counted, chosen.datasets, chosen.declined
    n_skipped, n_bad_gold = chosen.n_skipped, chosen.n_bad_gold
    if chosen.n_dropped_images:
        notes.append(
            f"upstream policy: every answer of {chosen.n_dropped_images} image"
            f"{'' if chosen.n_dropped_images == 1 else 's'} left out, as "
            "Gemini/gemini_query.py drops an image whose second reply has the wrong number of letters"
        )
    if upstream:
        notes.append(
            f"upstream policy: {chosen.n_removed} answers without a letter were dropped from the denominators and "
            f"{n_skipped} more were skipped by the official scorer's remove-while-iterating bug; "
            "empty cells count as 0"
        )
    elif n_bad_gold:
        notes.append(f"{n_bad_gold} records have a gold answer that is not a letter A-E and were left out")
    unknown_types = {a.question_type for a in all_answers if a.question_type not in RAW_TYPE_TO_SUBTASK}
    if unknown_types:
        notes.append(f"answers of unknown type were not scored: {sorted(unknown_types)}")

    tallies: dict[str, dict[Subtask, Tally]] = {name: {s: Tally() for s in SUBTASKS} for name in dataset_names}
    detection: dict[str, DetectionStats] = {name: DetectionStats() for name in dataset_names}
    n_unanswered = 0
    for a in counted:
        subtask = RAW_TYPE_TO_SUBTASK.get(a.question_type)
        if subtask is None:
            continue
        correct = a.is_correct
        unanswered = a.answer is None
        n_unanswered += unanswered
        tally = tallies[a.dataset][subtask]
        tally.total += 1
        tally.correct += correct
        tally.unanswered += unanswered
        tally.abstained += a.failure == "abstained"
        if subtask is Subtask.ANOMALY_DISCRIMINATION:
            side = detection[a.dataset].normal if a.is_normal else detection[a.dataset].abnormal
            side.total += 1
            side.correct += correct
            side.unanswered += unanswered

    columns = chosen.columns
    rows: list[DatasetRow] = []
    declined: set[Subtask] = set()
    one_class: list[str] = []
    for name in dataset_names:
        cells: dict[Subtask, float | None] = {}
        for subtask in columns:
            if (name, subtask) in declined_here:
                # Not a result: a 0 here would rank a model below others for a subtask it never tries.
                cells[subtask] = None
                declined.add(subtask)
            elif subtask is Subtask.ANOMALY_DISCRIMINATION:
                cells[subtask] = detection[name].balanced(zero_for_missing=upstream)
                if cells[subtask] is None and tallies[name][subtask].total:
                    one_class.append(name)
            else:
                acc = tallies[name][subtask].accuracy
                cells[subtask] = 0.0 if (acc is None and upstream) else acc
        row_declined = frozenset(s for s in columns if (name, s) in declined_here)
        values = [v for s, v in cells.items() if s not in row_declined]
        rows.append(
            DatasetRow(
                name=name,
                cells=cells,
                tallies=tallies[name],
                detection=detection[name],
                average=_mean(values, zero_for_missing=upstream),
                complete=all(v is not None for v in cells.values()) and len(columns) == len(SUBTASKS),
                upstream=upstream,
                declined=row_declined,
            )
        )
    average_cells = {
        s: _mean([r.cells[s] for r in rows if s not in r.declined], zero_for_missing=upstream) for s in columns
    }
    average = _mean([r.average for r in rows if r.declined != set(columns)], zero_for_missing=upstream)
    average_detection = {
        column: _mean([r.detection_metrics()[column] for r in rows], zero_for_missing=False)
        for column in DETECTION_COLUMNS
    }
    if declined:
        names = ", ".join(s.short for s in SUBTASKS if s in declined)
        notes.append(
            f"the model declined every question of {names} (it does not do them): those cells are shown as "
            f"missing and left out of the averages, so the Average covers {covers_text(covered(average_cells))}"
        )
    if one_class:
        notes.append(
            "Anomaly Discrimination is balanced accuracy, which needs normal and defective images; "
            f"{', '.join(one_class)} had only one of the two among the questions asked (a small --limit), "
            "so its cell is missing"
        )
    empty = any(tallies[r.name][s].total == 0 for r in rows for s in columns) or len(columns) < len(SUBTASKS)
    if not upstream and empty:
        notes.append("some cells have no questions: they are shown as missing and left out of the averages")
    table_declined = sorted(s.value for s in declined)
    return ScoreTable(
        policy=policy,
        rows=rows,
        average_cells=average_cells,
        average=average,
        average_detection=average_detection,
        n_answers=len(all_answers),
        n_counted=len(counted),
        n_unanswered=n_unanswered,
        n_skipped=n_skipped,
        n_bad_gold=n_bad_gold,
        failures=failures,
        notes=notes,
        declined=table_declined,
    )
