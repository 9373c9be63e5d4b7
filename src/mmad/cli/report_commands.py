"""`mmad report` (the HTML report) and `mmad leaderboard` (the ranking in the terminal or a file)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from mmad.cli.common import console, err_console, fitted_table, simple_progress
from mmad.errors import ConfigError, RunError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from mmad.report.leaderboard import Leaderboard, LeaderboardRow
    from mmad.score.published import PublishedEntry

FORMATS = ("table", "markdown", "csv", "json")
CI_HELP = "95% intervals: a bootstrap over each run's images (as `mmad score --ci`)"
SAMPLES_HELP = "bootstrap resamples for --ci [default: 1000]"
SEED_HELP = "the bootstrap's seed for --ci [default: 0]"
_SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json", ".txt": "table"}


def register(app: typer.Typer) -> None:
    """Add `report` and `leaderboard` to the app."""
    app.command("report")(report_command)
    app.command("leaderboard")(leaderboard_command)


def _published(folder: Path | None, none: bool) -> list[PublishedEntry]:
    """The published rows: the shipped ones, a folder's CSVs, or none."""
    from mmad.score.published import load_published_results

    if none:
        return []
    return load_published_results(folder)


def report_command(
    runs: list[Path] = typer.Argument(None, help="run directories made by `mmad eval`", show_default=False),
    out: Path = typer.Option(
        Path("report.html"), "--out", "-o", help="a .html file (self-contained), or a folder for index.html + thumbs/"
    ),
    published: Path = typer.Option(
        None, "--published", help="a folder of accuracy CSVs instead of the published results shipped with mmad"
    ),
    no_published: bool = typer.Option(False, "--no-published", help="leave the published results out"),
    data: Path = typer.Option(None, "--data", "-d", help="the data root the runs' images are in, if it moved"),
    thumb_size: int = typer.Option(None, "--thumb-size", min=16, max=512, help="thumbnail side in px (default: auto)"),
    policy: str = typer.Option(
        "strict", "--policy", help="strict or upstream: the policy runs are ranked and shown by"
    ),
    title: str = typer.Option("MMAD report", "--title"),
    ci: bool = typer.Option(False, "--ci", help=CI_HELP),
    samples: int | None = typer.Option(None, "--samples", min=100, max=1_000_000, help=SAMPLES_HELP),
    seed: int | None = typer.Option(None, "--seed", min=0, help=SEED_HELP),
) -> None:
    """One HTML page: leaderboard, radar and heatmaps, per-category and per-defect tables, run cards, every answer."""
    from mmad.report.html import write_html_report

    if not runs:
        msg = "give at least one run directory, e.g. `mmad report runs/* --out report.html`"
        raise ConfigError(msg)
    from mmad.cli.score_extras import ci_bootstrap

    bootstrap = ci_bootstrap(ci, samples, seed)
    with _warnings_as_lines(), simple_progress() as bar:
        task = bar.add_task("thumbnails", total=None)
        path = write_html_report(
            runs,
            out,
            published=_published(published, no_published),
            title=title,
            data=data,
            thumb_size=thumb_size,
            policy=_policy(policy),
            bootstrap=bootstrap,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    folder = out.suffix.lower() not in {".html", ".htm"}
    thumbs = path.parent / "thumbs"
    written = [path, *(p for p in thumbs.rglob("*") if p.is_file())] if folder and thumbs.is_dir() else [path]
    total = sum(p.stat().st_size for p in written)
    console.print(f"wrote {path} ({total / 1e6:.1f} MB{' with its thumbnails' if len(written) > 1 else ''})")


class _WarningLines(logging.Handler):
    """The library's warnings as the CLI's own `warning: ...` lines, each whole (the terminal wraps it).

    The log handler's timestamp and level columns left a long warning (another benchmark under --data)
    a narrow block, a few words a line, at 80 columns. Quieter records go on to the log handler."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            logging.getLogger().handle(record)
            return
        line = Text.assemble(("warning", "yellow"), f": {record.getMessage()}")
        err_console.print(line, soft_wrap=True, highlight=False)


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """While the report is written, mmad's warnings print as CLI warning lines, not log records."""
    from mmad.run.secrets import RedactingFilter

    handler = _WarningLines()
    handler.addFilter(RedactingFilter())
    library = logging.getLogger("mmad")
    propagated = library.propagate
    library.addHandler(handler)
    library.propagate = False
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.propagate = propagated


def _policy(name: str) -> str:
    if name not in ("strict", "upstream"):
        msg = f"--policy {name!r}: choose strict or upstream"
        raise ConfigError(msg)
    return name


def render_leaderboard(board: Leaderboard, width: int = 200) -> list[RenderableType]:
    """The leaderboard for the terminal: ranked rows, then the rest, then the group legend.

    Below 140 columns the tables lose their borders and the protocol and marks move under each table,
    one line per row: in a column of their own they were folded a word per line and cut every name."""
    from mmad.report.leaderboard.model import DETECTION_ONLY
    from mmad.report.leaderboard.serialise import interval_text
    from mmad.report.tables import fmt

    narrow = width < 140
    letters = board.group_letters()
    tables: list[RenderableType] = []
    for section, title, rows in board.sections():
        view = fitted_table(title, narrow=narrow, title_justify="left")
        with_ci = any(row.intervals for row in board.rows)
        detection = section == DETECTION_ONLY
        # one subtask's figure by the source's metric: no average, strict, upstream, overkill or miss to show
        figure = board.detection_figure() if detection else "Average"
        columns = ["#", "Grp", "Model", figure, *(["95% CI"] if with_ci and not detection else [])]
        figures = [] if detection else ["Strict", "Upstream", "Overkill", "Miss"]
        if narrow:  # a column with no figure in this section gives its width to the names
            figures = [c for c in figures if any(_figure_of(row, c) is not None for row in rows)]
        headers = [*columns, *figures, "Completeness"]
        notes = []
        table_rows = []
        for row in rows:
            protocol = [f"card {row.card_hash[:8]}"] if row.card_hash else ([] if row.kind == "run" else ["published"])
            rank = str(row.rank) if row.rank else "–"
            marks = "; ".join([*protocol, *row.marks])
            cells = [
                rank,
                letters[row.group],
                row.name,
                fmt(row.score),
                *([interval_text(row)] if with_ci and not detection else []),
                *(fmt(_figure_of(row, column)) for column in figures),
                _short_completeness(row),
            ]
            table_rows.append((cells, marks, "bold" if row.kind == "run" else ""))
            if marks != "published":  # the group legend already says which rows are published
                notes.append(f"{rank} {letters[row.group]} {row.name}: {marks}")
        widths = _narrow_widths(headers, [cells for cells, _, _ in table_rows], width) if narrow else {}
        for column in headers:
            view.add_column(
                column,
                justify="left" if column in ("Model", "Completeness", "Grp") else "right",
                overflow="fold",
                no_wrap=column not in ("Model", "Completeness"),
                width=widths.get(column),
            )
        if not narrow:
            view.add_column("Protocol / marks", overflow="fold")
        model = headers.index("Model")
        for cells, marks, style in table_rows:
            if narrow:
                cells[model] = _wrap_name(cells[model], widths["Model"])
            view.add_row(*cells, *([] if narrow else [marks]), style=style)
        tables.append(view)
        if narrow and notes:
            tables.append(Text("\n".join(notes)))
    metrics = _metrics_table(board, narrow=narrow)
    if metrics is not None:
        tables.append(metrics)
    legend = Table(title="Groups (ranks count only within a group)", title_justify="left", show_header=False)
    legend.add_column("Grp")
    legend.add_column("Group", overflow="fold")
    for key, label in board.groups.items():
        legend.add_row(letters[key], label)
    tables.append(legend)
    return tables


def _metrics_table(board: Leaderboard, *, narrow: bool) -> Table | None:
    """Every registered metric's headline figures for each run, as `mmad score` shows them."""
    from mmad.report.leaderboard.serialise import metric_columns
    from mmad.score.metrics import figure_text

    columns = metric_columns(board)
    runs = [row for row in board.rows if row.metrics]
    if not columns or not runs:
        return None
    view = fitted_table("Metrics of your runs (whole run)", narrow=narrow, title_justify="left")
    if narrow:  # a row per figure, a column per run: nine figure columns cannot share 80 columns with a name
        view.add_column("Figure", overflow="fold")
        for row in runs:
            view.add_column(row.name, justify="right", overflow="fold")
        for key in columns:
            view.add_row(key, *(figure_text(key, row.metrics.get(key)) for row in runs))
        return view
    view.add_column("Model", overflow="fold")
    for key in columns:
        view.add_column(key.replace(":", "\n", 1), justify="right", overflow="fold")
    for row in runs:
        view.add_row(row.name, *(figure_text(key, row.metrics.get(key)) for key in columns))
    return view


def _figure_of(row: LeaderboardRow, column: str) -> float | None:
    return {"Strict": row.strict, "Upstream": row.upstream, "Overkill": row.overkill, "Miss": row.miss}[column]


def _narrow_widths(headers: list[str], rows: list[list[str]], width: int) -> dict[str, int]:
    """The Model and Completeness columns' widths in a borderless table of ``width``: the figures keep theirs,
    Completeness its header and longest word, and the names the rest (up to their longest line)."""
    fixed = sum(
        max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers) if h not in ("Model", "Completeness")
    )
    left = width - fixed - (len(headers) - 1) - 2  # one space between columns and at each edge
    index = headers.index("Completeness")
    completeness = max([len("Completeness"), *(len(w) for r in rows for w in r[index].split())])
    names = max((len(r[headers.index("Model")]) for r in rows), default=5)
    model = max(10, min(names, left - completeness))
    return {"Model": model, "Completeness": max(completeness, left - model)}


