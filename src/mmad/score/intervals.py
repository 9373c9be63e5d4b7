"""95% intervals on the MMAD table's cells by a bootstrap over images.

The questions of one image are not independent (a model that misreads an image tends to miss several
of its questions), so the unit resampled is the image: all of its questions move together. Images are
drawn with replacement within each dataset (each row keeps its size), every cell is recomputed as
`score_answers` computes it (Anomaly Discrimination balanced, rows the mean of their subtasks, the
headline the mean of the rows), and the interval is the 2.5th and 97.5th percentiles of the resampled
values. Seeded: the same answers, samples and seed give the same intervals.

A cell the table shows as missing (no questions; a subtask the model declined on every question; an
Anomaly Discrimination cell with one class) has no interval, and the averages skip it, as the table's do.
Nor has a dataset of a single image: every resample is that image again, and [x, x] would claim a
certainty one image cannot give (`TableIntervals.single_image` names such datasets); an average has an
interval where some dataset under it has two images or more.

The detection figures (Overkill, Miss, Recall, Precision, F1: `DatasetRow.detection_metrics`) come from the
same resamples: Anomaly Discrimination's normal and defective counts are already summed per resample, so
each figure is recomputed from them by the table's rules (upstream's absent class is 100 Overkill or Miss),
and their averages are means over the datasets that have one. A view narrowed to some datasets or subtasks
(`TableIntervals.view`: the leaderboard's ``--dataset``/``--subtask``) takes its averages over the same
resampled cells, by the table's rule, so its intervals are those of the view's own figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, Subtask
from mmad.score.answers import GradedAnswer
from mmad.score.table import DETECTION_COLUMNS, Policy, select_answers

LEVEL = 95.0


@dataclass(frozen=True)
class Interval:
    """A figure (percent) and its bootstrap interval."""

    point: float
    low: float
    high: float


@dataclass
class TableIntervals:
    """Intervals on every cell of the MMAD table; None where the table's cell is missing."""

    policy: Policy
    columns: list[Subtask]
    datasets: list[str]
    cells: dict[str, dict[Subtask, Interval | None]]
    row_averages: dict[str, Interval | None]
    subtask_averages: dict[Subtask, Interval | None]
    average: Interval | None
    samples: int
    seed: int
    n_images: int
    level: float = LEVEL
    single_image: list[str] = field(default_factory=list)
    """Datasets of one image: their cells and row average have no interval."""
    detection: dict[str, dict[str, Interval | None]] = field(default_factory=dict)
    """Per dataset, Recall, Precision, F1, Overkill and Miss (`DETECTION_COLUMNS`); None where the table's is."""
    average_detection: dict[str, Interval | None] = field(default_factory=dict)
    """The mean of each detection figure over the datasets that have one (the table's ``average_detection``)."""
    resamples: Resamples | None = field(default=None, repr=False, compare=False)
    """The resampled figures behind every interval, for the averages of a narrowed `view`."""

    def named_cells(self) -> dict[str, Interval | None]:
        """Every interval by name: ``{dataset}/{subtask}``, ``{dataset}/Average``, ``Average/{subtask}``
        and ``Average``."""
        named: dict[str, Interval | None] = {}
        for name in self.datasets:
            named.update({f"{name}/{s.value}": self.cells[name][s] for s in self.columns})
            named[f"{name}/Average"] = self.row_averages[name]
        named.update({f"Average/{s.value}": self.subtask_averages[s] for s in self.columns})
        named["Average"] = self.average
        return named

    def detection_cells(self) -> dict[str, Interval | None]:
        """Every detection interval by the `detection` metric's cell names: ``{column}`` (the mean over
        datasets) and ``{dataset}/{column}``."""
        named: dict[str, Interval | None] = dict(self.average_detection)
        for name in self.datasets:
            named.update({f"{name}/{column}": v for column, v in self.detection.get(name, {}).items()})
        return named

    def view(self, datasets: Sequence[str] = (), subtasks: Sequence[Subtask] = ()) -> dict[str, Interval | None]:
        """Intervals of a view narrowed to some ``datasets`` rows and ``subtasks`` columns (all where empty), by
        the leaderboard's rule (`mmad.report.leaderboard.rows.view_figures`): ``Average`` (each row's mean over
        the view's subtasks, then the mean of the rows), each subtask's mean over the view's rows (by its
        value), and each detection figure's mean over the view's rows (by its column name)."""
        resamples = self.resamples
        if resamples is None:
            return {}
        rows = [d for d, name in enumerate(self.datasets) if not datasets or name in datasets]
        columns = [j for j, s in enumerate(self.columns) if not subtasks or s in subtasks]
        varied = resamples.varied[rows]
        point = resamples.point[np.ix_(rows, columns)]  # rows x columns
        spread = resamples.spread[:, rows][:, :, columns]  # samples x rows x columns
        named: dict[str, Interval | None] = {
            "Average": _mean_interval(
                _mean(point, zero_for_missing=False), _mean(spread, zero_for_missing=False), varied
            )
        }
        for k, j in enumerate(columns):
            named[self.columns[j].value] = _mean_interval(point[:, k], spread[:, :, k], varied)
        detection_point = resamples.detection_point[rows]
        detection_spread = resamples.detection_spread[:, rows]
        for k, column in enumerate(DETECTION_COLUMNS):
            named[column] = _mean_interval(detection_point[:, k], detection_spread[:, :, k], varied)
        return named


