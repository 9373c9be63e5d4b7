"""The rows: a scored run or a published result turned into one leaderboard line with its figures and marks."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from mmad.data.schema import SUBTASKS, Subtask
from mmad.report.leaderboard.model import LeaderboardRow
from mmad.report.leaderboard.rules import (
    card_summary,
    clean_split_marks,
    contamination_group,
    is_subset_run,
    left_out_by_split,
    legacy_protocol,
    run_card_hash,
    run_group,
)
from mmad.run.folder import RunFolder, open_run
from mmad.run.scoring import ScoredRun, score_run
from mmad.score.answers import covers_text
from mmad.score.metrics import Bootstrap
from mmad.score.published import PublishedEntry
from mmad.score.table import Policy, ScoreTable


def view_figures(
    cells: Mapping[str, Mapping[Subtask, float | None]],
    datasets: Sequence[str],
    subtasks: Sequence[Subtask],
    *,
    zero_for_missing: bool = False,
    declined: Collection[tuple[str, Subtask]] = (),
) -> tuple[float | None, dict[str, float | None]]:
    """(average, per-subtask averages) over the chosen dataset rows and subtask columns.

    The MMAD rule: each dataset row's average over its subtasks, then the unweighted mean over
    rows; a subtask's figure is its mean over rows. Missing cells are skipped (strict) or count as
    0 (upstream), as `score_answers` does; a ``declined`` (dataset, subtask) cell is skipped under both.
    """
    chosen_rows = [name for name in cells if not datasets or name in datasets]
    columns = list(subtasks) or list(SUBTASKS)

    def mean(values: Iterable[float | None]) -> float | None:
        kept = [0.0 if v is None else v for v in values] if zero_for_missing else [v for v in values if v is not None]
        return fmean(kept) if kept else None

    present = [s for s in columns if any(s in cells[name] for name in chosen_rows)]

    def has(name: str, subtask: Subtask) -> bool:
        return subtask in cells[name] and (name, subtask) not in declined

    per_subtask = {s.value: mean(cells[name].get(s) for name in chosen_rows if has(name, s)) for s in present}
    row_averages = [
        mean(cells[name].get(s) for s in present if has(name, s))
        for name in chosen_rows
        if any(has(name, s) for s in present)
    ]
    return mean(row_averages), per_subtask


def _table_cells(table: ScoreTable) -> dict[str, dict[Subtask, float | None]]:
    return {row.name: dict(row.cells) for row in table.rows}


def _declined(table: ScoreTable) -> set[tuple[str, Subtask]]:
    return {(row.name, s) for row in table.rows for s in row.declined}


def _detection(table: ScoreTable, datasets: Sequence[str]) -> tuple[float | None, float | None]:
    rows = [r.detection_metrics() for r in table.rows if not datasets or r.name in datasets]
    overkill = [m["Overkill"] for m in rows if m["Overkill"] is not None]
    miss = [m["Miss"] for m in rows if m["Miss"] is not None]
    return (fmean(overkill) if overkill else None, fmean(miss) if miss else None)


@dataclass
class RunScores(ScoredRun):
    """A run folder opened and scored (`mmad.run.scoring.score_run`): a leaderboard row and a report section."""

    run: RunFolder  # always a folder here, never a bare answers file

    @classmethod
    def of(
        cls,
        run: RunFolder | str | os.PathLike[str],
        *,
        policy: Policy | str | None = None,
        bootstrap: Bootstrap | None = None,
    ) -> RunScores:
        """Open (when given a path) and score a run."""
        folder = run if isinstance(run, RunFolder) else open_run(run)
        scored = score_run(folder, policy=policy, bootstrap=bootstrap)
        return cls(scored.source, scored.data, run=folder)


def run_row(
    scores: RunScores, *, datasets: Sequence[str] = (), subtasks: Sequence[Subtask] = (), policy: Policy = Policy.STRICT
) -> LeaderboardRow:
    """The leaderboard row of one scored run."""
    run = scores.run
    completeness = run.completeness
    strict, strict_subtasks = view_figures(_table_cells(scores.strict), datasets, subtasks)
    upstream, upstream_subtasks = view_figures(
        _table_cells(scores.upstream), datasets, subtasks, zero_for_missing=True, declined=_declined(scores.upstream)
    )
    chosen = scores.strict if policy is Policy.STRICT else scores.upstream
    overkill, miss = _detection(chosen, datasets)
    scored = scores.with_policy(policy)
    group, label = run_group(run)
    card_hash = run_card_hash(run)
    card = run.card
    marks: list[str] = []
    if not card:
        marks.append("no protocol card: grouped by the settings in run.json")
    split_marks = clean_split_marks(card)
    marks.extend(split_marks)
    if not completeness.complete:
        failed = f", {completeness.failed} requests failed" if completeness.failed else ""
        status = f" (run {run.recorded_status})" if run.recorded_status not in ("complete", "unknown") else ""
        marks.append(f"incomplete{status}: {completeness.describe()}{failed}")
    subset = is_subset_run(run)
    if subset:
        marks.append(
            f"subset: {completeness.selected:,} of {completeness.in_benchmark:,} questions selected"
            if completeness.subset
            else "subset: run with --limit/--datasets/--categories/--subtasks"
        )
    score = strict if policy is Policy.STRICT else upstream
    per_subtask = strict_subtasks if policy is Policy.STRICT else upstream_subtasks
    covers = [s.value for s in SUBTASKS if per_subtask.get(s.value) is not None]
    # Declined within this view: outside it (--subtask AD --subtask DL for the expert) its figures cover
    # what every other row's do, and it is ranked like them.
    in_view = [r for r in scores.strict.rows if not datasets or r.name in datasets]
    declined = [s for s in SUBTASKS if (not subtasks or s in subtasks) and any(s in r.declined for r in in_view)]
    if declined:
        shorts = ", ".join(s.short for s in declined)
        marks.append(f"does not answer {shorts} (declined every question): its average covers {covers_text(covers)}")
    if score is None:
        marks.append("no questions in this view")
    return LeaderboardRow(
        name=run.model,
        kind="run",
        source=str(run.path),
        group=group,
        group_label=label,
        protocol=f"card {card_hash[:12] if card_hash else '(no hash)'}: {card_summary(card)}"
        if card
        else legacy_protocol(run),
        card_hash=card_hash,
        completeness=completeness.describe(),
        score=score,
        strict=strict,
        upstream=upstream,
        subtasks=per_subtask,
        overkill=overkill,
        miss=miss,
        asked=completeness.asked,
        answered=completeness.answered,
        in_benchmark=completeness.in_benchmark,
        eligible=completeness.complete and not subset and score is not None and not declined,
        marks=marks,
        card=card,
        covers=covers,
        question_set=_run_question_set(completeness.selected, completeness.in_benchmark, card),
        shots=_card_shots(card),
        clean_split=split_marks,
        metrics={column.key: column.cell.value for column in scored.summary()},
        intervals=_view_intervals(scored, datasets, subtasks),
    )


VIEW_INTERVALS = ("Average", *(s.value for s in SUBTASKS), "Overkill", "Miss")
"""The figures of a row that carry an interval under --ci: its score, each subtask's, Overkill and Miss."""


