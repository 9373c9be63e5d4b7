"""Operating points of Anomaly Discrimination: what a factory would get from a model's defect score.

A score per Anomaly Discrimination answer (the expert's ``pred_score``, or log p(Yes letter) - log
p(No letter) from letter log-probabilities) ranks images from "surely normal" to "surely defective".
From it, per group (overall, dataset, category): AUROC, AUPRC (average precision, defect = positive),
the miss rate at 1% and 5% overkill, the overkill at 1% and 5% miss, and, where the score is a
probability, the expected calibration error and the points of a reliability diagram. Every figure
is a percentage. A run without scores (letters only) still has an operating point, one: its Overkill
and Miss, per category and per defect type.

An image is called defective when its score is at or above a threshold; the thresholds tried are the
score's distinct values (and one above them all). "Miss at 1% overkill" is the lowest miss over the
thresholds whose overkill is at most 1%, and the overkill actually reached is kept beside it. A score
with few distinct values has few thresholds, so the rate reached can sit far below the target: such an
operating point is flagged ``coarse``.

Pure functions of graded answers; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mmad.data.schema import Subtask
from mmad.score.answers import GradedAnswer
from mmad.score.auroc import auroc
from mmad.score.breakdown import GroupBy, breakdown

if TYPE_CHECKING:
    import numpy as np

AD_TYPE = "Anomaly Detection"
TARGETS = (1.0, 5.0)
"""The overkill (miss) rates, in percent, at which the miss (overkill) is reported."""
COARSE_DISTINCT = 10
"""A score with fewer distinct values than this in a group gives a coarse operating point."""
ECE_BINS = 10


@dataclass(frozen=True)
class OperatingPoint:
    """The lowest error of one kind at which the other stays at or below a target (all percent)."""

    target: float
    value: float
    reached: float
    """The rate of the constrained kind at the chosen threshold (at most ``target``)."""


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: images whose defect probability falls in [low, high)."""

    low: float
    high: float
    n: int
    mean_probability: float
    defect_rate: float


@dataclass
class ScoreOperating:
    """A group's figures from a defect score; None where they cannot be had (one class, no score)."""

    group: str
    n_normal: int
    n_defect: int
    distinct: int
    source: str
    """``likelihood`` (letter log-probabilities) or ``model`` (a score the model gives, e.g. the expert's)."""
    auroc: float | None = None
    auprc: float | None = None
    miss_at_overkill: dict[float, OperatingPoint] = field(default_factory=dict)
    overkill_at_miss: dict[float, OperatingPoint] = field(default_factory=dict)
    ece: float | None = None
    reliability: list[ReliabilityBin] = field(default_factory=list)

    @property
    def coarse(self) -> bool:
        """The score takes too few distinct values here for the 1%/5% operating points to be met closely."""
        return self.distinct < COARSE_DISTINCT

    def cells(self) -> dict[str, float | None]:
        """The named figures (percent); missing ones are None."""
        named: dict[str, float | None] = {"AUROC": self.auroc, "AUPRC": self.auprc}
        for target in TARGETS:
            point = self.miss_at_overkill.get(target)
            named[f"Miss@{target:g}%Overkill"] = point.value if point else None
        for target in TARGETS:
            point = self.overkill_at_miss.get(target)
            named[f"Overkill@{target:g}%Miss"] = point.value if point else None
        named["ECE"] = self.ece
        return named


@dataclass
class LetterOperating:
    """A group's one operating point from its letters: Overkill and Miss (percent), None where not defined."""

    group: str
    n_normal: int
    n_defect: int
    overkill: float | None
    miss: float | None

    def cells(self) -> dict[str, float | None]:
        """The named figures."""
        return {"Overkill": self.overkill, "Miss": self.miss}


@dataclass
class OperatingReport:
    """Operating points of one run: from scores where it has them, and from letters always."""

    by_score: dict[str, list[ScoreOperating]]
    """Per level (``overall``, ``dataset``, ``category``): one entry per group."""
    by_letter: dict[str, list[LetterOperating]]
    """Per level (``category``, ``defect_type``)."""
    n_scored: int
    n_questions: int
    notes: list[str] = field(default_factory=list)

    @property
    def has_scores(self) -> bool:
        """Whether any Anomaly Discrimination answer carries a score."""
        return self.n_scored > 0