@dataclass(frozen=True)
class Resamples:
    """The figures of every resample, kept for views the table itself does not show (NaN: missing)."""

    point: np.ndarray
    """datasets x columns: the table's cells."""
    spread: np.ndarray
    """samples x datasets x columns: the cells of each resample."""
    detection_point: np.ndarray
    """datasets x `DETECTION_COLUMNS`."""
    detection_spread: np.ndarray
    """samples x datasets x `DETECTION_COLUMNS`."""
    varied: np.ndarray
    """datasets: whether a dataset has two images or more (its resamples can differ from its point)."""


def _mean(values: np.ndarray, *, zero_for_missing: bool) -> np.ndarray:
    """The mean over the last axis, skipping NaN (or counting it 0); NaN where nothing is left."""
    if zero_for_missing:
        return np.asarray(np.nan_to_num(values, nan=0.0).mean(axis=-1))
    present = ~np.isnan(values)
    count = present.sum(axis=-1)
    total = np.where(present, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _accuracy(correct: np.ndarray, total: np.ndarray, *, zero_for_missing: bool) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total > 0, 100.0 * correct / np.maximum(total, 1), np.nan)
    return np.nan_to_num(value, nan=0.0) if zero_for_missing else value


def _cells(sums: np.ndarray, columns: list[Subtask], declined: list[bool], *, upstream: bool) -> np.ndarray:
    """The cells of one dataset row from its summed counts (..., slots): (..., len(columns))."""
    out = []
    for j, subtask in enumerate(columns):
        if declined[j]:
            out.append(np.full(sums.shape[:-1], np.nan))
        elif subtask is Subtask.ANOMALY_DISCRIMINATION:
            normal = _accuracy(sums[..., 2 * j], sums[..., 2 * j + 1], zero_for_missing=upstream)
            n = len(columns)
            abnormal = _accuracy(sums[..., 2 * n], sums[..., 2 * n + 1], zero_for_missing=upstream)
            out.append((normal + abnormal) / 2)
        else:
            out.append(_accuracy(sums[..., 2 * j], sums[..., 2 * j + 1], zero_for_missing=upstream))
    return np.stack(out, axis=-1)


def _detection(sums: np.ndarray, ad: int | None, n_columns: int, *, declined: bool, upstream: bool) -> np.ndarray:
    """A dataset's `DETECTION_COLUMNS` from its summed counts (..., slots): (..., 5), as
    `DatasetRow.detection_metrics` computes them (NaN where it gives None)."""
    nothing = np.zeros(sums.shape[:-1])
    normal_right, normal_total = (sums[..., 2 * ad], sums[..., 2 * ad + 1]) if ad is not None else (nothing, nothing)
    defect_right, defect_total = sums[..., 2 * n_columns], sums[..., 2 * n_columns + 1]
    if declined:  # abstentions are no normal/defective calls: no figure, as in the table
        return np.full((*sums.shape[:-1], len(DETECTION_COLUMNS)), np.nan)
    normal = _accuracy(normal_right, normal_total, zero_for_missing=False)
    recall = _accuracy(defect_right, defect_total, zero_for_missing=False)
    called_defective = defect_right + normal_total - normal_right  # TP + FP
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(called_defective > 0, 100.0 * defect_right / np.maximum(called_defective, 1), np.nan)
        both = precision + recall  # NaN where either is
        f1 = np.where(
            both > 0, 2 * precision * recall / np.where(both > 0, both, 1), np.where(np.isnan(both), np.nan, 0)
        )
    # upstream: summary.py takes an absent class's accuracy as 0, so its Overkill (Miss) is 100
    overkill = 100.0 - (np.nan_to_num(normal, nan=0.0) if upstream else normal)
    miss = 100.0 - (np.nan_to_num(recall, nan=0.0) if upstream else recall)
    figures = {"Recall": recall, "Precision": precision, "F1": f1, "Overkill": overkill, "Miss": miss}
    return np.stack([figures[column] for column in DETECTION_COLUMNS], axis=-1)


