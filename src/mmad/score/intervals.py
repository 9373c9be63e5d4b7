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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, Subtask
from mmad.score.answers import GradedAnswer
from mmad.score.table import Policy, select_answers

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
    point_cells, spread_cells = [], []
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
    # Upstream's empty cells are already 0 in the cells; NaN is left only where the table shows a missing cell.
    point = np.stack(point_cells) if datasets else np.zeros((0, len(columns)))  # datasets x columns
    spread = np.stack(spread_cells, axis=1) if datasets else np.zeros((samples, 0, len(columns)))
    sizes = np.asarray([len(rows_of[name]) for name in datasets], dtype=int)
    varied = sizes >= 2  # a dataset whose resamples can differ from its point
    point_rows = _mean(point, zero_for_missing=False)
    spread_rows = _mean(spread, zero_for_missing=False)
    point_subtasks = _mean(point.T, zero_for_missing=False)
    spread_subtasks = _mean(np.swapaxes(spread, 1, 2), zero_for_missing=False)
    point_average = float(_mean(point_rows, zero_for_missing=False)) if datasets else float("nan")
    spread_average = _mean(spread_rows, zero_for_missing=False) if datasets else np.full(samples, np.nan)
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
        subtask_averages={
            s: _interval(
                point_subtasks[j], spread_subtasks[:, j], resampled=bool((varied & ~np.isnan(point[:, j])).any())
            )
            for j, s in enumerate(columns)
        },
        average=_interval(point_average, spread_average, resampled=bool((varied & ~np.isnan(point_rows)).any())),
        samples=samples,
        seed=seed,
        n_images=sum(len(v) for v in rows_of.values()),
        single_image=[name for name, size in zip(datasets, sizes, strict=True) if size == 1],
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
