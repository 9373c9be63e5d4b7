"""`mmad score`'s terminal sections for operating points and intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from mmad.cli.common import console
from mmad.data.schema import Subtask
from mmad.report.tables import fmt

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mmad.score.intervals import Interval, TableIntervals
    from mmad.score.metrics import Bootstrap, MetricResult
    from mmad.score.operating import OperatingReport


def print_operating(report: OperatingReport, markdown_name: str) -> None:
    """Anomaly Discrimination's operating points, overall and per dataset (per category in the files)."""
    rows = report.by_score["overall"] + report.by_score["dataset"]
    if rows:
        names = list(rows[0].cells())
        view = Table(title="Anomaly Discrimination operating points (percent, from the defect score)")
        view.add_column("Group", no_wrap=True, min_width=10)
        for name in names:
            header = name.replace("Overkill", "OK").replace("@", "\n@").replace("%", "% ")
            view.add_column(header, justify="right", no_wrap=True)
        for row in rows:
            coarse = "*" if row.coarse and row.auroc is not None else ""
            view.add_row(f"{row.group}{coarse}", *(fmt(v, 1) for v in row.cells().values()), end_section=row is rows[0])
        view.caption = (
            f"OK = Overkill; * coarse (few distinct scores); {report.n_scored} of {report.n_questions} answers "
            f"scored ({rows[0].source}); "
            f"per category and calibration bins in {markdown_name}"
        )
        console.print(view)
    elif report.n_questions:
        console.print(
            "operating points: Overkill and Miss from the letters, per category and per defect type, "
            f"in {markdown_name}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)


def print_intervals(intervals: TableIntervals) -> None:
    """The table's cells with their 95% intervals, turned so that it fits 80 columns: a row per subtask, a
    column per dataset, each cell its value over its interval; then, where the table has Anomaly
    Discrimination, a row each for Overkill and Miss."""
    view = Table(title=f"{intervals.level:g}% intervals", pad_edge=False)
    view.add_column("", no_wrap=True, min_width=7)
    for name in [*intervals.datasets, "Average"]:
        view.add_column(name, justify="right", no_wrap=True, style="bold" if name == "Average" else "")

    def cell(interval: Interval | None) -> str:
        return "–" if interval is None else f"{interval.point:.1f}\n{interval.low:.1f}–{interval.high:.1f}"

    for subtask in intervals.columns:
        cells = [intervals.cells[name][subtask] for name in intervals.datasets]
        view.add_row(subtask.short, *map(cell, [*cells, intervals.subtask_averages[subtask]]))
    averages = [intervals.row_averages[name] for name in intervals.datasets]
    view.add_row("Average", *map(cell, [*averages, intervals.average]), style="bold", end_section=True)
    if Subtask.ANOMALY_DISCRIMINATION in intervals.columns:
        for column in ("Overkill", "Miss"):  # per dataset, and their mean (the table's detection columns)
            figures = [intervals.detection.get(name, {}).get(column) for name in intervals.datasets]
            view.add_row(column, *map(cell, [*figures, intervals.average_detection.get(column)]))
    view.caption = (
        f"value over its interval; bootstrap over {intervals.n_images} images (an image's questions move "
        f"together), {intervals.samples} resamples, seed {intervals.seed}; – is a missing cell"
    )
    if intervals.single_image:
        view.caption += (
            f"; no interval from one image: {', '.join(intervals.single_image)} (its cells are in the table)"
        )
    console.print(view)


def print_metrics(results: Sequence[MetricResult], *, title: str = "Metrics") -> None:
    """Every registered metric's headline figures, one line each (the figures `--json` holds in full)."""
    view = Table(title=title)
    for column in ("Metric", "Figure", "Value", "95% interval"):
        view.add_column(column, justify="left" if column in ("Metric", "Figure") else "right", overflow="fold")
    for result in results:
        cells = result.headline_cells()
        for index, cell in enumerate(cells):
            # a missing figure is a dash alone: '– tokens' reads as a measured count
            unit = "" if cell.unit in ("%", "$", "s") or cell.value is None else f" {cell.unit}"
            view.add_row(
                result.title if index == 0 else "",
                cell.name,
                cell.text() + unit,
                cell.interval_text(),
                end_section=index == len(cells) - 1,
            )
    view.caption = "percent unless a unit is shown; every cell of every metric is in --json (metrics)"
    console.print(view)
    for result in results:
        for note in result.notes:
            console.print(f"[dim]note ({result.metric}): {note}[/]", highlight=False, soft_wrap=True)


def ci_bootstrap(ci: bool, samples: int | None, seed: int | None) -> Bootstrap | None:
    """The --ci bootstrap of `score`, `report`, `leaderboard` and `sweep`; --samples or --seed without --ci
    is a usage error, worded alike by all four (each naming its own --help)."""
    from mmad.score.metrics import Bootstrap

    if not ci:
        if samples is not None or seed is not None:
            # without --ci there is no bootstrap: a --samples or --seed that changed nothing would mislead
            msg = "they set the --ci bootstrap, which runs only with --ci; add --ci"
            raise typer.BadParameter(msg, param_hint="--samples/--seed")
        return None
    return Bootstrap(samples or 1000, seed or 0)