def _mean_interval(point: np.ndarray, spread: np.ndarray, varied: np.ndarray) -> Interval | None:
    """The interval of a mean over datasets, by the table's rule: ``point`` (datasets) and ``spread`` (samples x
    datasets) are the datasets' figures, NaN where missing and skipped (none left: no interval). None too where
    no dataset with a figure has two images or more: every resample would be the point itself."""
    return _interval(
        float(_mean(point, zero_for_missing=False)),
        _mean(spread, zero_for_missing=False),
        resampled=bool((varied & ~np.isnan(point)).any()),
    )


def image_resamples(rng: np.random.Generator, n_images: int, samples: int, *, block: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``n_images`` images, ``block`` at a time: (count, n_images) float weights,
    each row how many times each image was drawn (``n_images`` draws with replacement)."""
    for start in range(0, samples, block):
        count = min(block, samples - start)
        picks = rng.integers(0, n_images, size=(count, n_images))
        offsets = (np.arange(count)[:, None] * n_images + picks).ravel()
        yield np.bincount(offsets, minlength=count * n_images).reshape(count, n_images).astype(float)


def _interval(point: float, spread: np.ndarray, *, resampled: bool = True) -> Interval | None:
    kept = spread[~np.isnan(spread)]
    if np.isnan(point) or not len(kept) or not resampled:
        return None
    low, high = np.percentile(kept, [(100 - LEVEL) / 2, 100 - (100 - LEVEL) / 2])
    return Interval(float(point), float(low), float(high))


def table_intervals(
    answers: Iterable[GradedAnswer], policy: Policy | str = Policy.STRICT, *, samples: int = 1000, seed: int = 0
) -> TableIntervals:
    """Bootstrap intervals (over images, within each dataset) for every cell, row average, subtask
    average and the headline Average of the table ``score_answers(answers, policy)`` computes."""
    policy = Policy(policy)
    upstream = policy is Policy.UPSTREAM
    chosen = select_answers(list(answers), policy)  # the table's own selection, rows and columns
    counted, columns, datasets, declined_here = chosen.counted, chosen.columns, chosen.datasets, chosen.declined
    index = {s: j for j, s in enumerate(columns)}
    slots = 2 * (len(columns) + 1)  # (correct, total) per column, and the abnormal half of AD at the end
    # per dataset: each image's row, and per answer (image row, slot, correct) to add up at once
    rows_of: dict[str, dict[str, int]] = {name: {} for name in datasets}
    entries: dict[str, tuple[list[int], list[int], list[bool]]] = {name: ([], [], []) for name in datasets}
    for a in counted:
        subtask = RAW_TYPE_TO_SUBTASK.get(a.question_type)
        if subtask is None:
            continue
        j = index[subtask]
        rows = rows_of[a.dataset]
        image_row = rows.setdefault(a.image, len(rows))
        slot = 2 * len(columns) if subtask is Subtask.ANOMALY_DISCRIMINATION and not a.is_normal else 2 * j
        which, where, right = entries[a.dataset]
        which.append(image_row)
        where.append(slot)
        right.append(a.is_correct)
    rng = np.random.default_rng(seed)
    ad = index.get(Subtask.ANOMALY_DISCRIMINATION)
    point_cells, spread_cells, point_detection, spread_detection = [], [], [], []
    for name in datasets:
        matrix = np.zeros((len(rows_of[name]), slots))
        image_rows, slots_of, correct = (np.asarray(v, dtype=int) for v in entries[name])
        np.add.at(matrix, (image_rows, slots_of), correct)
        np.add.at(matrix, (image_rows, slots_of + 1), 1)
        declined = [(name, subtask) in declined_here for subtask in columns]
        point_cells.append(_cells(matrix.sum(axis=0), columns, declined, upstream=upstream))
        m = len(matrix)
        sums = np.zeros((samples, slots))
        # in blocks, so that the draw counts (resamples x images) stay small for a full run
        block = max(1, min(samples, 4_000_000 // max(m, 1)))
        start = 0
        for weights in image_resamples(rng, m, samples if m else 0, block=block):
            sums[start : start + len(weights)] = weights @ matrix
            start += len(weights)
        spread_cells.append(_cells(sums, columns, declined, upstream=upstream))
        ad_declined = ad is not None and declined[ad]
        point_detection.append(
            _detection(matrix.sum(axis=0), ad, len(columns), declined=ad_declined, upstream=upstream)
        )
        spread_detection.append(_detection(sums, ad, len(columns), declined=ad_declined, upstream=upstream))
    # Upstream's empty cells are already 0 in the cells; NaN is left only where the table shows a missing cell.
    point = np.stack(point_cells) if datasets else np.zeros((0, len(columns)))  # datasets x columns
    spread = np.stack(spread_cells, axis=1) if datasets else np.zeros((samples, 0, len(columns)))
    sizes = np.asarray([len(rows_of[name]) for name in datasets], dtype=int)
    varied = sizes >= 2  # a dataset whose resamples can differ from its point
    point_rows = _mean(point, zero_for_missing=False)
    spread_rows = _mean(spread, zero_for_missing=False)
    width = len(DETECTION_COLUMNS)
    detection_point = np.stack(point_detection) if datasets else np.zeros((0, width))  # datasets x figures
    detection_spread = np.stack(spread_detection, axis=1) if datasets else np.zeros((samples, 0, width))
    return TableIntervals(
        policy=policy,
        columns=columns,
        datasets=datasets,
        cells={
            name: {s: _interval(point[d, j], spread[:, d, j], resampled=varied[d]) for j, s in enumerate(columns)}
            for d, name in enumerate(datasets)
        },
        row_averages={
            name: _interval(point_rows[d], spread_rows[:, d], resampled=varied[d]) for d, name in enumerate(datasets)
        },
        subtask_averages={s: _mean_interval(point[:, j], spread[:, :, j], varied) for j, s in enumerate(columns)},
        average=_mean_interval(point_rows, spread_rows, varied),
        samples=samples,
        seed=seed,
        n_images=sum(len(v) for v in rows_of.values()),
        single_image=[name for name, size in zip(datasets, sizes, strict=True) if size == 1],
        detection={
            name: {
                column: _interval(detection_point[d, k], detection_spread[:, d, k], resampled=varied[d])
                for k, column in enumerate(DETECTION_COLUMNS)
            }
            for d, name in enumerate(datasets)
        },
        average_detection={
            column: _mean_interval(detection_point[:, k], detection_spread[:, :, k], varied)
            for k, column in enumerate(DETECTION_COLUMNS)
        },
        resamples=Resamples(point, spread, detection_point, detection_spread, varied),
    )


def auroc_interval(
    scores: Sequence[float], labels: Sequence[bool], images: Sequence[str], *, samples: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """A 95% bootstrap interval (percent) of the AUROC of ``scores`` (labels True = defective; ties count one
    half), resampling images: answers of one image move together. None without both classes, or when no
    resample keeps both.

    Each resample only reweights the answers, so the AUROC of all of them is had at once from the scores
    sorted once: per group of tied scores, the defective weight times the normal weight below it (and half
    the tied normal weight), over the product of the two totals.
    """
    values = np.asarray(scores, dtype=float)
    truth = np.asarray(labels, dtype=bool)
    if not truth.any() or truth.all():
        return None
    order = np.argsort(values, kind="mergesort")
    values, truth = values[order], truth[order]
    image_index = {name: i for i, name in enumerate(dict.fromkeys(images))}
    owner = np.asarray([image_index[images[i]] for i in order], dtype=int)
    ends = np.r_[np.flatnonzero(np.diff(values) != 0), len(values) - 1]  # the last answer of each tied group
    rng = np.random.default_rng(seed)
    block = max(1, min(samples, 4_000_000 // max(len(values), 1)))
    kept = []
    for image_weights in image_resamples(rng, len(image_index), samples, block=block):
        weights = image_weights[:, owner]
        positive, negative = weights * truth, weights * ~truth
        group_pos = np.diff(np.cumsum(positive, axis=1)[:, ends], axis=1, prepend=0.0)
        cumulative_neg = np.cumsum(negative, axis=1)[:, ends]
        group_neg = np.diff(cumulative_neg, axis=1, prepend=0.0)
        below = cumulative_neg - group_neg
        total = positive.sum(axis=1) * negative.sum(axis=1)
        area = (group_pos * (below + group_neg / 2)).sum(axis=1)
        valid = total > 0
        kept.append(100.0 * area[valid] / total[valid])
    spread = np.concatenate(kept) if kept else np.zeros(0)
    if not len(spread):
        return None
    low, high = np.percentile(spread, [(100 - LEVEL) / 2, 100 - (100 - LEVEL) / 2])
    return float(low), float(high)