def _view_intervals(scored: ScoredRun, datasets: Sequence[str], subtasks: Sequence[Subtask]) -> dict[str, list[float]]:
    """The intervals of the row's own figures, in the view it is shown in: the view's averages taken over each
    image-bootstrap resample of the table's cells by the rule `view_figures` (and `_detection`) apply to the
    table itself, so a view narrowed with --dataset/--subtask has the intervals of its own figures."""
    intervals = scored.intervals
    if intervals is None:
        return {}
    named = intervals.view(datasets, subtasks)
    return {name: [v.low, v.high] for name in VIEW_INTERVALS if (v := named.get(name)) is not None}


def published_row(
    entry: PublishedEntry, *, datasets: Sequence[str] = (), subtasks: Sequence[Subtask] = ()
) -> LeaderboardRow | None:
    """The leaderboard row of a published result; None when it has no figure for the view asked."""
    if entry.scope == "detection-only" and (datasets or subtasks):
        return None  # one figure for anomaly discrimination: nothing to narrow
    overkill = entry.detection.get("Overkill")
    miss = entry.detection.get("Miss")
    if datasets:
        if not entry.datasets:
            return None
        cells = {name: {s: row.get(s.value) for s in SUBTASKS} for name, row in entry.datasets.items()}
        if not any(name in datasets for name in cells):
            return None
        score, per_subtask = view_figures(cells, datasets, subtasks)
        chosen = [entry.datasets[name] for name in entry.datasets if name in datasets]
        overkill = _mean_of(row.get("Overkill") for row in chosen)
        miss = _mean_of(row.get("Miss") for row in chosen)
    elif subtasks:
        if any(entry.subtasks.get(s.value) is None for s in subtasks):
            return None
        per_subtask = {s.value: entry.subtasks[s.value] for s in subtasks}
        score = fmean(v for v in per_subtask.values() if v is not None)
    else:
        score, per_subtask = entry.average, {s.value: entry.subtasks.get(s.value) for s in SUBTASKS}
    marks: list[str] = []
    if entry.coverage == "subset":
        marks.append(f"subset: {(entry.coverage_note or 'part of the benchmark').split(';')[0]}")
    elif entry.coverage == "debug-sample":
        marks.append(f"subset: {entry.question_set}")
    elif entry.coverage == "unknown" and entry.ranked:
        marks.append("coverage not stated by the source")
    contamination = entry.contamination
    if contamination == "saw MMAD":
        marks.append(f"trained on MMAD: {entry.trained_text}")
    elif contamination == "saw MMAD's sources":
        # trained_text would name the source datasets a second time
        marks.append(
            "trained on MMAD's source datasets" + (f" ({entry.trained_source})" if entry.trained_source else "")
        )
    elif contamination == "possible":
        marks.append("may have seen MMAD's test products")
    if entry.scope == "detection-only":
        marks.append(f"detection only: {entry.metric or 'anomaly discrimination'}")
    if not entry.ranked:
        marks.append("reference line, not ranked" if entry.kind == "human" else "its own protocol: not ranked")
    if entry.notes:
        marks.append(entry.notes)
    official = entry.csv is not None or entry.datasets
    group, group_label = contamination_group(
        f"published:{entry.group}", f"published: {entry.group_label}", contamination
    )
    coverage = {
        "full": "full (as published)",
        "subset": f"subset: {entry.coverage_note}",
        "debug-sample": f"subset: {entry.question_set}",
        "unknown": "not stated",
    }[entry.coverage]
    return LeaderboardRow(
        name=entry.system,
        kind="published",
        source=entry.source,
        group=group,
        group_label=group_label,
        protocol=entry.protocol_text,
        card_hash=None,
        completeness=coverage,
        score=score,
        strict=None,
        upstream=score if official else None,
        subtasks=per_subtask,
        overkill=overkill,
        miss=miss,
        eligible=entry.ranked and entry.coverage not in {"subset", "debug-sample"} and score is not None,
        marks=marks,
        seen_test_products=f"{entry.seen_test_products}: {entry.seen_note}"
        if entry.seen_note
        else entry.seen_test_products,
        citation=entry.citation,
        shots=entry.shots,
        question_set=entry.question_set,
        trained_on=entry.trained_text,
        contamination=contamination,
        table="detection-only" if entry.scope == "detection-only" else "main",
        figure=entry.figure,
    )


def _run_question_set(selected: int, in_benchmark: int, card: Mapping[str, Any] | None) -> str:
    left_out = left_out_by_split(card)
    split = f" (after --errata drop/--exclude left out {left_out:,})" if left_out else ""
    if selected >= in_benchmark:
        return f"all {in_benchmark:,} questions of its benchmark"
    return f"{selected:,} of the {in_benchmark:,} questions of its benchmark{split}"


def _card_shots(card: Mapping[str, Any] | None) -> int | None:
    shots = (card or {}).get("shots")
    return shots if isinstance(shots, int) else None


def _mean_of(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return fmean(kept) if kept else None
