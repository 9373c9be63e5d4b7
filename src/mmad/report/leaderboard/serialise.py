"""The leaderboard as JSON, CSV and Markdown (the terminal table is the CLI's)."""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict
from typing import Any

from mmad.data.schema import SUBTASKS, Subtask
from mmad.report.leaderboard.model import DETECTION_ONLY, SECTION_TITLES, Leaderboard, LeaderboardRow
from mmad.report.tables import fmt
from mmad.score.metrics import figure_text


def leaderboard_dict(board: Leaderboard) -> dict[str, Any]:
    """A JSON-ready form: every row with every field, and the groups."""
    letters = board.group_letters()
    rows = []
    for row in board.rows:
        data = asdict(row)
        data["section"] = row.section
        data["contaminated"] = row.contaminated
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
        "figure",
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
        "shots",
        "question_set",
        "trained_on",
        "contamination",
        "table",
        "marks",
        "score_low",
        "score_high",
        "overkill_low",
        "overkill_high",
        "miss_low",
        "miss_high",
        *metric_columns(board),
    ]
    writer.writerow(header)

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    for row in board.rows:
        writer.writerow(
            [
                row.section,
                row.rank or "",
                letters[row.group],
                row.name,
                row.kind,
                number(row.score),
                row.figure,
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
                "" if row.shots is None else row.shots,
                row.question_set,
                row.trained_on,
                row.contamination,
                row.table,
                " | ".join(row.marks),
                *(number(v) for name in ("Average", "Overkill", "Miss") for v in row.intervals.get(name, [None, None])),
                *(number(row.metrics.get(key)) for key in metric_columns(board)),
            ]
        )
    return buffer.getvalue()


def metric_columns(board: Leaderboard) -> list[str]:
    """The metric figures (``metric:cell``) of the board's runs, in the order the metrics are registered."""
    return list(dict.fromkeys(key for row in board.rows for key in row.metrics))


def interval_text(row: LeaderboardRow, name: str = "Average") -> str:
    """A row's 95% interval as '[58.1, 66.0]', or '' without one."""
    bounds = row.intervals.get(name)
    return f"[{bounds[0]:.1f}, {bounds[1]:.1f}]" if bounds else ""


def _provenance_line(row: LeaderboardRow) -> str:
    """Shots, question set and what the system was trained on, for one row."""
    shots = "shots not stated" if row.shots is None else f"{row.shots}-shot"
    trained = f"trained on {row.trained_on}" if row.trained_on else f"training on MMAD: {row.contamination}"
    parts = [shots, row.question_set or "questions not stated", trained, *row.clean_split]
    return "; ".join(parts)


def _detection_markdown(board: Leaderboard, letters: dict[str, str]) -> list[str]:
    """The anomaly-discrimination-only figures, in a table apart from the seven-subtask averages."""
    rows = board.detection_only
    if not rows:
        return []
    header = ["#", "Group", "Model", board.detection_figure(), "What it measures", "Training on MMAD"]
    lines = ["", f"#### {SECTION_TITLES[DETECTION_ONLY]}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    for row in rows:
        measures = next((m for m in row.marks if m.startswith("detection only: ")), "detection only: ")
        cells = [
            str(row.rank) if row.rank else "–",
            letters[row.group],
            _md(row.name) + ("" if not row.marks else " ¹"),
            f"**{fmt(row.score)}**",
            _md(measures.removeprefix("detection only: ")),
            _md(row.trained_on or row.contamination),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _md(text: str) -> str:
    """A table cell: pipes escaped, one line, and no HTML a Markdown renderer would run (names are untrusted)."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def leaderboard_markdown(board: Leaderboard, *, title: str = "MMAD leaderboard") -> str:
    """The leaderboard as GitHub Markdown: ranked rows, then the rows not ranked, then the groups."""
    letters = board.group_letters()
    subtasks = _subtask_names(board)
    shorts = [Subtask(s).short for s in subtasks]
    with_ci = any(row.intervals for row in board.rows)
    header = ["#", "Group", "Model", "Average", *(["95% interval"] if with_ci else [])]
    header += ["Strict", "Upstream", *shorts, "Overkill", "Miss", "Completeness"]
    lines = [f"### {title}", ""]
    view = []
    if board.datasets:
        view.append("datasets " + ", ".join(board.datasets))
    if board.subtasks:
        view.append("subtasks " + ", ".join(board.subtasks))
    if board.protocol:
        view.append(f"protocol matching {board.protocol!r}")
    lines.append(f"Runs ranked by their {board.policy.value} average" + (f"; view: {'; '.join(view)}" if view else ""))
    for key, section, rows in board.sections():
        if key == DETECTION_ONLY:
            continue  # a table of its own below: one subtask's figure is not a seven-subtask average
        lines += ["", f"#### {section}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            cells = [
                str(row.rank) if row.rank else "–",
                letters[row.group],
                _md(row.name) + ("" if not row.marks else " ¹"),
                f"**{fmt(row.score)}**",
                *([interval_text(row)] if with_ci else []),
                fmt(row.strict),
                fmt(row.upstream),
                *(fmt(row.subtasks.get(s)) for s in subtasks),
                fmt(row.overkill),
                fmt(row.miss),
                _md(row.completeness),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += _metrics_markdown(board)
    lines += _detection_markdown(board, letters)
    lines += ["", "Groups (ranks count only within a group):", ""]
    lines += [f"- **{letters[key]}** {_md(label)}" for key, label in board.groups.items()]
    marked = [r for r in board.rows if r.marks]
    if marked:
        lines += ["", "¹ Marks:", ""]
        lines += [f"- {_md(r.name)}: {_md('; '.join(r.marks))}" for r in marked]
    lines += ["", "Protocols:", ""]
    lines += [f"- {_md(r.name)}: {_md(r.protocol)}" for r in board.rows]
    lines += ["", "Shots, questions and training:", ""]
    lines += [f"- {_md(r.name)}: {_md(_provenance_line(r))}" for r in board.rows]
    lines += ["", *(f"_{_md(note)}_" for note in board.notes)]
    return "\n".join(lines) + "\n"


def _metrics_markdown(board: Leaderboard) -> list[str]:
    """Every registered metric's headline figures for each run (`mmad score` shows the same)."""
    columns = metric_columns(board)
    runs = [row for row in board.rows if row.metrics]
    if not columns or not runs:
        return []
    lines = ["", "#### Metrics of the runs (whole run)", "", "| Model | " + " | ".join(columns) + " |"]
    lines.append("|" + "---|" * (len(columns) + 1))
    for row in runs:
        lines.append(
            f"| {_md(row.name)} | " + " | ".join(figure_text(key, row.metrics.get(key)) for key in columns) + " |"
        )
    return lines