def _wrap_name(name: str, width: int) -> str:
    """A name in lines of at most ``width``, broken between words, and inside a word too long for a line only
    after a hyphen, a dot or an underscore ('Qwen2-VL-72B-' / 'Instruct'): folded at the width, 'Qwen2-VL-72B-Instru'
    / 'ct' read as two names."""
    lines: list[str] = []
    for word in name.split():
        chunks = [word]
        if len(word) > width:  # a line per run of parts that fits
            chunks = [""]
            for part in re.findall(r"[^-._]*[-._]|[^-._]+$", word):
                if chunks[-1] and len(chunks[-1]) + len(part) > width:
                    chunks.append("")
                chunks[-1] += part
        first, *rest = chunks
        if lines and len(lines[-1]) + 1 + len(first) <= width:
            lines[-1] += " " + first
        else:
            lines.append(first)
        lines.extend(rest)
    return "\n".join(lines)


def _short_completeness(row: LeaderboardRow) -> str:
    if row.kind == "run" and row.asked is not None:
        from mmad.report.leaderboard.rules import left_out_by_split

        # out of what its clean split kept: out of the whole benchmark, a whole run read as an interrupted one
        split = left_out_by_split(row.card)
        if split and row.in_benchmark is not None:
            kept = row.in_benchmark - split
            return f"{row.asked:,}/{kept:,} asked ({split:,} left out), {row.answered:,} answered"
        return f"{row.asked:,}/{row.in_benchmark:,} asked, {row.answered:,} answered"
    return row.completeness.split(":")[0].replace(" (as published)", "")


