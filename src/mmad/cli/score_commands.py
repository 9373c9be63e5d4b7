"""`mmad score`, `mmad compare` and `mmad report`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mmad.cli.common import console, render_table


def register(app: typer.Typer) -> None:
    """Add the scoring commands to the app."""
    app.command("score")(score_command)
    app.command("compare")(compare_command)
    app.command("report")(report_command)


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


def report_command(
    runs: list[Path] = typer.Argument(..., help="run directories"),
    out: Path = typer.Option(Path("report.html"), "--out", "-o"),
    published: Path = typer.Option(None, "--published", help="a folder of published accuracy CSVs (all_result/)"),
    title: str = typer.Option("MMAD report", "--title"),
) -> None:
    """One self-contained HTML page: leaderboard, tables, heatmaps, per-category results, sample answers."""
    from mmad.report.html import write_html_report
    from mmad.score.official_csv import load_published

    rows = load_published(published) if published else []
    path = write_html_report(runs, out, published=rows, title=title)
    console.print(f"wrote {path}")
