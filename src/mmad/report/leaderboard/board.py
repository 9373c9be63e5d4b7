"""The board: runs and published rows gathered, filtered to a view and ranked."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmad.data.schema import SOURCE_DATASETS, Subtask
from mmad.errors import ConfigError
from mmad.report.leaderboard.model import Leaderboard, LeaderboardRow
from mmad.report.leaderboard.ranking import rank_rows
from mmad.report.leaderboard.rows import RunScores, published_row, run_row
from mmad.run.folder import RunFolder
from mmad.score.metrics import Bootstrap
from mmad.score.published import PublishedEntry, leakage_notes, load_published_results
from mmad.score.table import Policy


def _matches(row: LeaderboardRow, protocol: str) -> bool:
    wanted = protocol.strip().lower()
    if wanted == "published":
        return row.kind == "published"
    if wanted in {"run", "runs", "mine"}:
        return row.kind == "run"
    haystack = " ".join([row.group, row.group_label, row.protocol, row.card_hash or ""]).lower()
    return wanted in haystack


def parse_subtasks(names: Iterable[str]) -> list[Subtask]:
    """Subtasks from their names, official columns or two-letter forms; a ConfigError names a bad one."""
    chosen = []
    for name in names:
        try:
            chosen.append(Subtask.parse(name))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    return chosen


def check_datasets(datasets: Iterable[str], runs: Sequence[RunScores] = ()) -> None:
    """A ConfigError for a dataset name that is neither an MMAD source nor a dataset of the runs (a typo
    would otherwise give an empty view)."""
    known = list(dict.fromkeys([*SOURCE_DATASETS, *(row.name for scores in runs for row in scores.strict.rows)]))
    unknown = [name for name in datasets if name not in known]
    if unknown:
        msg = (
            f"--dataset {', '.join(unknown)}: no such dataset; choose from {', '.join(known)} "
            "(the MMAD sources and the datasets of the runs given)"
        )
        raise ConfigError(msg)


def build_leaderboard(
    runs: Sequence[RunScores | RunFolder | str | os.PathLike[str]] = (),
    published: Sequence[PublishedEntry] | None = None,
    *,
    datasets: Sequence[str] = (),
    subtasks: Sequence[Subtask | str] = (),
    protocol: str | None = None,
    policy: Policy | str = Policy.STRICT,
    bootstrap: Bootstrap | None = None,
) -> Leaderboard:
    """The leaderboard of some runs beside the published results (the shipped ones by default).

    ``datasets`` and ``subtasks`` narrow the figures to those rows and columns; ``protocol`` keeps
    the rows whose protocol or group mentions it ("published" and "runs" select by kind).
    """
    policy = Policy(policy)
    chosen_subtasks = [s if isinstance(s, Subtask) else Subtask.parse(s) for s in subtasks]
    entries = load_published_results() if published is None else list(published)
    rows: list[LeaderboardRow] = []
    notes: list[str] = []
    unanswered = []
    all_scores = [
        run if isinstance(run, RunScores) else RunScores.of(run, policy=policy, bootstrap=bootstrap) for run in runs
    ]
    check_datasets(datasets, all_scores)
    for scores in all_scores:
        if not scores.has_answers:
            unanswered.append(str(scores.run.path))
            continue
        rows.append(run_row(scores, datasets=datasets, subtasks=chosen_subtasks, policy=policy))
    if unanswered:
        notes.append(
            f"{len(unanswered)} runs have no answer (every request failed or none was asked) and are left out: "
            f"{', '.join(unanswered)}; see their records.jsonl, then `mmad eval --resume RUN`"
        )
    left_out = []
    for entry in entries:
        row = published_row(entry, datasets=datasets, subtasks=chosen_subtasks)
        if row is None:
            left_out.append(entry.system)
        else:
            rows.append(row)
    if left_out:
        notes.append(
            f"{len(left_out)} published rows have no figure for this view (per-dataset or per-subtask numbers "
            f"were not published) and are left out: {', '.join(left_out)}"
        )
    if bootstrap is not None and (datasets or chosen_subtasks):
        notes.append(
            "--ci: each run's intervals are this view's (a bootstrap over the run's images, the view's figures "
            "recomputed from each resample)"
        )
    if protocol:
        rows = [r for r in rows if _matches(r, protocol)]
    names = [r.name for r in rows if r.kind == "run"]
    for row in rows:
        if row.kind == "run" and names.count(row.name) > 1:
            row.name = f"{row.name} ({Path(row.source).name})"
    rows = rank_rows(rows)
    if any(r.contaminated for r in rows):
        notes.append(
            "Rows of systems trained on MMAD (its questions or images) or on its source datasets are listed apart "
            "and ranked, if at all, only among themselves: never with rows of systems not known to have seen it."
        )
    if any(r.table == "detection-only" for r in rows):
        notes.append(
            "Anomaly-discrimination-only figures (a source's own metric for one subtask) are in a table of their "
            "own: they are not seven-subtask averages."
        )
    if entries:  # the systems behind no row: said wherever published rows are shown
        unseen = [f"{n.system} ({n.note})" for n in leakage_notes() if n.trained_on]
        if unseen:
            notes.append("Trained on MMAD or its sources, with no figure here: " + "; ".join(unseen) + ".")
    notes.append(
        "Ranks count only within a group of comparable rows (same benchmark and protocol card for runs; the same "
        "source and protocol for published rows). Published figures were computed by their sources; runs are "
        f"ranked by their {policy.value} average."
    )
    return Leaderboard(
        rows=rows,
        groups={r.group: r.group_label for r in rows},
        policy=policy,
        datasets=list(datasets),
        subtasks=[s.value for s in chosen_subtasks],
        protocol=protocol,
        notes=notes,
    )
