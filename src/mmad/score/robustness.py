"""Robustness: a run asked with `--perturb` against the clean run of the same model and protocol.

Two runs form a pair when they ask the same model (the card leaves the model out: two models asked alike
share a card) and their protocol cards are equal in everything but the perturbation (the card's
``perturb`` entry, which the clean run lacks or leaves empty) and the card's own hash and mmad version.
Where several clean runs qualify (an interrupted one beside its complete copy), the one sharing the most
answered questions with the perturbed run is its twin, so that a partial run never hides a whole one.
The pair's figures are `compare_runs`'s: per-subtask and overall change (perturbed minus clean) over
the questions both answered, with paired image-bootstrap 95% intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmad.score.answers import GradedAnswer
from mmad.score.compare import Difference, compare_runs, pair_answers

PERTURB_KEY = "perturb"
_NOT_PROTOCOL = frozenset({"hash", "mmad_version", PERTURB_KEY})
"""Card entries that may differ within a pair: the perturbation, and what says nothing of the protocol."""


def perturbation_of(card: Mapping[str, Any]) -> str | None:
    """The card's perturbation in words ('blur=2,dark=0.5'), or None for a clean run."""
    value = card.get(PERTURB_KEY)
    if not value:
        return None
    if isinstance(value, Mapping) and isinstance(value.get("applied"), Mapping):
        value = value["applied"]  # the card's form: {"applied": {name: parameter}, "images": ..., "seed": ...}
    if isinstance(value, Mapping):
        return ",".join(
            f"{key}={item:g}" if isinstance(item, float) else f"{key}={item}" for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def is_clean_counterpart(clean: Mapping[str, Any], perturbed: Mapping[str, Any]) -> bool:
    """Whether ``clean`` is the unperturbed run of ``perturbed``: the same card but for the perturbation."""
    if not clean or not perturbed or perturbation_of(clean) is not None or perturbation_of(perturbed) is None:
        return False
    keys = (set(clean) | set(perturbed)) - _NOT_PROTOCOL
    return all(clean.get(key) == perturbed.get(key) for key in keys)


@dataclass
class RobustnessPair:
    """A perturbed run, its clean counterpart, and the change per subtask and overall (perturbed - clean)."""

    clean: str
    perturbed: str
    perturb: str
    differences: list[Difference]
    candidates: int = 1
    """How many clean runs qualified as the twin (the one sharing the most answered questions was taken)."""


@dataclass(frozen=True)
class RunForRobustness:
    """What pairing needs of a run: a display name, its protocol card, its graded answers, its model."""

    name: str
    card: Mapping[str, Any]
    answers: Sequence[GradedAnswer]
    model: str = ""
    """provider:model; a clean twin asks the same one."""


def robustness_pairs(runs: Sequence[RunForRobustness], *, samples: int = 1000, seed: int = 0) -> list[RobustnessPair]:
    """Every perturbed run with a clean twin among ``runs`` (same model, same card but the perturbation; of
    several, the one sharing the most answered questions, the first on a tie), and its changes."""
    pairs = []
    for perturbed in runs:
        perturb = perturbation_of(perturbed.card)
        if perturb is None:
            continue
        candidates = [r for r in runs if r.model == perturbed.model and is_clean_counterpart(r.card, perturbed.card)]
        if not candidates:
            continue
        # max keeps the first of equals: the caller's order decides only between equally whole twins
        clean = max(candidates, key=lambda r: len(pair_answers(r.answers, perturbed.answers).pairs))
        differences = compare_runs(clean.answers, perturbed.answers, samples=samples, seed=seed, by_category=False)
        pairs.append(RobustnessPair(clean.name, perturbed.name, perturb, differences, len(candidates)))
    return pairs