def _ad_answers(answers: Iterable[GradedAnswer]) -> list[GradedAnswer]:
    return [a for a in answers if a.question_type == AD_TYPE]


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Average precision (defect = positive) in [0, 1], thresholds at the distinct scores; tied images
    enter together. None without a defective image."""
    import numpy as np  # imported here: a run without scores (and `mmad score` of it) needs no numpy

    values = np.asarray(scores, dtype=float)
    truth = np.asarray(labels, dtype=bool)
    if not truth.any():
        return None
    order = np.argsort(-values, kind="mergesort")
    values, truth = values[order], truth[order]
    # the last index of each run of equal scores: every tied image is in or out together
    ends = np.r_[np.flatnonzero(np.diff(values) != 0), len(values) - 1]
    true_positives = np.cumsum(truth)[ends]
    called = ends + 1
    precision = true_positives / called
    recall = true_positives / truth.sum()
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def _rates(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(overkill %, miss %) at each threshold: every distinct score, and one above them all."""
    import numpy as np  # imported here: a run without scores (and `mmad score` of it) needs no numpy

    thresholds = np.r_[np.unique(scores), np.inf]
    normal, defect = scores[~labels], scores[labels]
    called_normal = np.searchsorted(np.sort(normal), thresholds, side="left")  # normals below the threshold
    missed = np.searchsorted(np.sort(defect), thresholds, side="left")  # defects below: called normal
    overkill = np.asarray(100.0 * (len(normal) - called_normal) / len(normal), dtype=float)
    miss = np.asarray(100.0 * missed / len(defect), dtype=float)
    return overkill, miss


def _best(limited: np.ndarray, other: np.ndarray, target: float) -> OperatingPoint:
    """The lowest ``other`` where ``limited`` <= target (the threshold at an end always qualifies)."""
    import numpy as np  # imported here: a run without scores (and `mmad score` of it) needs no numpy

    allowed = np.flatnonzero(limited <= target + 1e-9)
    # of the thresholds with the lowest ``other``, the one with the fewest errors of the constrained kind
    index = int(allowed[np.lexsort((limited[allowed], other[allowed]))[0]])
    return OperatingPoint(target=target, value=float(other[index]), reached=float(limited[index]))


def defect_probability(answer: GradedAnswer) -> float | None:
    """The model's probability that the image is defective, where its score is one: a letter
    log-odds through the logistic function; a model score already in [0, 1] as it is."""
    if answer.score is None:
        return None
    if answer.score_kind == "likelihood":
        return 1.0 / (1.0 + math.exp(-max(-700.0, min(700.0, answer.score))))
    return answer.score if 0.0 <= answer.score <= 1.0 else None


