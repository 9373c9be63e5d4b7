"""The official ``_accuracy.csv`` format, and the published result tables as leaderboard rows.

A published file is named ``answers_{k}_shot_{model}_accuracy[{suffix}].csv``. Its rows are the
four source datasets and ``Average``; its columns are the seven subtasks (Anomaly Discrimination
under its code name "Anomaly Detection"), ``Average``, then ``Recall``, ``Precision``, ``F1`` and,
in most files, ``Overkill`` and ``Miss``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

from pydantic import BaseModel

from mmad._io import atomic_write_text
from mmad.data.schema import SUBTASKS
from mmad.errors import AnswersFormatError
from mmad.score.table import DETECTION_COLUMNS, ScoreTable

SUBTASK_COLUMNS = tuple(s.official_column for s in SUBTASKS)
CSV_COLUMNS = (*SUBTASK_COLUMNS, "Average", *DETECTION_COLUMNS)
AVERAGE_ROW = "Average"
_NAME = re.compile(r"^answers_(?P<shots>\d+)_shot_(?P<model>.+?)_accuracy(?P<suffix>.*)\.csv$")


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def accuracy_csv_text(table: ScoreTable) -> str:
    """The table in the official CSV layout."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", *CSV_COLUMNS])
    for row in table.rows:
        metrics = row.detection_metrics()
        cells = [row.cells.get(s) for s in SUBTASKS]
        writer.writerow(
            [row.name, *map(_fmt, cells), _fmt(row.average), *(_fmt(metrics[c]) for c in DETECTION_COLUMNS)]
        )
    average_cells = [table.average_cells.get(s) for s in SUBTASKS]
    detection = [table.average_detection[c] for c in DETECTION_COLUMNS]
    writer.writerow([AVERAGE_ROW, *map(_fmt, average_cells), _fmt(table.average), *map(_fmt, detection)])
    return buffer.getvalue()


def write_accuracy_csv(table: ScoreTable, path: str | os.PathLike[str]) -> None:
    """Write the official-style accuracy CSV, atomically."""
    atomic_write_text(Path(path), accuracy_csv_text(table))


class PublishedResult(BaseModel):
    """One published (or written) accuracy CSV: a model's per-dataset rows and its Average row."""

    model: str
    shots: int | None = None
    suffix: str = ""
    source: str = ""
    columns: list[str]
    rows: dict[str, dict[str, float | None]]

    @property
    def datasets(self) -> list[str]:
        """The dataset rows, without Average."""
        return [name for name in self.rows if name != AVERAGE_ROW]

    @property
    def average(self) -> float | None:
        """The headline number: the Average row's Average column."""
        return self.rows.get(AVERAGE_ROW, {}).get("Average")

    def subtask_averages(self) -> dict[str, float | None]:
        """The Average row's subtask columns."""
        average = self.rows.get(AVERAGE_ROW, {})
        return {column: average.get(column) for column in SUBTASK_COLUMNS}


def _number(text: str, source: Path, row: str, column: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError as exc:
        msg = f"{source}: row {row!r}, column {column!r} holds {text!r}, which is not a number"
        raise AnswersFormatError(msg) from exc
    return None if math.isnan(value) else value


def read_accuracy_csv(path: str | os.PathLike[str], *, model: str | None = None) -> PublishedResult:
    """Read an official-style accuracy CSV."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read {source}: {exc.strerror}"
        raise AnswersFormatError(msg) from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or len(header) < 2:
        msg = f"{source}: no header row; an accuracy CSV starts with ',Anomaly Detection,...'"
        raise AnswersFormatError(msg)
    columns = header[1:]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        msg = f"{source}: unknown columns {unknown}; expected some of {list(CSV_COLUMNS)}"
        raise AnswersFormatError(msg)
    rows: dict[str, dict[str, float | None]] = {}
    for line in reader:
        if not line:
            continue
        name, values = line[0], line[1:]
        if len(values) != len(columns):
            msg = f"{source}: row {name!r} has {len(values)} values for {len(columns)} columns"
            raise AnswersFormatError(msg)
        rows[name] = {c: _number(v, source, name, c) for c, v in zip(columns, values, strict=True)}
    match = _NAME.match(source.name)
    return PublishedResult(
        model=model or (match.group("model") if match else source.stem),
        shots=int(match.group("shots")) if match else None,
        suffix=match.group("suffix") if match else "",
        source=str(source),
        columns=columns,
        rows=rows,
    )


def load_published(folder: str | os.PathLike[str] | None = None) -> list[PublishedResult]:
    """Every accuracy CSV in a folder, best average first; without a folder, the 22 official files
    shipped with mmad (``mmad.score.published``)."""
    if folder is None:
        from mmad.score.published import CSV_FOLDER, packaged_folder

        with packaged_folder() as base:
            return load_published(base / CSV_FOLDER)
    results = [read_accuracy_csv(p) for p in sorted(Path(folder).glob("*.csv"))]
    return sorted(results, key=lambda r: -(r.average or 0.0))


def recompute_average_row(result: PublishedResult) -> dict[str, float | None]:
    """The Average row as the official scorer derives it: each column's mean over the dataset rows."""
    out: dict[str, float | None] = {}
    for column in result.columns:
        values = [result.rows[name][column] for name in result.datasets]
        present = [v for v in values if v is not None]
        out[column] = sum(present) / len(present) if present else None
    return out


def published_csv_text(result: PublishedResult) -> str:
    """A PublishedResult back in its CSV layout (columns in the order it was read)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", *result.columns])
    for name, values in result.rows.items():
        writer.writerow([name, *(_fmt(values.get(c)) for c in result.columns)])
    return buffer.getvalue()
