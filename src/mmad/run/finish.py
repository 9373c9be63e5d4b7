"""The last stage of a run: compact the records, say what became of the run, score it.

Writing report files is the caller's business (`mmad.evaluate`, the CLI): the finish stage
returns the table and the graded answers, and records the outcome in run.json.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmad.errors import RunError
from mmad.records.folder import Completeness
from mmad.records.record import Record, Status
from mmad.run.config import RunConfig
from mmad.run.engine import EngineStats
from mmad.run.interrupts import interrupt_cause
from mmad.run.ledger import session_usage
from mmad.run.manifest import Usage, write_manifest
from mmad.run.prepare import PreparedRun
from mmad.run.recipes import recipe_policy, recipe_policy_note
from mmad.score.answers import GradedAnswer, any_reply, graded_from_record
from mmad.score.circular import CircularReport, CircularTally
from mmad.score.table import ScoreTable, score_answers

RunStatus = Literal["complete", "partial", "interrupted", "failed"]


@dataclass(frozen=True)
class FailureCount:
    """How many selected questions failed with one error class, and the latest message."""

    error_class: str
    count: int
    message: str

    def describe(self) -> str:
        """'3 × timeout: no reply from ... within 120 s'."""
        return f"{self.count} × {self.error_class}: {self.message}"


@dataclass
class RunResult:
    """What an evaluation left behind."""

    run_dir: Path
    config: RunConfig
    table: ScoreTable
    graded: list[GradedAnswer]
    stats: EngineStats
    status: RunStatus
    completeness: Completeness
    card: dict[str, Any]
    failures: list[FailureCount] = field(default_factory=list)
    circular: CircularReport | None = None
    unparsed: list[str] = field(default_factory=list)
    """A few replies the parser could not read (the count is in the table)."""
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every selected question was asked, and no request failed."""
        return self.status == "complete"

    @property
    def nothing_answered(self) -> bool:
        """No request got a reply: a table would hold only zeros, which are not results."""
        return not any_reply(self.graded)


def _usage(stats: EngineStats) -> Usage:
    return session_usage(stats)


@dataclass
class _Outcome:
    """What the selection's latest records say, counted in one pass over records.jsonl."""

    graded: list[GradedAnswer] = field(default_factory=list)
    present: int = 0
    failed: int = 0
    failures: list[FailureCount] = field(default_factory=list)
    circular: CircularReport | None = None
    unparsed: list[str] = field(default_factory=list)
    snapshots: Counter[str] = field(default_factory=Counter)


UNPARSED_EXAMPLES = 3


async def finish(
    prepared: PreparedRun, stats: EngineStats, *, interrupted: bool = False, failed: bool = False
) -> RunResult:
    """Close the run: compact records.jsonl, write the outcome to run.json, score the latest records.
    ``failed``: the run could not start asking (its engine failed to build; ``stats.stopped_reason`` says why)."""
    store = prepared.store
    try:
        if store.lost():  # finishing would write a run.json over answers that are gone, and count them
            msg = (
                f"the run folder {prepared.run_dir} was deleted (or its records.jsonl replaced) while the run "
                "wrote it: the answers of this session are gone; start the run again"
            )
            raise RunError(msg)
        store.compact(prepared.order)
        outcome = _read_outcome(prepared)
        missing = len(prepared.order) - outcome.present
        status: RunStatus
        if interrupted:
            status = "interrupted"
        elif failed:
            status = "failed"
        elif missing or outcome.failed or stats.stopped_reason is not None:
            status = "partial"
        else:
            status = "complete"
        usage = _usage(stats)
        previous = prepared.manifest.usage if prepared.resumed else None
        if previous is not None:  # a resumed run adds to what earlier sessions spent
            usage = usage.plus(previous)
        # beside the alias in config.model: the models the provider says answered
        manifest = prepared.manifest.finished(
            status,
            missing=missing,
            failed=outcome.failed,
            stopped_reason=f"interrupted ({interrupt_cause()})" if interrupted else stats.stopped_reason,
            usage=usage,
            snapshots=dict(outcome.snapshots.most_common()),
        )
        prepared.manifest = manifest
        write_manifest(prepared.run_dir, manifest)
    finally:
        store.close()
        await prepared.model.aclose()
        if prepared.judge is not None:
            await prepared.judge.aclose()
    graded = outcome.graded
    completeness = Completeness(
        selected=prepared.selection.n_questions,
        in_benchmark=prepared.benchmark.n_questions,
        asked=len(graded),
        answered=sum(g.failure is None for g in graded),
        failed=sum(g.failure == Status.ERROR.value for g in graded),
    )
    return RunResult(
        run_dir=prepared.run_dir,
        config=prepared.config,
        table=_headline_table(graded, prepared.config.recipe),
        graded=graded,
        stats=stats,
        status=status,
        completeness=completeness,
        card=dict(manifest.card or {}),
        failures=outcome.failures,
        circular=outcome.circular,
        unparsed=outcome.unparsed,
    )


def _headline_table(graded: list[GradedAnswer], recipe: str | None) -> ScoreTable:
    """The run's table: under its recipe's policy (the one that made the published rows), else strict."""
    table = score_answers(graded, recipe_policy(recipe))
    if recipe:
        table.notes.insert(0, recipe_policy_note(recipe))
    return table


def _read_outcome(prepared: PreparedRun) -> _Outcome:
    """The graded answers, counts, failures and circular report of the selection, read record by
    record from the compacted file (one line per posing): the records themselves are not kept, so
    finishing a run of any size holds little more than one small answer per question."""
    wanted = set(prepared.order)
    outcome = _Outcome()
    counts: Counter[str] = Counter()
    messages: dict[str, str] = {}
    circular = CircularTally() if prepared.config.prompt.circular else None
    path = prepared.store.records_file
    if path.exists():
        with path.open("rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = Record.model_validate_json(line)
                if record.key not in wanted:
                    continue
                outcome.present += 1
                snapshot = record.extra.get("model_snapshot")
                if isinstance(snapshot, str):
                    outcome.snapshots[snapshot] += 1
                if record.status is Status.ERROR:
                    outcome.failed += 1
                if record.plain:
                    outcome.graded.append(graded_from_record(record))
                    if record.status is Status.UNPARSED and len(outcome.unparsed) < UNPARSED_EXAMPLES:
                        outcome.unparsed.append(record.raw_reply or "")
                    if record.status is Status.ERROR:
                        error_class = record.error_class or "error"
                        counts[error_class] += 1
                        messages[error_class] = record.error_message or ""
                if circular is not None:
                    circular.add(record)
    outcome.failures = [FailureCount(cls, n, messages[cls]) for cls, n in counts.most_common()]
    outcome.circular = circular.report() if circular is not None else None
    return outcome
