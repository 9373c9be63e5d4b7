"""Score tables as Markdown, JSON-ready dicts and plain rows."""

from __future__ import annotations

from typing import Any

from mmad.data.schema import SUBTASKS, Subtask
from mmad.score.answers import covers_text
from mmad.score.breakdown import BreakdownRow
from mmad.score.table import DETECTION_COLUMNS, ScoreTable


def fmt(value: float | None, digits: int = 2) -> str:
    """A percentage for display; a dash when missing."""
    return "–" if value is None else f"{value:.{digits}f}"


def table_columns(table: ScoreTable) -> list[Subtask]:
    """The subtasks that the table has columns for, in the paper's order."""
    return [s for s in SUBTASKS if s in table.average_cells]


def table_rows(table: ScoreTable) -> list[tuple[str, list[float | None], float | None]]:
    """(row name, subtask cells, average) for each dataset and the Average row."""
    columns = table_columns(table)
    rows = [(r.name, [r.cells.get(s) for s in columns], r.average) for r in table.rows]
    rows.append(("Average", [table.average_cells.get(s) for s in columns], table.average))
    return rows


def table_to_markdown(table: ScoreTable, *, title: str | None = None) -> str:
    """The MMAD table as GitHub Markdown, with Overkill and Miss, and the policy's notes."""
    columns = table_columns(table)
    header = ["Dataset", *(s.value for s in columns), "Average", "Overkill", "Miss"]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    detection_by_row = {r.name: r.detection_metrics() for r in table.rows}
    detection_by_row["Average"] = table.average_detection
    for name, cells, average in table_rows(table):
        metrics = detection_by_row[name]
        values = [fmt(v) for v in cells] + [
            f"**{fmt(average)}**",
            fmt(metrics["Overkill"]),
            fmt(metrics["Miss"]),
        ]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines.append("")
    lines.append(
        f"Policy `{table.policy.value}`: {table.n_answers} answers, {table.n_counted} counted, "
        f"{table.n_unanswered} counted without an answer. The Average covers {covers_text(table.average_covers)}."
    )
    lines.extend(f"- {note}" for note in table.notes)
    return "\n".join(lines) + "\n"


def table_to_dict(table: ScoreTable) -> dict[str, Any]:
    """A JSON-ready form of the table, with the raw counts behind each cell."""
    rows = []
    for row in table.rows:
        rows.append(
            {
                "dataset": row.name,
                "cells": {s.value: row.cells.get(s) for s in table_columns(table)},
                "counts": {
                    s.value: {"correct": t.correct, "total": t.total, "unanswered": t.unanswered}
                    for s, t in row.tallies.items()
                    if t.total
                },
                "anomaly_discrimination": {
                    "normal": vars(row.detection.normal),
                    "abnormal": vars(row.detection.abnormal),
                    **row.detection_metrics(),
                },
                "average": row.average,
                "covers": [s.value for s in row.covers],
                "complete": row.complete,
            }
        )
    return {
        "policy": table.policy.value,
        "average": table.average,
        "average_covers": [s.value for s in table.average_covers],
        "subtask_averages": {s.value: v for s, v in table.average_cells.items()},
        "detection_averages": {c: table.average_detection[c] for c in DETECTION_COLUMNS},
        "rows": rows,
        "n_answers": table.n_answers,
        "n_counted": table.n_counted,
        "n_unanswered": table.n_unanswered,
        "n_skipped": table.n_skipped,
        "failures": table.failures,
        "notes": table.notes,
        "declined": table.declined,
    }


def breakdown_to_markdown(rows: list[BreakdownRow], *, title: str) -> str:
    """A per-category or per-defect-type breakdown as Markdown."""
    header = ["Group", *(s.short for s in SUBTASKS), "Average", "Questions"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        values = [fmt(row.cells[s], 1) for s in SUBTASKS] + [fmt(row.average, 1), str(row.n_questions)]
        lines.append(f"| {row.group} | " + " | ".join(values) + " |")
    legend = ", ".join(f"{s.short} = {s.value}" for s in SUBTASKS)
    meaning = (
        "A row's Average is the mean of the cells shown in it; – is a cell without questions, or one whose "
        "every question the model declined (not a 0)."
    )
    declined = [s.short for s in SUBTASKS if any(s in row.declined for row in rows)]
    if declined:
        meaning += f" Declined by the model: {', '.join(declined)}."
    return "\n".join([*lines, "", legend, "", meaning]) + "\n"
