"""Shared terminal objects of the CLI: consoles, progress bars, the score table."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from mmad.errors import ConfigError

if TYPE_CHECKING:
    from mmad.run.engine import EngineStats
    from mmad.score.table import ScoreTable

console = Console()
# Progress, warnings and errors go to stderr, so stdout holds only results (and --json output).
err_console = Console(stderr=True)
PIPED_WIDTH = 140
"""Columns of output that goes to a file or a pipe (rich would assume 80) when COLUMNS does not say."""


def fit_consoles() -> None:
    """Size both consoles for this command: COLUMNS when set, else the terminal's width (followed as it
    changes), else the width of the terminal the other stream is on, else PIPED_WIDTH. Called by every
    command, so a command run in process sees today's COLUMNS."""
    columns = os.environ.get("COLUMNS", "")
    # `mmad score RUN | tee log`: stdout is a pipe, but a person reads it on the terminal stderr is on
    watched = next((c.width for c in (console, err_console) if c.is_terminal), None)
    for target in (console, err_console):
        if columns.isdigit() and int(columns) > 0:
            target.width = int(columns)
        elif not target.is_terminal:
            target.width = watched or PIPED_WIDTH


fit_consoles()

PLAIN_PROGRESS_EVERY_S = 5.0
"""Seconds between two plain progress lines of a task when stderr is not a terminal."""


