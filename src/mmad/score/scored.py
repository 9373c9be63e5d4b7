"""Score a run's answers once: the MMAD table under either policy, the bootstrap intervals (when asked
for) and every registered metric (`mmad.score.metrics`), each computed only when first asked for.

`mmad.run.scoring.score_run` opens a run folder, a records.jsonl or an official answers json into a
`Scored` (with the run beside it); `score`, `compare`, `leaderboard`, `report` and `sweep` all go
through it, so every command shows the same numbers for the same run.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

from mmad._io import collector_paused
from mmad.errors import AnswersFormatError
from mmad.records.record import Record, latest_records, read_records
from mmad.score.answers import GradedAnswer, any_reply, graded_from_records, read_official_answers
from mmad.score.metrics import Bootstrap, Cell, Graded, MetricResult, compute_metrics
from mmad.score.metrics.builtin import intervals_of, operating_of, table_of
from mmad.score.table import Policy, ScoreTable

if TYPE_CHECKING:
    from mmad.score.intervals import TableIntervals
    from mmad.score.operating import OperatingReport


@dataclass(frozen=True)
class SummaryCell:
    """One column of a run's metric summary: ``key`` is ``metric:cell`` (stable, for json and csv)."""

    key: str
    metric: str
    title: str
    cell: Cell


@dataclass
class Scored:
    """Answers (of a run or an answers file) and their figures, computed on demand."""

    source: Path
    data: Graded
    _metrics: list[MetricResult] | None = field(default=None, init=False, repr=False)

    def with_policy(self, policy: Policy | str) -> Self:
        """The same answers scored under another policy (the tables already computed are kept)."""
        chosen = Policy(policy)
        if chosen is self.policy:
            return self
        kept = {k: v for k, v in self.data.shared.items() if k.startswith("table:") or k == "operating"}
        graded = Graded(self.data.answers, self.data.records, chosen, self.data.bootstrap, kept, self.data.spent_usd)
        return dataclasses.replace(self, data=graded)

    @property
    def answers(self) -> list[GradedAnswer]:
        """One graded answer per question (the unrotated posing)."""
        answers = self.data.answers
        return answers if isinstance(answers, list) else list(answers)

    @property
    def graded(self) -> list[GradedAnswer]:
        """The graded answers (as `answers`)."""
        return self.answers

    @property
    def policy(self) -> Policy:
        """The policy of the headline table and the metrics."""
        return self.data.policy

    @property
    def has_answers(self) -> bool:
        """Some request got a reply; without one, the run's figures would be zeros that mean nothing."""
        return any_reply(self.data.answers)

    def table(self, policy: Policy | str | None = None) -> ScoreTable:
        """The MMAD table under ``policy`` (the run's policy by default)."""
        return table_of(self.data, None if policy is None else Policy(policy))

    @property
    def strict(self) -> ScoreTable:
        """The table under the strict policy."""
        return self.table(Policy.STRICT)

    @property
    def upstream(self) -> ScoreTable:
        """The table under the upstream policy (the official summary.py's)."""
        return self.table(Policy.UPSTREAM)

    @property
    def intervals(self) -> TableIntervals | None:
        """The table's image-bootstrap intervals, when the answers were scored with a bootstrap."""
        return intervals_of(self.data)

    @property
    def operating(self) -> OperatingReport:
        """Anomaly Discrimination's operating points (from scores where there are any, else the letters)."""
        return operating_of(self.data)

    @property
    def metrics(self) -> list[MetricResult]:
        """Every registered metric that applies to these answers, in the registry's order."""
        if self._metrics is None:
            with collector_paused():
                self._metrics = compute_metrics(self.data)
        return self._metrics

    def metric(self, name: str) -> MetricResult | None:
        """One metric's result, or None where it does not apply."""
        return next((m for m in self.metrics if m.metric == name), None)

    def summary(self) -> list[SummaryCell]:
        """Every metric's headline cells: the columns each command shows for a run."""
        return [
            SummaryCell(f"{m.metric}:{c.name}", m.metric, m.title, c) for m in self.metrics for c in m.headline_cells()
        ]


def graded_of(
    records: list[Record], *, policy: Policy | str | None = None, bootstrap: Bootstrap | None = None
) -> Graded:
    """A metric's input from a run's records (every record written; the latest of each posing counts)."""
    with collector_paused():  # tens of thousands of small acyclic objects: the collector would only rescan them
        latest = list(latest_records(records).values())
        answers = graded_from_records(latest)
    return Graded(answers, latest, Policy(policy) if policy is not None else Policy.STRICT, bootstrap)


def score_answers_file(
    path: str | os.PathLike[str], *, policy: Policy | str | None = None, bootstrap: Bootstrap | None = None
) -> Scored:
    """Score a records.jsonl or an official answers json that is not in a run folder."""
    source = Path(path)
    if source.suffix == ".jsonl":
        return Scored(source, graded_of(read_records(source), policy=policy, bootstrap=bootstrap))
    if source.suffix == ".json":
        chosen = Policy(policy) if policy is not None else Policy.STRICT
        return Scored(source, Graded(read_official_answers(source), (), chosen, bootstrap))
    msg = f"{path}: give a run directory, a records.jsonl or an official answers .json"
    raise AnswersFormatError(msg)
