"""The leaderboard: the published results and your runs in one table, ranked only among comparable rows.

Every row carries its protocol (a run's protocol card, or "published: protocol as stated by the
source"), its completeness and both averages (strict and upstream). Rows are ranked only within a
comparable group: published rows by the group their catalog gives them, runs by benchmark and
protocol card. A run that is incomplete (interrupted, failed requests) or a subset (--limit,
--dataset, ...) is never ranked: it is listed below the ranked rows with the reason, so a
48-question interrupted run can never sit above the full run of the same model.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

from mmad.data.schema import SOURCE_DATASETS, SUBTASKS, Subtask
from mmad.errors import ConfigError
from mmad.records.folder import RunFolder, open_run
from mmad.report.tables import fmt
from mmad.score.answers import GradedAnswer, any_reply, covers_text, graded_from_record
from mmad.score.published import PublishedEntry, load_published_results
from mmad.score.table import Policy, ScoreTable, score_answers

NO_CARD = "no card"
RUN_SELECTION_KEYS = ("limit", "datasets", "categories", "subtasks")


@dataclass
class LeaderboardRow:
    """One line of the leaderboard: a run of yours or a published result."""

    name: str
    kind: Literal["run", "published"]
    source: str
    group: str
    group_label: str
    protocol: str
    card_hash: str | None
    completeness: str
    score: float | None  # the figure the ranking uses
    strict: float | None
    upstream: float | None
    subtasks: dict[str, float | None]
    overkill: float | None
    miss: float | None
    asked: int | None = None
    answered: int | None = None
    in_benchmark: int | None = None
    eligible: bool = False
    rank: int | None = None
    marks: list[str] = field(default_factory=list)
    seen_test_products: str = "none known"
    citation: str = ""
    card: dict[str, Any] = field(default_factory=dict)
    covers: list[str] = field(default_factory=list)
    """For a run, the subtasks its score is the mean of (a declined subtask is missing, not 0); for a
    published row, empty: its figures are the source's."""

    @property
    def ranked(self) -> bool:
        """Whether the row holds a rank in its group."""
        return self.rank is not None


