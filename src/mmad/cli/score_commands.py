"""`mmad score` and `mmad compare` (`report` and `leaderboard` live in report_commands)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mmad.cli.common import console
from mmad.report.tables import fmt, table_columns, table_rows
from mmad.score.table import ScoreTable


def register(app: typer.Typer) -> None:
    """Add the scoring commands to the app."""
    app.command("score")(score_command)
    app.command("compare")(compare_command)


def render_table(table: ScoreTable, title: str) -> Table:
    """The MMAD table for the terminal."""
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
    import json

    data = json.loads(path.read_text())
    view = Table(title="Circular evaluation: right on every rotation of the options")
    for column in ("Subtask", "Plain", "Circular", "Questions"):
        view.add_column(column, justify="left" if column == "Subtask" else "right")
    for row in data["rows"]:
        view.add_row(row["group"], f"{row['plain']:.1f}", f"{row['circular']:.1f}", str(row["questions"]))
    answered, gold = data["answered_letters"], data["gold_letters"]
    view.caption = (
        "answered letters "
        + ", ".join(f"{k} {answered.get(k, 0)}" for k in sorted(gold))
        + " | gold "
        + ", ".join(f"{k} {v}" for k, v in gold.items())
    )
    return view


def score_command(
    answers: Path = typer.Argument(..., help="a run directory, records.jsonl, or official answers .json"),
    policy: str = typer.Option(
        "strict", "--policy", help="strict (unanswered = wrong) or upstream (official summary.py)"
    ),
    out: Path = typer.Option(None, "--out", "-o", help="where to write CSV, Markdown, JSON and the heatmap"),
    no_plot: bool = typer.Option(False, "--no-plot", help="skip the heatmap PNG"),
) -> None:
    """Score answers: the MMAD table in the terminal, and its files."""
    from mmad.report.files import write_score_files
    from mmad.score.load import load_answers
    from mmad.score.table import score_answers

    graded = load_answers(answers)
    table = score_answers(graded, policy)
    console.print(render_table(table, f"MMAD — {answers.name}"))
    for note in table.notes:
        console.print(f"[dim]note: {note}[/]")
    folder = out or (answers if answers.is_dir() else answers.parent)
    stem = "" if answers.is_dir() else answers.stem
    if policy != "strict":
        stem = f"{stem}_{policy}" if stem else policy
    paths = write_score_files(table, graded, folder, stem=stem, title=f"MMAD — {answers.name}", plot=not no_plot)
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


def compare_command(
    run_a: Path = typer.Argument(..., help="the baseline run (directory, records.jsonl or answers json)"),
    run_b: Path = typer.Argument(..., help="the run to compare with it"),
    samples: int = typer.Option(1000, "--samples", help="bootstrap resamples"),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="print json"),
) -> None:
    """Per-subtask and per-category differences (B - A) with paired bootstrap 95% intervals."""
    import json

    from mmad.score.compare import compare_runs
    from mmad.score.load import load_answers

    differences = compare_runs(load_answers(run_a), load_answers(run_b), samples=samples, seed=seed)
    if as_json:
        typer.echo(json.dumps([{**vars(d), "delta": d.delta} for d in differences], indent=2))
        return
    view = Table(title=f"{run_b.name} vs {run_a.name} (paired bootstrap by image, {samples} resamples)")
    for column in ("Group", "A", "B", "B - A", "95% interval", "n"):
        view.add_column(column, justify="left" if column == "Group" else "right")
    for d in differences:
        significant = d.low > 0 or d.high < 0
        style = ("green" if d.delta > 0 else "red") if significant else ""
        view.add_row(
            d.group,
            f"{d.a:.1f}",
            f"{d.b:.1f}",
            f"[{style}]{d.delta:+.1f}[/]" if style else f"{d.delta:+.1f}",
            f"[{d.low:+.1f}, {d.high:+.1f}]",
            str(d.n),
            end_section=d.group == "Average",
        )
    console.print(view)
