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
from mmad.run.scoring import score_run
from mmad.run.sweep import Sweep
from mmad.score.answers import covers_text
from mmad.score.metrics import Bootstrap, figure_text


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
    intervals: dict[str, list[float]] = field(default_factory=dict)
    """With --ci, the 95% image-bootstrap interval [low, high] of the Average and of each subtask's figure."""
    metrics: dict[str, float | None] = field(default_factory=dict)
    """Every registered metric's headline figures (``metric:cell``), as `mmad score` shows them."""


def sweep_rows(folder: str | Path, *, bootstrap: Bootstrap | None = None) -> list[SweepRow]:
    """The rows of a sweep folder's cells, in the grid's order; ``bootstrap`` adds the 95% intervals."""
    sweep = Sweep(folder)
    manifest = sweep.read()
    rows = []
    for name, entry in manifest["cells"].items():
        run_dir = sweep.folder / entry["folder"]
        if not is_run_folder(run_dir):
            rows.append(SweepRow(name, "", str(entry.get("status") or "pending"), 0, 0, None))
            continue
        # A recipe cell is scored as its run's headline is: under the policy of the recipe's published rows.
        scored = score_run(run_dir, bootstrap=bootstrap)
        run = scored.run
        assert run is not None  # a run folder, checked above
        completeness = run.completeness
        if not scored.has_answers:  # no reply at all: figures would be zeros, not results
            rows.append(SweepRow(name, run.model, run.status, completeness.asked, completeness.selected, None))
            continue
        table = scored.table()
        circular = scored.metric("circular")
        by_group = {c.name: c.value for c in circular.cells} if circular is not None else {}
        intervals = scored.intervals
        bounds: dict[str, list[float]] = {}
        if intervals is not None:
            named = {"Average": intervals.average, **{s.value: v for s, v in intervals.subtask_averages.items()}}
            bounds = {key: [v.low, v.high] for key, v in named.items() if v is not None}
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
                intervals=bounds,
                metrics={column.key: column.cell.value for column in scored.summary()},
            )
        )
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_markdown(rows: list[SweepRow], title: str = "MMAD sweep") -> str:
    """The table in Markdown."""
    with_ci = any(row.intervals for row in rows)
    head = ["Cell", "Model", "Status", "Asked", "Average", *(["95% interval"] if with_ci else []), "Circular"]
    head += [s.short for s in SUBTASKS]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.cell, row.model, row.status, f"{row.asked}/{row.selected}", _fmt(row.average)]
        cells += [interval_text(row)] if with_ci else []
        cells += [_fmt(row.circular), *(_fmt(row.subtasks.get(s.value)) for s in SUBTASKS)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Strict policy (an answer without a letter counts as wrong); the subtask columns and Average are the "
        "unrotated posing's; Circular (--circular cells) is the share of questions answered right under every "
        "rotation of their options; " + ", ".join(f"{s.short} = {s.value}" for s in SUBTASKS) + ".",
    ]
    if with_ci:
        lines += ["", "95% interval: a bootstrap over each cell's images (an image's questions move together)."]
    columns = metric_columns(rows)
    if columns:
        lines += ["", "Metrics (every registered metric's headline figures, as `mmad score` shows them):", ""]
        lines += ["| Cell | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
        lines += [
            f"| {row.cell} | " + " | ".join(figure_text(k, row.metrics.get(k), 1) for k in columns) + " |"
            for row in rows
        ]
    narrower = narrower_averages(rows)
    if narrower:
        lines += ["", "Averages over fewer subtasks (- is a subtask without questions, or one the model declined):"]
        lines += [f"- {line}" for line in narrower]
    return "\n".join(lines) + "\n"


def interval_text(row: SweepRow, name: str = "Average") -> str:
    """A cell's 95% interval as '[58.1, 66.0]', or '-' without one."""
    bounds = row.intervals.get(name)
    return f"[{bounds[0]:.1f}, {bounds[1]:.1f}]" if bounds else "-"


def metric_columns(rows: list[SweepRow]) -> list[str]:
    """The metric figures (``metric:cell``) of the cells, in the order the metrics are registered."""
    return list(dict.fromkeys(key for row in rows for key in row.metrics))


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
    columns = metric_columns(rows)
    writer.writerow(
        [
            *("cell", "model", "status", "asked", "selected", "average", "circular", *(s.value for s in SUBTASKS)),
            *("average_low", "average_high", *columns),
        ]
    )
    for row in rows:
        values = [row.subtasks.get(s.value) for s in SUBTASKS]
        head = [row.cell, row.model, row.status, row.asked, row.selected, _csv(row.average), _csv(row.circular)]
        low, high = row.intervals.get("Average") or (None, None)
        tail = [_csv(low), _csv(high), *(_csv(row.metrics.get(k)) for k in columns)]
        writer.writerow([*head, *(_csv(v) for v in values), *tail])
    return buffer.getvalue()


def _csv(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def write_sweep_table(folder: str | Path, rows: list[SweepRow] | None = None) -> dict[str, Path]:
    """Write sweep_table.md, .csv and .json into the sweep folder (of ``rows``, else its cells' rows as
    `sweep_rows` reads them); returns their paths."""
    base = Path(folder)
    rows = sweep_rows(base) if rows is None else rows
    files = {
        "markdown": base / "sweep_table.md",
        "csv": base / "sweep_table.csv",
        "json": base / "sweep_table.json",
    }
    atomic_write_text(files["markdown"], render_markdown(rows, f"MMAD sweep — {base.name}"))
    atomic_write_text(files["csv"], render_csv(rows))
    atomic_write_text(files["json"], json.dumps([asdict(r) for r in rows], indent=2))
    return files