@dataclass
class Leaderboard:
    """The rows (ranked first, then the rest), the groups they form, and what was filtered."""

    rows: list[LeaderboardRow]
    groups: dict[str, str]
    policy: Policy
    datasets: list[str] = field(default_factory=list)
    subtasks: list[str] = field(default_factory=list)
    protocol: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[LeaderboardRow]:
        """The rows that hold a rank within their group."""
        return [r for r in self.rows if r.ranked]

    @property
    def unranked(self) -> list[LeaderboardRow]:
        """The rows shown but not ranked (incomplete, subset, other protocol, reference lines)."""
        return [r for r in self.rows if not r.ranked]

    def group_letters(self) -> dict[str, str]:
        """A short tag per group (A, B, ...) in the order the groups first appear."""
        letters: dict[str, str] = {}
        for row in self.rows:
            if row.group not in letters:
                index = len(letters)
                letters[row.group] = chr(65 + index % 26) + ("" if index < 26 else str(index // 26))
        return letters


# ----------------------------------------------------------------------------------------- views


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


# ------------------------------------------------------------------------------------------ runs


def card_summary(card: Mapping[str, Any], limit: int = 240) -> str:
    """A protocol card on one line: key=value pairs, nested values as compact json."""
    parts = []
    for key, value in card.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
        parts.append(f"{key}={text}")
    line = "; ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_card_hash(run: RunFolder) -> str | None:
    """The run's protocol card hash, when run.json has one."""
    value = run.meta.get("card_hash")
    return str(value) if value else None


def _legacy_settings(run: RunFolder) -> dict[str, Any]:
    """What decides comparability for a run made before protocol cards: the settings run.json kept."""
    return {
        "protocol": run.meta.get("protocol") or {},
        "images": run.meta.get("images"),
        "strategies": run.meta.get("strategies") or [],
        **{key: run.setting(key) for key in ("parser", "answer_from", "judge", "likelihood", "text_only", "knowledge")},
    }


def _legacy_protocol(run: RunFolder) -> str:
    settings = _legacy_settings(run)
    protocol = settings["protocol"]
    pieces = [
        str(protocol.get("variant", "?")),
        f"{protocol.get('shots', '?')}-shot",
        f"images: {settings['images'] or '?'}",
        f"parser: {settings['parser'] or '?'}",
        f"strategies: {', '.join(settings['strategies']) or 'none'}",
    ]
    return f"{NO_CARD} (run made before protocol cards): " + ", ".join(pieces)


def is_subset_run(run: RunFolder) -> bool:
    """Whether the run asked only part of its benchmark, from its counts or, in older run.json
    files without the benchmark's size, from its selection settings."""
    if run.completeness.subset:
        return True
    return any(run.setting(key) for key in RUN_SELECTION_KEYS)


@dataclass
class RunScores:
    """A run opened and scored under both policies (reused by the HTML report)."""

    run: RunFolder
    graded: list[GradedAnswer]
    strict: ScoreTable
    upstream: ScoreTable

    @classmethod
    def of(cls, run: RunFolder | str | os.PathLike[str]) -> RunScores:
        """Open (when given a path) and score a run."""
        folder = run if isinstance(run, RunFolder) else open_run(run)
        graded = [graded_from_record(r) for r in folder.plain]
        return cls(folder, graded, score_answers(graded, Policy.STRICT), score_answers(graded, Policy.UPSTREAM))

    @property
    def has_answers(self) -> bool:
        """Some request got a reply; without one, the run's figures would be zeros that mean nothing."""
        return any_reply(self.graded)


def _run_group(run: RunFolder) -> tuple[str, str]:
    completeness = run.completeness
    benchmark = (run.benchmark_sha256 or "unknown")[:12]
    size = f"{completeness.in_benchmark:,} questions"
    card_hash = run_card_hash(run)
    if card_hash:
        return (
            f"runs:{benchmark}:{card_hash[:12]}",
            f"your runs: benchmark {benchmark[:8]} ({size}), card {card_hash[:8]}",
        )
    digest = hashlib.sha256(json.dumps(_legacy_settings(run), sort_keys=True, default=str).encode()).hexdigest()
    return (
        f"runs:{benchmark}:nocard-{digest[:8]}",
        f"your runs: benchmark {benchmark[:8]} ({size}), {NO_CARD} (settings {digest[:8]})",
    )


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
    group, label = _run_group(run)
    card_hash = run_card_hash(run)
    card = run.card
    marks: list[str] = []
    if not card:
        marks.append("no protocol card: grouped by the settings in run.json")
    if not completeness.complete:
        failed = f", {completeness.failed} requests failed" if completeness.failed else ""
        status = f" (run {run.recorded_status})" if run.recorded_status not in ("complete", "unknown") else ""
        marks.append(f"incomplete{status}: {completeness.describe()}{failed}")
    subset = is_subset_run(run)
    if subset:
        marks.append(
            f"subset: {completeness.selected:,} of {completeness.in_benchmark:,} questions selected"
            if completeness.subset
            else "subset: run with --limit/--dataset/--category/--subtask"
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
        else _legacy_protocol(run),
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
    )


# ------------------------------------------------------------------------------------- published


def published_row(
    entry: PublishedEntry, *, datasets: Sequence[str] = (), subtasks: Sequence[Subtask] = ()
) -> LeaderboardRow | None:
    """The leaderboard row of a published result; None when it has no figure for the view asked."""
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
    elif entry.coverage == "unknown" and entry.ranked:
        marks.append("coverage not stated by the source")
    if entry.seen_test_products == "yes":
        marks.append("trained on MMAD's source data")
    elif entry.seen_test_products == "possible":
        marks.append("may have seen MMAD's test products")
    if not entry.ranked:
        marks.append("reference line, not ranked" if entry.kind == "human" else "its own protocol: not ranked")
    if entry.notes:
        marks.append(entry.notes)
    official = entry.csv is not None or entry.datasets
    coverage = {
        "full": "full (as published)",
        "subset": f"subset: {entry.coverage_note}",
        "unknown": "not stated",
    }[entry.coverage]
    return LeaderboardRow(
        name=entry.system,
        kind="published",
        source=entry.source,
        group=f"published:{entry.group}",
        group_label=f"published: {entry.group_label}",
        protocol=entry.protocol_text,
        card_hash=None,
        completeness=coverage,
        score=score,
        strict=None,
        upstream=score if official else None,
        subtasks=per_subtask,
        overkill=overkill,
        miss=miss,
        eligible=entry.ranked and entry.coverage != "subset" and score is not None,
        marks=marks,
        seen_test_products=f"{entry.seen_test_products}: {entry.seen_note}"
        if entry.seen_note
        else entry.seen_test_products,
        citation=entry.citation,
    )


def _mean_of(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return fmean(kept) if kept else None


# ----------------------------------------------------------------------------------------- board


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


def rank_rows(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Rank eligible rows within their group; order ranked rows then the rest, best figure first."""
    by_group: dict[str, list[LeaderboardRow]] = {}
    for row in rows:
        row.rank = None
        if row.eligible:
            by_group.setdefault(row.group, []).append(row)
    for members in by_group.values():
        ordered = sorted(members, key=lambda r: -(r.score or 0.0))
        for position, row in enumerate(ordered, start=1):
            previous = ordered[position - 2] if position > 1 else None
            # Equal figures share a rank (1, 1, 3), so file order never decides between them.
            row.rank = previous.rank if previous is not None and previous.score == row.score else position

    def order(row: LeaderboardRow) -> tuple[int, float]:
        return (0 if row.ranked else 1, -(row.score if row.score is not None else -1.0))

    return sorted(rows, key=order)


def build_leaderboard(
    runs: Sequence[RunScores | RunFolder | str | os.PathLike[str]] = (),
    published: Sequence[PublishedEntry] | None = None,
    *,
    datasets: Sequence[str] = (),
    subtasks: Sequence[Subtask | str] = (),
    protocol: str | None = None,
    policy: Policy | str = Policy.STRICT,
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
    all_scores = [run if isinstance(run, RunScores) else RunScores.of(run) for run in runs]
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
    if protocol:
        rows = [r for r in rows if _matches(r, protocol)]
    names = [r.name for r in rows if r.kind == "run"]
    for row in rows:
        if row.kind == "run" and names.count(row.name) > 1:
            row.name = f"{row.name} ({Path(row.source).name})"
    rows = rank_rows(rows)
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


# --------------------------------------------------------------------------------------- formats


def leaderboard_dict(board: Leaderboard) -> dict[str, Any]:
    """A JSON-ready form: every row with every field, and the groups."""
    letters = board.group_letters()
    rows = []
    for row in board.rows:
        data = asdict(row)
        data["section"] = "ranked" if row.ranked else "not ranked"
        data["group_tag"] = letters[row.group]
        rows.append(data)
    return {
        "policy": board.policy.value,
        "filters": {"datasets": board.datasets, "subtasks": board.subtasks, "protocol": board.protocol},
        "groups": {letters[key]: {"key": key, "label": label} for key, label in board.groups.items()},
        "rows": rows,
        "notes": board.notes,
    }


def leaderboard_json(board: Leaderboard) -> str:
    """The leaderboard as indented JSON."""
    return json.dumps(leaderboard_dict(board), indent=2, ensure_ascii=False)


def _subtask_names(board: Leaderboard) -> list[str]:
    return board.subtasks or [s.value for s in SUBTASKS]


def leaderboard_csv(board: Leaderboard) -> str:
    """One CSV line per row; marks joined by ' | '."""
    letters = board.group_letters()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    subtasks = _subtask_names(board)
    header = [
        "section",
        "rank",
        "group",
        "name",
        "kind",
        "score",
        "strict",
        "upstream",
        *subtasks,
        "overkill",
        "miss",
        "asked",
        "answered",
        "in_benchmark",
        "completeness",
        "protocol",
        "card_hash",
        "group_label",
        "source",
        "seen_test_products",
        "marks",
    ]
    writer.writerow(header)

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    for row in board.rows:
        writer.writerow(
            [
                "ranked" if row.ranked else "not ranked",
                row.rank or "",
                letters[row.group],
                row.name,
                row.kind,
                number(row.score),
                number(row.strict),
                number(row.upstream),
                *(number(row.subtasks.get(s)) for s in subtasks),
                number(row.overkill),
                number(row.miss),
                "" if row.asked is None else row.asked,
                "" if row.answered is None else row.answered,
                "" if row.in_benchmark is None else row.in_benchmark,
                row.completeness,
                row.protocol,
                row.card_hash or "",
                row.group_label,
                row.source,
                row.seen_test_products,
                " | ".join(row.marks),
            ]
        )
    return buffer.getvalue()


def _md(text: str) -> str:
    """A table cell: pipes escaped, one line, and no HTML a Markdown renderer would run (names are untrusted)."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def leaderboard_markdown(board: Leaderboard, *, title: str = "MMAD leaderboard") -> str:
    """The leaderboard as GitHub Markdown: ranked rows, then the rows not ranked, then the groups."""
    letters = board.group_letters()
    subtasks = _subtask_names(board)
    shorts = [Subtask(s).short for s in subtasks]
    header = ["#", "Group", "Model", "Average", "Strict", "Upstream", *shorts, "Overkill", "Miss", "Completeness"]
    lines = [f"### {title}", ""]
    view = []
    if board.datasets:
        view.append("datasets " + ", ".join(board.datasets))
    if board.subtasks:
        view.append("subtasks " + ", ".join(board.subtasks))
    if board.protocol:
        view.append(f"protocol matching {board.protocol!r}")
    lines.append(f"Runs ranked by their {board.policy.value} average" + (f"; view: {'; '.join(view)}" if view else ""))
    for section, rows in (("Ranked within comparable groups", board.ranked), ("Not ranked", board.unranked)):
        if not rows:
            continue
        lines += ["", f"#### {section}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            cells = [
                str(row.rank) if row.rank else "–",
                letters[row.group],
                _md(row.name) + ("" if not row.marks else " ¹"),
                f"**{fmt(row.score)}**",
                fmt(row.strict),
                fmt(row.upstream),
                *(fmt(row.subtasks.get(s)) for s in subtasks),
                fmt(row.overkill),
                fmt(row.miss),
                _md(row.completeness),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Groups (ranks count only within a group):", ""]
    lines += [f"- **{letters[key]}** {_md(label)}" for key, label in board.groups.items()]
    marked = [r for r in board.rows if r.marks]
    if marked:
        lines += ["", "¹ Marks:", ""]
        lines += [f"- {_md(r.name)}: {_md('; '.join(r.marks))}" for r in marked]
    lines += ["", "Protocols:", ""]
    lines += [f"- {_md(r.name)}: {_md(r.protocol)}" for r in board.rows]
    lines += ["", *(f"_{_md(note)}_" for note in board.notes)]
    return "\n".join(lines) + "\n"
