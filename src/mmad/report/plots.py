"""Figures: the paper-style accuracy heatmap."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmad.report.tables import table_columns, table_rows
from mmad.score.table import ScoreTable


def heatmap_png(table: ScoreTable, path: str | os.PathLike[str], *, title: str = "MMAD accuracy") -> Path:
    """Draw the table as an annotated heatmap (datasets × subtasks, with averages) and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table_rows(table)
    columns = [s.value for s in table_columns(table)] + ["Average"]
    values = np.array(
        [[np.nan if v is None else v for v in [*cells, average]] for _, cells, average in rows], dtype=float
    )
    figure, axes = plt.subplots(figsize=(1.3 * len(columns) + 2, 0.6 * len(rows) + 2))
    # Red (low) through yellow to green (high), as the HTML report colours its tables.
    image = axes.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=25, vmax=100, aspect="auto")
    axes.set_xticks(range(len(columns)), labels=columns, rotation=30, ha="right")
    axes.set_yticks(range(len(rows)), labels=[name for name, _, _ in rows])
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = "–" if np.isnan(values[i, j]) else f"{values[i, j]:.1f}"
            axes.text(j, i, text, ha="center", va="center", fontsize=9)
    axes.set_title(title)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target