class CliProgress(Progress):
    """The CLI's one progress display, on stderr: a live rich bar on a terminal; otherwise (CI logs,
    `nohup`, `make demo > log`), where a bar cannot redraw, a plain line per task when it starts,
    every `every_s` seconds while it moves, and when the display stops."""

    def __init__(
        self,
        *columns: str | ProgressColumn,
        console: Console,
        every_s: float = PLAIN_PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        label: str | None = None,
    ) -> None:
        self.plain = not console.is_terminal
        self.label = label
        super().__init__(*columns, console=console, disable=self.plain, get_time=clock)
        self._every_s = every_s
        self._clock = clock
        self._said_at: dict[TaskID, float] = {}
        self._said: dict[TaskID, str] = {}
        self._ended: set[TaskID] = set()
        self._plain_lock = threading.Lock()

    def update(
        self,
        task_id: TaskID,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        visible: bool | None = None,
        refresh: bool = False,
        **fields: Any,
    ) -> None:
        """Update a task (rich's update), and say so on a plain line when one is due."""
        super().update(
            task_id,
            total=total,
            completed=completed,
            advance=advance,
            description=description,
            visible=visible,
            refresh=refresh,
            **fields,
        )
        self._say(task_id, final=False)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Advance a task (rich's advance), and say so on a plain line when one is due."""
        super().advance(task_id, advance)
        self._say(task_id, final=False)

    def stop(self) -> None:
        """Stop the bar; piped, end each task with its last state (unless that line was just printed)."""
        super().stop()
        for task_id in list(self._said_at):
            self._say(task_id, final=True)

    def _say(self, task_id: TaskID, *, final: bool) -> None:
        if not self.plain:
            return
        with self._plain_lock:
            task = next((t for t in self.tasks if t.id == task_id), None)
            if task is None:
                return
            now = self._clock()
            last = self._said_at.get(task_id)
            if not (final or task.finished) and last is not None and now - last < self._every_s:
                return  # a task's end is said when it comes, not when the whole display stops
            if task.finished and task_id in self._ended:
                return  # its end was said; a rate updated after it would repeat the "done" line
            line = plain_progress_line(task, self.label)
            if line == self._said.get(task_id):
                return
            self._said_at[task_id], self._said[task_id] = now, line
            if task.finished:
                self._ended.add(task_id)
        self.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def plain_progress_line(task: Task, label: str | None = None) -> str:
    """One task's progress as a line of plain text: 'random: 120/538 (22%), 12.3 q/s, failed 2, ~0:00:35 left'
    (the label first, when the display has one: 'building images: 3/10 (30%)')."""
    done = int(task.completed)
    count = f"{done}/{int(task.total)} ({100 * done / task.total:.0f}%)" if task.total else str(done)
    parts = [count]
    rate = task.fields.get("rate")
    if isinstance(rate, int | float) and rate > 0:
        parts.append(f"{rate:.1f} q/s")
    for name, shown in (("failed", "failed {}"), ("cost", "${:.2f}")):
        value = task.fields.get(name)
        if isinstance(value, int | float) and value > 0:
            parts.append(shown.format(value))
    remaining = task.time_remaining
    if task.finished:
        parts.append(f"done in {_clock_text(task.finished_time or task.elapsed or 0.0)}")
    elif remaining is not None and task.total:
        parts.append(f"~{_clock_text(remaining)} left")
    name = f"{label} {task.description}" if label else task.description
    return f"{name}: " + ", ".join(parts)


def _clock_text(seconds: float) -> str:
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def progress_bar(target: Console | None = None) -> CliProgress:
    """The live bar of an evaluation: done, rate, ETA, failures, tokens, cost (on stderr).

    Below 120 columns the run's name is shortened and tokens and concurrency are left out, so the
    count and the time left always fit (at 80 columns rich would cut those first).
    """
    target = target or err_console
    narrow = target.width < 120
    details = (
        "failed {task.fields[failed]} · {task.fields[spent]}"
        if narrow
        else "failed {task.fields[failed]} · unparsed {task.fields[unparsed]} · "
        "{task.fields[spent_wide]} · conc {task.fields[conc]}"
    )
    name = Column(max_width=18, no_wrap=True, overflow="ellipsis") if narrow else None
    return CliProgress(
        TextColumn("[bold]{task.description}", table_column=name),
        BarColumn(bar_width=12 if narrow else 40),
        MofNCompleteColumn(),
        _RunFigures("{task.fields[rate]:.1f} q/s"),
        TimeRemainingColumn(),
        _RunFigures(details),
        console=target,
    )


class _RunFigures(TextColumn):
    """A run's rate, failures and cost; blank on a step's line (generating images, fitting the expert),
    where '0.0 q/s' and '$0.00' meant nothing."""

    def render(self, task: Task) -> Text:
        return Text("") if task.fields.get("step") else super().render(task)


def simple_progress(label: str | None = None, *, target: Console | None = None) -> CliProgress:
    """A plain bar (on stderr) for building, checking, downloading and reports: `label`, or each task's
    description when None."""
    return CliProgress(
        TextColumn(label or "{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=target or err_console,
        label=label,
    )


def add_run_task(bar: Progress, name: str, *, step: bool = False) -> TaskID:
    """A progress line for one run, with the fields `progress_bar` shows; `step` for work that sends no
    requests (its line shows the count and time left only)."""
    return bar.add_task(
        name,
        total=None,
        step=step,
        rate=0.0,
        failed=0,
        unparsed=0,
        # unmeasured until the first reply: '$0.00' read as a price for a model that may have none
        spent="–",
        spent_wide="–",
        conc=0,
    )


def show_stats(bar: Progress, task: TaskID, stats: EngineStats) -> None:
    """Put an engine's live counters on its progress line."""
    spent, spent_wide = spent_texts(stats)
    bar.update(
        task,
        total=stats.total,
        completed=stats.done,
        rate=stats.rate,
        failed=stats.failed,
        unparsed=stats.unparsed,
        spent=spent,
        spent_wide=spent_wide,
        conc=stats.concurrency,
    )


def spent_texts(stats: EngineStats) -> tuple[str, str]:
    """What a run has spent so far, short and wide, for its progress line: replies that carried no tokens
    or had no price are not free ones, so their line says so rather than '0 tok · $0.0000'."""
    tokens = stats.prompt_tokens + stats.completion_tokens
    if not (stats.priced_requests or stats.unpriced_requests or stats.cached):
        return "–", "–"  # no reply yet: nothing is measured
    if not tokens and stats.unpriced_requests and not stats.priced_requests:
        return "no usage", "no usage reported"
    if not stats.cost_known:
        return "no price", f"{tokens} tok · no price"
    return f"${stats.cost_usd:.2f}", f"{tokens} tok · ${stats.cost_usd:.4f}"


def render_table(table: ScoreTable, title: str) -> RenderableType:
    """The MMAD table for the terminal, every number whole at any width down to 80 columns.

    Wide, one table with the subtasks spelled out; narrower, short subtask names with a legend; narrower
    still (80 columns), the accuracy table without borders and Overkill and Miss stacked below it.
    """
    from mmad.report.tables import table_columns

    caption = f"policy {table.policy.value}: {table.n_counted}/{table.n_answers} answers counted"
    if table.failures:
        caption += "; without an answer: " + ", ".join(f"{k} {v}" for k, v in sorted(table.failures.items()))
    legend = ", ".join(f"{s.short} = {s.value}" for s in table_columns(table))
    if console.width >= 150:
        return _score_view(table, title, caption, long_names=True, detection=True)
    one = _score_view(table, title, f"{caption}\n{legend}", long_names=False, detection=True)
    if Measurement.get(console, console.options.update_width(10_000), one).maximum <= console.width:
        return one
    accuracy = _score_view(table, title, None, long_names=False, detection=False)
    notes = Text(f"{caption}\n{legend}", style="dim")
    return Group(accuracy, Text(""), _detection_view(table), notes)


def _score_view(table: ScoreTable, title: str, caption: str | None, *, long_names: bool, detection: bool) -> Table:
    from mmad.report.tables import fmt, table_columns, table_rows

    view = Table(title=title, caption=caption) if detection else _compact_table(title, caption)
    view.add_column("Dataset", overflow="fold")
    for subtask in table_columns(table):
        view.add_column(
            subtask.value.replace(" ", "\n") if long_names else subtask.short, justify="right", no_wrap=True
        )
    view.add_column("Average", justify="right", style="bold", no_wrap=True)
    if detection:
        view.add_column("Overkill", justify="right", no_wrap=True)
        view.add_column("Miss", justify="right", no_wrap=True)
    metrics = _detection_metrics(table)
    for name, cells, average in table_rows(table):
        extra = [fmt(metrics[name]["Overkill"]), fmt(metrics[name]["Miss"])] if detection else []
        view.add_row(
            name,
            *map(fmt, cells),
            fmt(average),
            *extra,
            end_section=name == table.rows[-1].name if table.rows else False,
        )
    return view


def _detection_view(table: ScoreTable) -> Table:
    from mmad.report.tables import fmt, table_rows

    view = _compact_table(None, None)
    view.add_column("Dataset", overflow="fold")
    view.add_column("Overkill", justify="right", no_wrap=True)
    view.add_column("Miss", justify="right", no_wrap=True)
    metrics = _detection_metrics(table)
    for name, _, _ in table_rows(table):
        view.add_row(
            name,
            fmt(metrics[name]["Overkill"]),
            fmt(metrics[name]["Miss"]),
            end_section=name == table.rows[-1].name if table.rows else False,
        )
    return view


def fitted_table(title: str, *, narrow: bool, **options: Any) -> Table:
    """A table that, narrow, drops its side borders and cell padding, so its columns fit 80 columns whole."""
    return Table(
        title=title,
        box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD,
        pad_edge=not narrow,
        padding=(0, 0 if narrow else 1),
        **options,
    )


def _compact_table(title: str | None, caption: str | None) -> Table:
    # No side borders and one space between columns: 8 columns of "100.00" and a dataset name fit 80.
    return Table(
        title=title,
        caption=caption,
        box=box.HORIZONTALS,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
        caption_justify="left",
    )


def _detection_metrics(table: ScoreTable) -> dict[str, dict[str, float | None]]:
    metrics = {r.name: r.detection_metrics() for r in table.rows}
    metrics["Average"] = table.average_detection
    return metrics


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


@contextlib.contextmanager
def setting_warnings() -> Iterator[None]:
    """A setting given by its old name (a FutureWarning from mmad.run.config) as one 'warning:' line on
    stderr, not Python's two lines of file and source; other warnings are shown as they would be."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FutureWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, FutureWarning):
                    err_console.print(f"warning: {warning.message}", highlight=False, markup=False, soft_wrap=True)
                else:
                    warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


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
