"""The combined table of a sweep: one row per cell, its strict average and per-subtask accuracies.

Written next to sweep.json as ``sweep_table.md``, ``sweep_table.csv`` and ``sweep_table.json``.
Each row is scored from the cell's records as `mmad score` scores a run (strict policy: an answer
without a letter counts as wrong), so a partial cell shows what it has, flagged by its status.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmad._io import atomic_write_text
from mmad.data.schema import SUBTASKS
from mmad.records.folder import is_run_folder
from mmad.run.folder import open_run
from mmad.run.recipes import recipe_policy
from mmad.run.sweep import Sweep
from mmad.score.answers import any_reply, covers_text, graded_from_records
from mmad.score.circular import circular_report
from mmad.score.table import score_answers


@dataclass
class SweepRow:
    """One cell's line of the combined table (percentages; None where nothing was asked)."""

    cell: str
    model: str
    status: str
    asked: int
    selected: int
    average: float | None
    subtasks: dict[str, float | None] = field(default_factory=dict)
    circular: float | None = None
    """A --circular cell's share of questions right under every rotation of their options (the
    plain figures beside it are the unrotated posing's); None for a plain cell."""
    circular_subtasks: dict[str, float | None] = field(default_factory=dict)
    covers: list[str] = field(default_factory=list)
    """The subtasks the cell's Average is the mean of (a subtask the model declined is missing, not 0)."""


def sweep_rows(folder: str | Path) -> list[SweepRow]:
    """The rows of a sweep folder's cells, in the grid's order."""
    sweep = Sweep(folder)
    manifest = sweep.read()
    rows = []
    for name, entry in manifest["cells"].items():
        run_dir = sweep.folder / entry["folder"]
        if not is_run_folder(run_dir):
            rows.append(SweepRow(name, "", str(entry.get("status") or "pending"), 0, 0, None))
            continue
        run = open_run(run_dir)
        records = run.records
        graded = graded_from_records(records)
        completeness = run.completeness
        if not any_reply(graded):  # no reply at all: figures would be zeros, not results
            rows.append(SweepRow(name, run.model, run.status, completeness.asked, completeness.selected, None))
            continue
        # A recipe cell is scored as its run's headline is: under the policy of the recipe's published rows.
        table = score_answers(graded, recipe_policy(run.config.recipe))
        circular = circular_report(records) if any(not r.plain for r in records) else None
        by_group = {r.group: r.circular for r in circular.rows} if circular is not None else {}
        rows.append(
            SweepRow(
                cell=name,
                model=run.model,
                status=run.status,
                asked=completeness.asked,
                selected=completeness.selected,
                average=table.average,
                subtasks={s.value: table.average_cells.get(s) for s in SUBTASKS},
                circular=by_group.get("All"),
                circular_subtasks={s.value: by_group.get(s.value) for s in SUBTASKS} if circular is not None else {},
                covers=[s.value for s in table.average_covers],
            )
        )
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_markdown(rows: list[SweepRow], title: str = "MMAD sweep") -> str:
    """The table in Markdown."""
    head = ["Cell", "Model", "Status", "Asked", "Average", "Circular", *(s.short for s in SUBTASKS)]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.cell, row.model, row.status, f"{row.asked}/{row.selected}", _fmt(row.average), _fmt(row.circular)]
        cells += [_fmt(row.subtasks.get(s.value)) for s in SUBTASKS]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Strict policy (an answer without a letter counts as wrong); the subtask columns and Average are the "
        "unrotated posing's; Circular (--circular cells) is the share of questions answered right under every "
        "rotation of their options; " + ", ".join(f"{s.short} = {s.value}" for s in SUBTASKS) + ".",
    ]
    narrower = narrower_averages(rows)
    if narrower:
        lines += ["", "Averages over fewer subtasks (- is a subtask without questions, or one the model declined):"]
        lines += [f"- {line}" for line in narrower]
    return "\n".join(lines) + "\n"


def narrower_averages(rows: list[SweepRow]) -> list[str]:
    """'cell: AD, DL (2 of 7 subtasks)' for each cell whose Average covers fewer than the seven subtasks."""
    return [
        f"{row.cell}: {covers_text(row.covers)}"
        for row in rows
        if row.average is not None and len(row.covers) < len(SUBTASKS)
    ]


def render_csv(rows: list[SweepRow]) -> str:
    """The table as CSV (one column per subtask, full names)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["cell", "model", "status", "asked", "selected", "average", "circular", *(s.value for s in SUBTASKS)]
    )
    for row in rows:
        values = [row.subtasks.get(s.value) for s in SUBTASKS]
        head = [row.cell, row.model, row.status, row.asked, row.selected, _csv(row.average), _csv(row.circular)]
        writer.writerow([*head, *(_csv(v) for v in values)])
    return buffer.getvalue()


def _csv(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def write_sweep_table(folder: str | Path) -> dict[str, Path]:
    """Write sweep_table.md, .csv and .json into the sweep folder; returns their paths."""
    base = Path(folder)
    rows = sweep_rows(base)
    files = {
        "markdown": base / "sweep_table.md",
        "csv": base / "sweep_table.csv",
        "json": base / "sweep_table.json",
    }
    atomic_write_text(files["markdown"], render_markdown(rows, f"MMAD sweep — {base.name}"))
    atomic_write_text(files["csv"], render_csv(rows))
    atomic_write_text(files["json"], json.dumps([asdict(r) for r in rows], indent=2))
    return files
