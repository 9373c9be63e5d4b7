"""Open a run and score it: the one way every command (`score`, `compare`, `leaderboard`, `report`,
`sweep`) turns a run folder, a records.jsonl or an official answers json into figures.

`score_run` reads the answers once, and the `ScoredRun` it returns computes, each once and only when
asked, the MMAD table under either policy, the bootstrap intervals (when asked for) and every registered
metric (`mmad.score.metrics`), so that every command shows the same numbers for the same run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmad._io import collector_paused
from mmad.errors import AnswersFormatError
from mmad.records.folder import RECORDS_FILE, RunRecords, is_run_folder, open_records
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
class ScoredRun:
    """A run (or answers file) opened and scored: its answers, and its figures computed on demand."""

    source: Path
    run: RunRecords | None
    graded: Graded
    _metrics: list[MetricResult] | None = field(default=None, repr=False)

    def with_policy(self, policy: Policy | str) -> ScoredRun:
        """The same answers scored under another policy (the tables already computed are kept)."""
        chosen = Policy(policy)
        if chosen is self.policy:
            return self
        kept = {k: v for k, v in self.graded.shared.items() if k.startswith("table:") or k == "operating"}
        graded = Graded(self.graded.answers, self.graded.records, chosen, self.graded.bootstrap, kept)
        return ScoredRun(self.source, self.run, graded)

    @property
    def answers(self) -> list[GradedAnswer]:
        """One graded answer per question (the unrotated posing)."""
        return list(self.graded.answers)

    @property
    def policy(self) -> Policy:
        """The policy of the headline table and the metrics."""
        return self.graded.policy

    @property
    def has_answers(self) -> bool:
        """Some request got a reply; without one, the run's figures would be zeros that mean nothing."""
        return any_reply(self.graded.answers)

    def table(self, policy: Policy | str | None = None) -> ScoreTable:
        """The MMAD table under ``policy`` (the run's policy by default)."""
        return table_of(self.graded, None if policy is None else Policy(policy))

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
        """The table's image-bootstrap intervals, when the run was scored with a bootstrap."""
        return intervals_of(self.graded)

    @property
    def operating(self) -> OperatingReport:
        """Anomaly Discrimination's operating points (from scores where there are any, else the letters)."""
        return operating_of(self.graded)

    @property
    def metrics(self) -> list[MetricResult]:
        """Every registered metric that applies to this run, in the registry's order."""
        if self._metrics is None:
            with collector_paused():
                self._metrics = compute_metrics(self.graded)
        return self._metrics

    def metric(self, name: str) -> MetricResult | None:
        """One metric's result, or None where it does not apply."""
        return next((m for m in self.metrics if m.metric == name), None)

    def summary(self) -> list[SummaryCell]:
        """Every metric's headline cells: the columns each command shows for a run."""
        return [
            SummaryCell(f"{m.metric}:{c.name}", m.metric, m.title, c) for m in self.metrics for c in m.headline_cells()
        ]


def _answers_from(path: Path) -> tuple[RunRecords | None, list[GradedAnswer], list[Record]]:
    if path.is_dir():
        run = open_records(path)
    elif path.name == RECORDS_FILE and is_run_folder(path.parent):
        run = open_records(path.parent)
    elif path.suffix == ".jsonl":
        latest = list(latest_records(read_records(path)).values())
        return None, graded_from_records(latest), list(latest)
    elif path.suffix == ".json":
        return None, read_official_answers(path), []
    else:
        msg = f"{path}: give a run directory, a records.jsonl or an official answers .json"
        raise AnswersFormatError(msg)
    return run, graded_from_records(run.records), list(run.latest.values())


def score_run(
    source: RunRecords | str | os.PathLike[str],
    *,
    policy: Policy | str | None = None,
    bootstrap: Bootstrap | None = None,
) -> ScoredRun:
    """Open a run folder, a records.jsonl or an official answers json, and score it.

    ``policy`` is the headline table's and the metrics' (strict by default; callers that honour a
    recipe's policy pass it). ``bootstrap`` asks for 95% intervals wherever a metric can give them.
    Nothing is computed until asked for.
    """
    run: RunRecords | None
    if isinstance(source, RunRecords):
        path, run = source.path, source
        with collector_paused():  # tens of thousands of small acyclic objects: the collector would only rescan them
            answers, records = graded_from_records(run.records), list(run.latest.values())
    else:
        path = Path(source)
        if not path.exists():
            msg = f"{path} does not exist; give a run directory, a records.jsonl or an official answers .json"
            raise AnswersFormatError(msg)
        with collector_paused():
            run, answers, records = _answers_from(path)
    graded = Graded(
        answers=answers,
        records=records,
        policy=Policy(policy) if policy is not None else Policy.STRICT,
        bootstrap=bootstrap,
    )
    return ScoredRun(path, run, graded)
