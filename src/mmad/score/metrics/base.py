"""What a metric is: graded answers in, named cells out (each optionally with a 95% interval).

A metric sees one run's graded answers (the unrotated posing of each question: letters, correctness,
and the defect score where the model gave one), the run's records where there are any (rotations,
tokens, cost and time live there; an official answers json has none), and the policy and bootstrap
settings the caller chose. It returns a `MetricResult`: named cells, the ones a one-line summary
shows (``headline``), and notes. A metric that does not apply to a run (circular accuracy of a run
asked without rotations, cost of an answers file) returns None, and no command shows it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mmad.records.record import Record
from mmad.score.answers import GradedAnswer
from mmad.score.table import Policy


@dataclass(frozen=True)
class Bootstrap:
    """The image bootstrap behind the intervals (`mmad score --ci`): resamples and seed."""

    samples: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class Cell:
    """One named figure of a metric: a value (None where it cannot be had), its unit, its interval."""

    name: str
    value: float | None
    unit: str = "%"
    """``%`` (percentage points), ``tokens``, ``$``, ``s``, or ``""`` for a plain number."""
    low: float | None = None
    high: float | None = None

    @property
    def has_interval(self) -> bool:
        """Whether the cell carries a 95% interval."""
        return self.low is not None and self.high is not None

    def text(self, digits: int = 1) -> str:
        """The value for display: '62.3', '$0.0012', '1,234 tokens'; a dash when missing."""
        if self.value is None:
            return "–"
        if self.unit == "$":
            return f"${self.value:,.4f}"
        if self.unit == "tokens":
            return f"{self.value:,.0f}"
        if self.unit == "s":
            return f"{self.value:,.2f} s"
        return f"{self.value:.{digits}f}"

    def interval_text(self, digits: int = 1) -> str:
        """'[58.1, 66.0]', or '' without an interval."""
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]" if self.has_interval else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: name, value, unit, and low/high when the cell has an interval."""
        data: dict[str, Any] = {"name": self.name, "value": self.value, "unit": self.unit}
        if self.has_interval:
            data.update(low=self.low, high=self.high)
        return data


def figure_text(key: str, value: float | None, digits: int = 2) -> str:
    """A metric figure in a table of runs, by its key (``metric:cell``): dollars to four decimals (a
    question costs fractions of a cent: two decimals would show $0.0012 as 0.00), tokens whole, any other
    figure to ``digits``; a dash when missing."""
    if value is None:
        return "–"
    cell = key.split(":", 1)[-1]
    if "$/" in cell:
        return f"{value:,.4f}"
    if "tokens/" in cell:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


@dataclass
class MetricResult:
    """A metric's figures for one run."""

    metric: str
    """The metric's registered name."""
    title: str
    cells: list[Cell]
    headline: list[str] = field(default_factory=list)
    """The names of the cells a one-line summary shows (every command's metric columns)."""
    notes: list[str] = field(default_factory=list)

    def cell(self, name: str) -> Cell | None:
        """The cell of this name, or None."""
        return next((c for c in self.cells if c.name == name), None)

    def headline_cells(self) -> list[Cell]:
        """The summary's cells, in the metric's order."""
        return [c for name in self.headline if (c := self.cell(name)) is not None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every cell, the headline names and the notes."""
        return {
            "metric": self.metric,
            "title": self.title,
            "headline": self.headline,
            "cells": [c.to_dict() for c in self.cells],
            "notes": self.notes,
        }


@dataclass
class Graded:
    """What a metric is computed from: one run's graded answers and, where there are any, its records."""

    answers: Sequence[GradedAnswer]
    """One per question: the unrotated posing's (what the MMAD table scores)."""
    records: Sequence[Record] = ()
    """The latest record of every posing (rotations included); empty for an official answers json."""
    policy: Policy = Policy.STRICT
    bootstrap: Bootstrap | None = None
    """Set when the caller asked for intervals (`--ci`): a metric that can give them does."""
    shared: dict[str, Any] = field(default_factory=dict)
    """Figures metrics share so that they are computed once (the MMAD table under each policy)."""
    spent_usd: float | None = None
    """What the run paid in all, as run.json's usage counts it (every session, and requests whose records a
    later one replaced); None where unknown or not a run folder. The records count only their latest posing."""


class Metric(ABC):
    """A metric: a name (unique in the registry, used as its key in --json), a title, and `compute`."""

    name: str = ""
    title: str = ""

    @abstractmethod
    def compute(self, graded: Graded) -> MetricResult | None:
        """The metric's cells for this run, or None where it does not apply."""

    def result(self, cells: Sequence[Cell], *, headline: Sequence[str] = (), notes: Sequence[str] = ()) -> MetricResult:
        """A result under this metric's name and title (``headline`` defaults to every cell)."""
        names = list(headline) if headline else [c.name for c in cells]
        return MetricResult(self.name, self.title, list(cells), names, list(notes))