def calibration(
    probabilities: Sequence[float], labels: Sequence[bool], bins: int = ECE_BINS
) -> tuple[float, list[ReliabilityBin]]:
    """Expected calibration error (percent) of defect probabilities, over equal-width bins, and the bins:
    sum over bins of (share of images) x |defect rate - mean probability|."""
    import numpy as np  # imported here: a run without scores (and `mmad score` of it) needs no numpy

    p = np.asarray(probabilities, dtype=float)
    truth = np.asarray(labels, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    reliability = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        if not n:
            continue
        mean_p, rate = float(p[inside].mean()), float(truth[inside].mean())
        total += n / len(p) * abs(rate - mean_p)
        reliability.append(ReliabilityBin(b / bins, (b + 1) / bins, n, mean_p, rate))
    return 100.0 * total, reliability


def score_operating(answers: Iterable[GradedAnswer], group: str = "all") -> ScoreOperating | None:
    """The figures of the Anomaly Discrimination answers that carry a score; None when none does."""
    import numpy as np  # imported here: a run without scores (and `mmad score` of it) needs no numpy

    scored = [a for a in _ad_answers(answers) if a.score is not None]
    if not scored:
        return None
    scores = np.array([a.score for a in scored], dtype=float)
    labels = np.array([not a.is_normal for a in scored], dtype=bool)
    sources = {a.score_kind for a in scored}
    result = ScoreOperating(
        group=group,
        n_normal=int((~labels).sum()),
        n_defect=int(labels.sum()),
        distinct=len(np.unique(scores)),
        source=sources.pop() if len(sources) == 1 else "mixed",
    )
    if result.n_normal and result.n_defect:
        value = auroc(scores.tolist(), labels.tolist())
        result.auroc = None if value is None else 100.0 * value
        precision = average_precision(scores.tolist(), labels.tolist())
        result.auprc = None if precision is None else 100.0 * precision
        overkill, miss = _rates(scores, labels)
        for target in TARGETS:
            result.miss_at_overkill[target] = _best(overkill, miss, target)
            result.overkill_at_miss[target] = _best(miss, overkill, target)
    probabilities = [defect_probability(a) for a in scored]
    if all(p is not None for p in probabilities):
        result.ece, result.reliability = calibration([p for p in probabilities if p is not None], labels.tolist())
    return result


_LEVELS: dict[str, Callable[[GradedAnswer], str]] = {
    "overall": lambda a: "all",
    "dataset": lambda a: a.dataset,
    "category": lambda a: f"{a.dataset}/{a.category}",
}


def letter_operating(answers: Iterable[GradedAnswer], by: GroupBy) -> list[LetterOperating]:
    """Overkill and Miss from the letters, per category or defect type (a defect type has one class, so
    one of the two), counted as the per-category table counts them (strict: no letter is a wrong call);
    a group whose every Anomaly Discrimination question the model declined has neither."""
    rows = []
    for row in breakdown(_ad_answers(answers), by):  # the per-category table's own tallies
        d = row.detection
        declined = row.tallies[Subtask.ANOMALY_DISCRIMINATION].declined_all
        overkill, miss = (None, None) if declined else (d.overkill, d.miss)
        rows.append(LetterOperating(row.group, d.normal.total, d.abnormal.total, overkill, miss))
    return rows


def operating_report(answers: Iterable[GradedAnswer]) -> OperatingReport:
    """Operating points overall, per dataset and per category from scores, and Overkill/Miss per category
    and per defect type from the letters."""
    ad = _ad_answers(answers)
    by_score: dict[str, list[ScoreOperating]] = {}
    for level, key in _LEVELS.items():
        groups: dict[str, list[GradedAnswer]] = {}
        for a in ad:
            if a.score is not None:
                groups.setdefault(key(a), []).append(a)
        by_score[level] = [r for g in sorted(groups) if (r := score_operating(groups[g], g)) is not None]
    n_scored = sum(a.score is not None for a in ad)
    notes = []
    if ad and not n_scored:
        notes.append(
            "no Anomaly Discrimination answer carries a score (letters only): its one operating point is "
            "Overkill and Miss; `--likelihood` records letter log-probabilities, from which AUROC and the "
            "1%/5% operating points follow"
        )
    elif n_scored < len(ad):
        notes.append(f"{n_scored} of {len(ad)} Anomaly Discrimination answers carry a score; the figures use those")
    coarse = [r.group for rows in by_score.values() for r in rows if r.coarse and r.auroc is not None]
    if coarse:
        shown = ", ".join(coarse[:5]) + (", …" if len(coarse) > 5 else "")
        notes.append(
            f"coarse operating point in {len(coarse)} group(s) ({shown}): "
            f"the score takes fewer than {COARSE_DISTINCT} distinct values there, so the 1%/5% targets are met "
            "only as closely as its few thresholds allow (see `reached`)"
        )
    overall = by_score["overall"][0] if by_score["overall"] else None
    if overall is not None and overall.ece is None:
        notes.append("no calibration figures: the score is not a probability (a model score outside [0, 1])")
    return OperatingReport(
        by_score=by_score,
        by_letter={
            "category": letter_operating(ad, GroupBy.CATEGORY),
            "defect_type": letter_operating(ad, GroupBy.DEFECT_TYPE),
        },
        n_scored=n_scored,
        n_questions=len(ad),
        notes=notes,
    )