def leaderboard_command(
    runs: list[Path] = typer.Argument(None, help="run directories to rank beside the published results"),
    output_format: str = typer.Option(
        None, "--format", "-f", help="table, markdown, csv or json (default: from --out's suffix, else table)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print json (--format json, as score, runs and compare)"),
    out: Path = typer.Option(None, "--out", "-o", help="write to this file instead of the terminal"),
    dataset: list[str] = typer.Option(None, "--dataset", help="only these source datasets (repeatable)"),
    subtask: list[str] = typer.Option(None, "--subtask", help="only these subtasks (repeatable; names or AD, DC, ...)"),
    protocol: str = typer.Option(
        None, "--protocol", help="keep rows whose protocol or group mentions this ('published', 'runs', a card hash)"
    ),
    policy: str = typer.Option("strict", "--policy", help="strict or upstream: the average runs are ranked by"),
    published: Path = typer.Option(
        None, "--published", help="a folder of accuracy CSVs instead of the shipped results"
    ),
    no_published: bool = typer.Option(False, "--no-published", help="rank your runs only"),
    ci: bool = typer.Option(False, "--ci", help=CI_HELP),
    samples: int | None = typer.Option(None, "--samples", min=100, max=1_000_000, help=SAMPLES_HELP),
    seed: int | None = typer.Option(None, "--seed", min=0, help=SEED_HELP),
) -> None:
    """The published results and your runs in one ranking; incomplete, subset and other-protocol rows are marked."""
    from mmad.cli.score_extras import ci_bootstrap
    from mmad.report.leaderboard import (
        build_leaderboard,
        leaderboard_csv,
        leaderboard_json,
        leaderboard_markdown,
        parse_subtasks,
    )

    if as_json:
        # score, runs and compare print json with --json; the leaderboard refusing it was a usage error users met
        if output_format not in (None, "json"):
            msg = f"--json with --format {output_format}: give one of them"
            raise ConfigError(msg)
        output_format = "json"
    if out and not output_format and out.suffix.lower() not in _SUFFIX_FORMATS:
        # the terminal table was written whatever the name said (a board.html of text)
        html = "; an HTML page is `mmad report RUNS --out FILE.html`" if out.suffix.lower() in {".html", ".htm"} else ""
        msg = (
            f"--out {out}: its suffix names no format; give --format (table, markdown, csv, json) or a name ending "
            f"in {', '.join(_SUFFIX_FORMATS)}{html}"
        )
        raise ConfigError(msg)
    chosen = output_format or (_SUFFIX_FORMATS.get(out.suffix.lower(), "table") if out else "table")
    if chosen not in FORMATS:
        msg = f"--format {chosen!r}: choose one of {', '.join(FORMATS)}"
        raise ConfigError(msg)
    board = build_leaderboard(
        runs or [],
        _published(published, no_published),
        datasets=dataset or [],
        subtasks=parse_subtasks(subtask or []),
        protocol=protocol,
        policy=_policy(policy),
        bootstrap=ci_bootstrap(ci, samples, seed),
    )
    if not board.rows:
        # the notes that say which rows the view left out (the others are about rows shown, or about no row)
        why = [note for note in board.notes if "left out" in note]
        if protocol:
            why.append(f"--protocol {protocol!r} matches no row (try published, runs, a card hash or 0-shot)")
        msg = "nothing to rank: " + " ".join(why or ["no run or published row is left in this view"])
        raise RunError(msg)
    if chosen == "table":
        if out:
            from rich.console import Console

            with out.open("w", encoding="utf-8") as handle:
                file_console = Console(file=handle, width=200)
                for table in render_leaderboard(board, file_console.width):
                    file_console.print(table)
                for note in board.notes:
                    file_console.print(note)
            console.print(f"wrote {out}")
            return
        for table in render_leaderboard(board, console.width):
            console.print(table)
        for note in board.notes:
            console.print(f"[dim]{note}[/]")
        return
    text = {"markdown": leaderboard_markdown, "csv": leaderboard_csv, "json": leaderboard_json}[chosen](board)
    if out:
        from mmad._io import atomic_write_text

        atomic_write_text(out, text)
        console.print(f"wrote {out}")
    else:
        typer.echo(text, nl=False)
