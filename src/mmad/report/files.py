"""Write a score table's files: official CSV, Markdown, JSON, heatmap and breakdowns."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmad._io import atomic_write_text
from mmad.report.heatmap import heatmap_png
from mmad.report.tables import breakdown_to_markdown, table_to_dict, table_to_markdown
from mmad.score.answers import GradedAnswer
from mmad.score.breakdown import GroupBy, breakdown
from mmad.score.official_csv import write_accuracy_csv
from mmad.score.table import ScoreTable

if TYPE_CHECKING:  # the module imports numpy, which only `mmad score --ci` needs
    from mmad.score.intervals import TableIntervals


def write_score_files(
    table: ScoreTable,
    answers: Sequence[GradedAnswer],
    out: str | os.PathLike[str],
    *,
    stem: str = "",
    title: str = "MMAD accuracy",
    plot: bool = True,
    intervals: TableIntervals | None = None,
) -> dict[str, Path]:
    """Write ``[stem_]accuracy.csv``, ``[stem_]scores.md``, ``[stem_]scores.json`` and ``[stem_]heatmap.png``.

    Returns the paths by kind. The names never collide with an answers file named ``{stem}.json``.
    With ``intervals`` (``mmad score --ci``), the Markdown has the table with each cell's interval after
    the table, and the JSON an ``intervals`` object.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{stem}_" if stem else ""
    paths = {
        "csv": folder / f"{prefix}accuracy.csv",
        "markdown": folder / f"{prefix}scores.md",
        "json": folder / f"{prefix}scores.json",
    }
    write_accuracy_csv(table, paths["csv"])
    sections = [table_to_markdown(table, title=title)]
    data = table_to_dict(table)
    if intervals is not None:
        from mmad.report.operating_files import intervals_to_dict, intervals_to_markdown

        sections.append(intervals_to_markdown(intervals))
        data["intervals"] = intervals_to_dict(intervals)
    for by, label in ((GroupBy.CATEGORY, "Per category"), (GroupBy.DEFECT_TYPE, "Per defect type")):
        rows = breakdown(answers, by)
        sections.append(breakdown_to_markdown(rows, title=f"{label} (strict)"))
        data[f"by_{by.value}"] = {
            r.group: {
                "cells": {s.value: v for s, v in r.cells.items()},
                "average": r.average,
                "covers": [s.value for s in r.covers],
                "n": r.n_questions,
            }
            for r in rows
        }
    atomic_write_text(paths["markdown"], "\n".join(sections))
    atomic_write_text(paths["json"], json.dumps(data, indent=2))
    if plot:
        paths["heatmap"] = heatmap_png(table, folder / f"{prefix}heatmap.png", title=title)
    return paths
