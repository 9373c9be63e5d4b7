"""Threshold-free detection quality: image AUROC from a score per Anomaly Discrimination answer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mmad.data.schema import is_normal_key


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The area under the ROC curve (labels True = defective); ties count one half. None without both classes."""
    import numpy as np  # here, not above: every graded answer reads detection_score, and `mmad score` needs no numpy

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


MISSING_LOGPROB = -30.0


def detection_score(record: object) -> float | None:
    """How defective a record's model thinks the image is: the expert's ``pred_score``, or, from
    letter log-probabilities, log p(Yes letter) - log p(No letter). None when neither is there."""
    scores = getattr(record, "scores", {}) or {}
    if "pred_score" in scores:
        return float(scores["pred_score"])
    options = getattr(record, "options", {}) or {}
    yes = next((k for k, v in options.items() if v.strip().lower().startswith("yes")), None)
    no = next((k for k, v in options.items() if v.strip().lower().startswith("no")), None)
    if yes is None or no is None or not ({yes, no} & set(scores)):
        return None
    return float(scores.get(yes, MISSING_LOGPROB)) - float(scores.get(no, MISSING_LOGPROB))


def detection_auroc(records: Iterable[object]) -> dict[str, float | None]:
    """Image AUROC of Anomaly Discrimination records that carry a score, per dataset/category and overall."""
    groups: dict[str, tuple[list[float], list[bool]]] = {}
    for record in records:
        if getattr(record, "question_type", "") != "Anomaly Detection" or getattr(record, "variant", "") not in {
            "",
            "rot0",
        }:
            continue
        score = detection_score(record)
        if score is None:
            continue
        image = str(getattr(record, "image", ""))
        parts = image.split("/")
        for group in ("all", "/".join(parts[:2])):
            bucket = groups.setdefault(group, ([], []))
            bucket[0].append(score)
            bucket[1].append(not is_normal_key(image))
    return {group: auroc(values, labels) for group, (values, labels) in sorted(groups.items())}
