"""Shared terminal objects of the CLI: consoles, progress bars, the score table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from mmad.errors import ConfigError

if TYPE_CHECKING:
    from mmad.run.engine import EngineStats
    from mmad.score.table import ScoreTable

console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    # Piped into a log or a file, rich assumes 80 columns and cuts the score tables' numbers.
    console = Console(width=140)
# Progress, warnings and errors go to stderr, so stdout holds only results (and --json output).
err_console = Console(stderr=True)


def progress_bar(target: Console | None = None) -> Progress:
    """The live bar of an evaluation: done, rate, ETA, failures, tokens, cost (on stderr).

    Below 120 columns the run's name is shortened and tokens and concurrency are left out, so the
    count and the time left always fit (at 80 columns rich would cut those first).
    """
    target = target or err_console
    narrow = target.width < 120
    details = (
        "failed {task.fields[failed]} · ${task.fields[cost]:.2f}"
        if narrow
        else "failed {task.fields[failed]} · unparsed {task.fields[unparsed]} · "
        "{task.fields[tokens]} tok · ${task.fields[cost]:.4f} · conc {task.fields[conc]}"
    )
    name = Column(max_width=18, no_wrap=True, overflow="ellipsis") if narrow else None
    return Progress(
        TextColumn("[bold]{task.description}", table_column=name),
        BarColumn(bar_width=12 if narrow else 40),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} q/s"),
        TimeRemainingColumn(),
        TextColumn(details),
        console=target,
        # Piped into a log, a bar cannot redraw: it would leave stale lines between the messages.
        disable=not target.is_terminal,
    )


def simple_progress(label: str) -> Progress:
    """A plain bar (on stderr) for building, checking and downloading."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )


def add_run_task(bar: Progress, name: str) -> TaskID:
    """A progress line for one run, with the fields `progress_bar` shows."""
    return bar.add_task(name, total=None, rate=0.0, failed=0, unparsed=0, tokens=0, cost=0.0, conc=0)


def show_stats(bar: Progress, task: TaskID, stats: EngineStats) -> None:
    """Put an engine's live counters on its progress line."""
    bar.update(
        task,
        total=stats.total,
        completed=stats.done,
        rate=stats.rate,
        failed=stats.failed,
        unparsed=stats.unparsed,
        tokens=stats.prompt_tokens + stats.completion_tokens,
        cost=stats.cost_usd,
        conc=stats.concurrency,
    )


def render_table(table: ScoreTable, title: str) -> Table:
    """The MMAD table for the terminal."""
    from mmad.report.tables import fmt, table_columns, table_rows

    view = Table(title=title)
    view.add_column("Dataset")
    narrow = console.width < 150
    for subtask in table_columns(table):
        view.add_column(subtask.short if narrow else subtask.value.replace(" ", "\n"), justify="right")
    view.add_column("Average", justify="right", style="bold")
    view.add_column("Overkill", justify="right")
    view.add_column("Miss", justify="right")
    metrics = {r.name: r.detection_metrics() for r in table.rows}
    metrics["Average"] = table.average_detection
    for name, cells, average in table_rows(table):
        view.add_row(
            name,
            *map(fmt, cells),
            fmt(average),
            fmt(metrics[name]["Overkill"]),
            fmt(metrics[name]["Miss"]),
            end_section=name == table.rows[-1].name if table.rows else False,
        )
    caption = f"policy {table.policy.value}: {table.n_counted}/{table.n_answers} answers counted"
    if table.failures:
        caption += "; without an answer: " + ", ".join(f"{k} {v}" for k, v in sorted(table.failures.items()))
    if narrow:
        caption += "\n" + ", ".join(f"{s.short} = {s.value}" for s in table_columns(table))
    view.caption = caption
    return view


def render_circular(path: Path) -> Table:
    """The circular-evaluation table of a run."""
    from mmad.data.schema import Subtask
    from mmad.report.tables import fmt
    from mmad.score.answers import covers_text

    data = json.loads(path.read_text())
    view = Table(title="Circular evaluation: right on every rotation of the options")
    for column in ("Subtask", "Plain", "Circular", "Questions"):
        view.add_column(column, justify="left" if column == "Subtask" else "right")
    for row in data["rows"]:
        view.add_row(row["group"], fmt(row["plain"], 1), fmt(row["circular"], 1), str(row["questions"]))
    answered, gold = data["answered_letters"], data["gold_letters"]
    view.caption = (
        "answered letters "
        + ", ".join(f"{k} {answered.get(k, 0)}" for k in sorted(gold))
        + " | gold "
        + ", ".join(f"{k} {v}" for k, v in gold.items())
    )
    if data.get("declined"):
        # A declined subtask is a missing row, not a 0: say what All is then the mean of.
        declined = ", ".join(Subtask(name).short for name in data["declined"])
        view.caption += f"\n– = declined on every question: {declined}; All covers {covers_text(data['covers'])}"
    return view


def show_unparsed(n_unparsed: int, examples: list[str], hint: str = "") -> None:
    """Say how many replies had no readable letter, with a few of them (model text: no markup)."""
    if not n_unparsed:
        return
    err_console.print(
        f"{n_unparsed} replies had no readable letter (counted as unparsed){hint}; e.g.:", highlight=False
    )
    for reply in examples:
        shown = " ".join(reply.split())
        shown = shown[:157] + "..." if len(shown) > 160 else shown
        err_console.print(f"  {shown!r}", markup=False, highlight=False, soft_wrap=True)


def json_option(flag: str, text: str | None) -> dict[str, object] | None:
    """A json-object option (None when not given), or a ConfigError naming the flag."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        msg = f"{flag} is not valid json: {exc}"
        raise ConfigError(msg) from exc
    if not isinstance(value, dict):
        msg = f"{flag} must be a json object, e.g. '{{\"key\": 1}}'"
        raise ConfigError(msg)
    return value


def optional_number(flag: str, text: str | None, kind: type[int] | type[float]) -> int | float | str | None:
    """A number option that may also be 'none' (leave the field out); returns 'unset' when not given."""
    if text is None:
        return "unset"
    if text.strip().lower() in {"none", "omit", "off"}:
        return None
    try:
        return kind(text)
    except ValueError:
        msg = f"{flag} takes a {'whole number' if kind is int else 'number'} or 'none'; got {text!r}"
        raise ConfigError(msg) from None
