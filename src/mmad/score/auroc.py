"""Threshold-free detection quality: image AUROC from a score per Anomaly Discrimination answer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mmad.data.schema import is_normal_key


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The area under the ROC curve (labels True = defective); ties count one half. None without both classes."""
    values = np.asarray(scores, dtype=float)
    truth = np.asarray(labels, dtype=bool)
    positives, negatives = values[truth], values[~truth]
    if not len(positives) or not len(negatives):
        return None
    order = np.argsort(np.concatenate([negatives, positives]), kind="mergesort")
    ranks = np.empty(len(order), dtype=float)
    combined = np.concatenate([negatives, positives])[order]
    # average ranks over ties
    _values, first_index, counts = np.unique(combined, return_index=True, return_counts=True)
    average = first_index + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(average, counts)
    positive_ranks = ranks[len(negatives) :].sum()
    return float((positive_ranks - len(positives) * (len(positives) + 1) / 2) / (len(positives) * len(negatives)))


def detection_auroc(records: Iterable[object], score_key: str = "pred_score") -> dict[str, float | None]:
    """Image AUROC of Anomaly Discrimination records that carry a score, per dataset/category and overall."""
    groups: dict[str, tuple[list[float], list[bool]]] = {}
    for record in records:
        scores = getattr(record, "scores", {}) or {}
        if getattr(record, "question_type", "") != "Anomaly Detection" or score_key not in scores:
            continue
        image = str(getattr(record, "image", ""))
        parts = image.split("/")
        for group in ("all", "/".join(parts[:2])):
            bucket = groups.setdefault(group, ([], []))
            bucket[0].append(float(scores[score_key]))
            bucket[1].append(not is_normal_key(image))
    return {group: auroc(values, labels) for group, (values, labels) in sorted(groups.items())}
