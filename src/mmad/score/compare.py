"""Two runs on the same questions: per-subtask and per-category differences with paired bootstrap intervals.

Resampling is by image (all of an image's questions together, since they are not independent),
with the same resample applied to both runs, so the interval is for the paired difference.
Subtask scores are pooled over datasets, Anomaly Discrimination as balanced accuracy; the
overall score is the mean of the seven subtask scores. An unanswered question counts as wrong; a
subtask one run declines entirely (the visual expert's) is left out of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, SUBTASKS, Subtask
from mmad.errors import AnswersFormatError
from mmad.score.answers import GradedAnswer


@dataclass
class Difference:
    """One group's scores in both runs and the difference's interval."""

    group: str
    a: float
    b: float
    low: float
    high: float
    n: int

    @property
    def delta(self) -> float:
        """B minus A, in points."""
        return self.b - self.a


def _key(answer: GradedAnswer) -> str:
    return f"{answer.image}|{answer.question_text}|{answer.question_type}|{answer.correct_answer}"


def shared_questions(a: Sequence[GradedAnswer], b: Sequence[GradedAnswer]) -> int:
    """How many questions two runs both answered records for."""
    return len({_key(x) for x in a} & {_key(x) for x in b})


def declined_subtasks(a: Sequence[GradedAnswer], b: Sequence[GradedAnswer]) -> list[Subtask]:
    """Subtasks that one of the runs declined on every question (the visual expert outside AD and DL):
    a paired difference there would compare answers with refusals, so they are left out."""
    declined = []
    for subtask in SUBTASKS:
        for run in (a, b):
            asked = [x for x in run if RAW_TYPE_TO_SUBTASK.get(x.question_type) is subtask]
            if asked and all(x.failure == "abstained" for x in asked):
                declined.append(subtask)
                break
    return declined


def compare_runs(
    a: Sequence[GradedAnswer],
    b: Sequence[GradedAnswer],
    *,
    samples: int = 1000,
    seed: int = 0,
    by_category: bool = True,
) -> list[Difference]:
    """Paired differences (B - A) per subtask, overall, and per category."""
    index_b = {_key(x): x for x in b}
    pairs = [(x, index_b[_key(x)]) for x in a if _key(x) in index_b]
    if not pairs:
        msg = "the two runs share no question; compare runs of the same benchmark"
        raise AnswersFormatError(msg)
    images = {image: i for i, image in enumerate(dict.fromkeys(x.image for x, _ in pairs))}
    cluster = np.array([images[x.image] for x, _ in pairs])
    correct = np.array([[x.is_correct, y.is_correct] for x, y in pairs], dtype=float)
    groups: dict[str, np.ndarray] = {}
    for subtask in SUBTASKS:
        mask = np.array([RAW_TYPE_TO_SUBTASK.get(x.question_type) is subtask for x, _ in pairs])
        if subtask is Subtask.ANOMALY_DISCRIMINATION:
            normal = np.array([x.is_normal for x, _ in pairs])
            groups["AD:normal"] = mask & normal
            groups["AD:abnormal"] = mask & ~normal
        else:
            groups[subtask.value] = mask
    categories = sorted({f"{x.dataset}/{x.category}" for x, _ in pairs}) if by_category else []
    for category in categories:
        groups[category] = np.array([f"{x.dataset}/{x.category}" == category for x, _ in pairs])
    rng = np.random.default_rng(seed)
    n_clusters = len(images)
    names = list(groups)
    membership = np.stack([groups[g] for g in names]).astype(float)  # groups × questions

    def scores(weights: np.ndarray) -> np.ndarray:
        # weights: (B, questions) -> (B, groups, 2 runs)
        totals = weights @ membership.T
        hits = np.einsum("bq,gq,qr->bgr", weights, membership, correct)
        with np.errstate(invalid="ignore", divide="ignore"):
            percent: np.ndarray = 100.0 * hits / totals[..., None]
        return percent

    observed = scores(np.ones((1, len(pairs))))[0]
    draws = []
    for start in range(0, samples, 100):
        count = min(100, samples - start)
        picks = rng.integers(0, n_clusters, size=(count, n_clusters))
        cluster_weights = np.stack([np.bincount(row, minlength=n_clusters) for row in picks])
        draws.append(scores(cluster_weights[:, cluster].astype(float)))
    boot = np.concatenate(draws)  # (B, groups, 2)

    declined = set(declined_subtasks(a, b))  # of the runs as they are, as the CLI reports it

    def combine(values: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if "AD:normal" in names and Subtask.ANOMALY_DISCRIMINATION not in declined:
            out[Subtask.ANOMALY_DISCRIMINATION.value] = (
                values[..., names.index("AD:normal"), :] + values[..., names.index("AD:abnormal"), :]
            ) / 2
        for subtask in SUBTASKS[1:]:
            if subtask not in declined:
                out[subtask.value] = values[..., names.index(subtask.value), :]
        present = [v for v in out.values() if not np.all(np.isnan(v))]
        out["Average"] = np.nanmean(np.stack(present), axis=0)
        for category in categories:
            out[category] = values[..., names.index(category), :]
        return out

    point, spread = combine(observed), combine(boot)
    counts = {s.value: int(groups.get(s.value, groups.get("AD:normal", np.zeros(0))).sum()) for s in SUBTASKS[1:]}
    counts[Subtask.ANOMALY_DISCRIMINATION.value] = int((groups["AD:normal"] | groups["AD:abnormal"]).sum())
    counts["Average"] = len(pairs)
    counts.update({c: int(groups[c].sum()) for c in categories})
    result = []
    for group, values in point.items():
        if np.isnan(values).any():
            continue
        deltas = spread[group][:, 1] - spread[group][:, 0]
        deltas = deltas[~np.isnan(deltas)]
        low, high = np.percentile(deltas, [2.5, 97.5]) if len(deltas) else (np.nan, np.nan)
        result.append(Difference(group, float(values[0]), float(values[1]), float(low), float(high), counts[group]))
    return result
