"""Two runs on the same questions: per-subtask and per-category differences with paired bootstrap intervals.

Only the questions both runs answered are paired: a failed request, a refusal or an abstention is
not an answer (a reply without a letter is, a wrong one, as in MMAD's protocol), and counting it as
wrong would measure the server or the run's completeness instead of the model. What was left
out, on each side and why, is reported beside the differences.

Resampling is by image (all of an image's questions together, since they are not independent),
with the same resample applied to both runs, so the interval is for the paired difference.
Subtask scores are pooled over datasets, Anomaly Discrimination as balanced accuracy; the
overall score is the mean of the subtask scores, and a category's score the mean of its subtask
scores (Anomaly Discrimination there balanced where both classes occur), as in the per-category
table. A subtask without a paired question (one the visual expert declines) has no figure, and
every average says which subtasks it covers.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, SUBTASKS, Subtask
from mmad.errors import AnswersFormatError
from mmad.score.answers import GradedAnswer, is_answer
from mmad.score.intervals import image_resamples

NO_RECORD = "no record"
"""Why a question is left out on a side that has no record of it (the other run asked it)."""

# The cells a question falls in: Anomaly Discrimination split by class (it is balanced), then the other subtasks.
_PARTS = ("AD:normal", "AD:abnormal", *(s.value for s in SUBTASKS[1:]))


@dataclass
class Difference:
    """One group's scores in both runs and the difference's interval."""

    group: str
    a: float
    b: float
    low: float
    high: float
    n: int
    covers: list[str] = field(default_factory=list)
    """For an average (overall or a category's), the subtasks it is the mean of."""

    @property
    def delta(self) -> float:
        """B minus A, in points."""
        return self.b - self.a


@dataclass
class Pairing:
    """The questions both runs answered, and why the others were left out on each side."""

    pairs: list[tuple[GradedAnswer, GradedAnswer]]
    shared: int
    """Questions with a record in both runs."""
    left_out: int
    """Questions of either run that are not paired."""
    left_out_a: dict[str, int]
    """Of the left-out questions, A's reasons: error, refused, abstained, no record."""
    left_out_b: dict[str, int]


def _key(answer: GradedAnswer) -> str:
    return f"{answer.image}|{answer.question_text}|{answer.question_type}|{answer.correct_answer}"


def pair_answers(a: Sequence[GradedAnswer], b: Sequence[GradedAnswer]) -> Pairing:
    """Pair the questions both runs answered; count, per side, why the rest were left out."""
    index_a = {_key(x): x for x in a}
    index_b = {_key(x): x for x in b}
    pairs = []
    reasons_a: Counter[str] = Counter()
    reasons_b: Counter[str] = Counter()
    left_out = 0
    for key in dict.fromkeys([*index_a, *index_b]):
        x, y = index_a.get(key), index_b.get(key)
        if x is not None and y is not None and is_answer(x) and is_answer(y):
            pairs.append((x, y))
            continue
        left_out += 1
        for answer, reasons in ((x, reasons_a), (y, reasons_b)):
            if answer is None:
                reasons[NO_RECORD] += 1
            elif not is_answer(answer):
                reasons[str(answer.failure)] += 1
    return Pairing(
        pairs=pairs,
        shared=len(index_a.keys() & index_b.keys()),
        left_out=left_out,
        left_out_a=dict(reasons_a.most_common()),
        left_out_b=dict(reasons_b.most_common()),
    )


def declined_subtasks(a: Sequence[GradedAnswer], b: Sequence[GradedAnswer]) -> list[Subtask]:
    """Subtasks that one of the runs declined on every question (the visual expert outside AD and DL):
    no question of theirs is paired, so they have no figure."""
    declined = []
    for subtask in SUBTASKS:
        for run in (a, b):
            asked = [x for x in run if RAW_TYPE_TO_SUBTASK.get(x.question_type) is subtask]
            if asked and all(x.failure == "abstained" for x in asked):
                declined.append(subtask)
                break
    return declined


def _part(answer: GradedAnswer) -> int | None:
    subtask = RAW_TYPE_TO_SUBTASK.get(answer.question_type)
    if subtask is None:
        return None
    if subtask is Subtask.ANOMALY_DISCRIMINATION:
        return 0 if answer.is_normal else 1
    return _PARTS.index(subtask.value)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a slice with no figure at all stays NaN
        mean: np.ndarray = np.nanmean(values, axis=axis)
    return mean


def _subtask_scores(parts: np.ndarray, *, balanced_needs_both: bool) -> np.ndarray:
    """(..., parts, runs) percentages -> (..., 7 subtasks, runs); AD as balanced accuracy."""
    pair = parts[..., :2, :]
    ad = pair.mean(axis=-2) if balanced_needs_both else _nanmean(pair, axis=-2)
    return np.concatenate([ad[..., None, :], parts[..., 2:, :]], axis=-2)


def compare_runs(
    a: Sequence[GradedAnswer],
    b: Sequence[GradedAnswer],
    *,
    samples: int = 1000,
    seed: int = 0,
    by_category: bool = True,
) -> list[Difference]:
    """Paired differences (B - A) per subtask, overall, and per category, over the questions both answered."""
    pairing = pair_answers(a, b)
    pairs = [(x, y) for x, y in pairing.pairs if _part(x) is not None]
    if not pairs:
        msg = (
            "the two runs share no question; compare runs of the same benchmark"
            if not pairing.shared
            else f"the two runs share {pairing.shared} questions but none that both answered; nothing to compare"
        )
        raise AnswersFormatError(msg)
    images = {image: i for i, image in enumerate(dict.fromkeys(x.image for x, _ in pairs))}
    categories = sorted({f"{x.dataset}/{x.category}" for x, _ in pairs}) if by_category else []
    category_of = {c: i for i, c in enumerate(categories)}
    n_parts = len(_PARTS)
    # Counts per image and (category, part) cell: a bootstrap draws images, so it only reweights these.
    totals = np.zeros((len(images), max(1, len(categories)), n_parts))
    hits = np.zeros((len(images), max(1, len(categories)), n_parts, 2))
    for x, y in pairs:
        cell = (images[x.image], category_of.get(f"{x.dataset}/{x.category}", 0), _part(x))
        totals[cell] += 1
        hits[cell] += (x.is_correct, y.is_correct)
    flat_totals = totals.reshape(len(images), -1)
    # One contiguous matrix per run: a matrix product with a strided slice of ``hits`` is several times slower.
    flat_hits = [np.ascontiguousarray(hits[..., r].reshape(len(images), -1)) for r in range(2)]

    def scores(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, images) weights -> (B, 7 subtasks, 2 runs) and (B, categories, 7, 2) percentages."""
        count = weights @ flat_totals
        right = np.stack([weights @ run_hits for run_hits in flat_hits], axis=-1)
        shape = (len(weights), totals.shape[1], n_parts)
        count, right = count.reshape(shape), right.reshape((*shape, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            overall = 100.0 * right.sum(axis=1) / count.sum(axis=1)[..., None]
            per_category = 100.0 * right / count[..., None]
        return (
            _subtask_scores(overall, balanced_needs_both=True),
            _subtask_scores(per_category, balanced_needs_both=False),
        )

    observed, observed_categories = (v[0] for v in scores(np.ones((1, len(images)))))
    rng = np.random.default_rng(seed)
    n_images = len(images)
    draws, category_draws = [], []
    for weights in image_resamples(rng, n_images, samples, block=100):
        subtask_draw, category_draw = scores(weights)
        draws.append(subtask_draw)
        category_draws.append(category_draw)
    boot, boot_categories = np.concatenate(draws), np.concatenate(category_draws)

    part_counts = flat_totals.sum(axis=0).reshape(totals.shape[1], n_parts)
    subtask_n = [int(part_counts[:, :2].sum()), *(int(n) for n in part_counts[:, 2:].sum(axis=0))]
    result = []

    def add(group: str, point: np.ndarray, spread: np.ndarray, n: int, covers: list[str] | None = None) -> None:
        if np.isnan(point).any():
            return
        deltas = spread[:, 1] - spread[:, 0]
        deltas = deltas[~np.isnan(deltas)]
        low, high = np.percentile(deltas, [2.5, 97.5]) if len(deltas) else (np.nan, np.nan)
        result.append(Difference(group, float(point[0]), float(point[1]), float(low), float(high), n, covers or []))

    def covered(point: np.ndarray) -> list[int]:
        return [i for i in range(len(SUBTASKS)) if not np.isnan(point[i]).any()]

    for i, subtask in enumerate(SUBTASKS):
        add(subtask.value, observed[i], boot[:, i], subtask_n[i])
    present = covered(observed)
    if present:
        # The mean over the subtasks with a figure; a resample that loses one averages the rest.
        add(
            "Average",
            observed[present].mean(axis=0),
            _nanmean(boot[:, present], axis=1),
            len(pairs),
            [SUBTASKS[i].value for i in present],
        )
    for c, category in enumerate(categories):
        point = observed_categories[c]
        kept = covered(point)
        if kept:
            add(
                category,
                point[kept].mean(axis=0),
                _nanmean(boot_categories[:, c, kept], axis=1),
                int(part_counts[c].sum()),
                [SUBTASKS[i].value for i in kept],
            )
    return result
