"""`mmad build`, `mmad demo`, `mmad assist` and `mmad review`: making benchmarks."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import TaskID

from mmad.cli.common import (
    add_run_task,
    console,
    err_console,
    progress_bar,
    render_table,
    show_stats,
    simple_progress,
)
from mmad.errors import ConfigError

if TYPE_CHECKING:
    from mmad.run.engine import EngineStats


def register(app: typer.Typer) -> None:
    """Add the benchmark-making commands to the app."""
    app.command("build")(build_command)
    app.command("demo")(demo_command)
    app.command("assist")(assist_command)
    app.add_typer(review_app, name="review")


def check_output_folder(source: Path, out: Path, *, overwrite: bool) -> None:
    """Refuse an output that is, holds or sits inside the input, or that already holds something."""
    src, dst = source.resolve(), out.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        msg = f"--out {out} overlaps the source {source}; write the benchmark to a folder outside it"
        raise ConfigError(msg)
    if out.exists() and not out.is_dir():
        msg = f"--out {out} is a file; give a folder"
        raise ConfigError(msg)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        msg = f"--out {out} is not empty; nothing was changed. Choose an empty folder, or pass --overwrite"
        raise ConfigError(msg)


def build_command(
    source: Path = typer.Argument(..., help="an anomaly-detection dataset root (<root>/<category>/...)"),
    out: Path = typer.Option(..., "--out", "-o", help="the benchmark folder to write"),
    layout: str = typer.Option("auto", "--layout", help="auto, mvtec, visa, loco, goodsad or folder"),
    name: str = typer.Option(None, "--name", help="the dataset name in every key (default: the folder's name)"),
    seed: int = typer.Option(0, "--seed", min=0),
    templates: int = typer.Option(3, "--templates", min=1, max=64, help="random and similar templates per image"),
    knowledge: Path = typer.Option(None, "--knowledge", help="domain-knowledge json for Object Analysis"),
    copy: bool = typer.Option(False, "--copy", help="copy images instead of linking them"),
    visa_split: str = typer.Option(
        "1cls", "--visa-split", help="raw VisA's split scheme: 1cls, 2cls_fewshot or 2cls_highshot"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into a folder that is not empty"),
) -> None:
    """Build an MMAD-style benchmark from an anomaly-detection dataset."""
    from mmad.builder.build import build_benchmark

    if not source.is_dir():
        msg = f"{source} is not a folder; give the root of an anomaly-detection dataset (<root>/<category>/...)"
        raise ConfigError(msg)
    check_output_folder(source, out, overwrite=overwrite)
    with simple_progress("building") as bar:
        task = bar.add_task("images", total=None)
        benchmark, report = build_benchmark(
            source,
            out,
            name=name,
            layout=layout,
            seed=seed,
            templates=templates,
            knowledge=knowledge,
            copy=copy,
            visa_split=visa_split,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(
        f"[green]built[/] {out / 'mmad.json'}: {report.images} images, {benchmark.n_questions} questions "
        f"({report.layout} layout)"
    )
    from mmad.data.schema import RAW_TYPE_TO_SUBTASK

    for qtype, n in sorted(report.questions.items()):
        subtask = RAW_TYPE_TO_SUBTASK.get(qtype)
        # The subtask's name, as every table shows it; the json's own type name where it differs.
        label = qtype if subtask is None or subtask.value == qtype else f"{subtask.value} (type {qtype!r} in mmad.json)"
        console.print(f"  {label}: {n}", highlight=False)
    for reason, n in sorted(report.skipped.items()):
        console.print(f"  [yellow]skipped[/] {n}: {reason}", highlight=False)
    for reason, n in sorted(report.renamed.items()):
        console.print(f"  renamed {n}: {reason}", highlight=False)
    for note in report.notes:
        console.print(f"  note: {note}", highlight=False, soft_wrap=True)
    console.print(f"next: mmad validate {out} ; mmad eval --model ... --data {out}")


def demo_command(
    out: Path = typer.Option(Path("mmad-demo"), "--out", "-o", help="where the demo writes everything"),
    seed: int = typer.Option(0, "--seed", min=0),
    force: bool = typer.Option(False, "--force", help="replace the folder of an earlier demo"),
) -> None:
    """The whole job on synthetic data, with no download and no key: build, serve, evaluate, score."""
    from mmad.cli.demo import DEMO_BOOTSTRAP, SMOKE_TEST_LABEL, prepare_demo_folder, run_demo

    prepare_demo_folder(out, replace=force)

    started = time.monotonic()
    console.print(
        "[bold]mmad demo[/]: generating a synthetic dataset, building its benchmark, serving the models "
        "that run here on 127.0.0.1 and evaluating them through the OpenAI-compatible client."
    )
    stage = ["starting"]  # what a Ctrl-C or SIGTERM interrupts, for the line that says so
    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(name: str, stats: EngineStats) -> None:
            if name not in tasks:
                tasks[name] = add_run_task(bar, name)
                stage.append(f"evaluating {name}")
            show_stats(bar, tasks[name], stats)

        def on_step(step: str, done: int, total: int) -> None:
            name = {"generating": "generating images", "building": "building benchmark"}.get(step, step)
            if name not in tasks:
                tasks[name] = add_run_task(bar, name, step=True)
                stage.append(name)
            bar.update(tasks[name], completed=done, total=total)

        try:
            result = run_demo(out, seed=seed, on_progress=on_progress, on_step=on_step, fresh=False)
        except KeyboardInterrupt:
            bar.stop()
            _demo_interrupted(out, stage[-1])
            raise typer.Exit(130) from None
    from mmad.cli.score_extras import print_metrics

    for name, run in result.runs.items():
        console.print(render_table(run.table, f"{name} — {SMOKE_TEST_LABEL}"))
        print_metrics(
            result.scored[name].metrics, title=f"{name}: metrics, 95% intervals from {DEMO_BOOTSTRAP.samples} resamples"
        )
    if result.report is not None:
        console.print(f"report (intervals, operating points, cost and quality): {result.report}")
    console.print(f"benchmark: {result.benchmark}; runs: {result.folder / 'runs'}; {time.monotonic() - started:.0f} s")


def _demo_interrupted(out: Path, stage: str) -> None:
    """Say what an interrupted demo was doing and what its folder keeps (typer would exit 130 silently)."""
    from mmad.run.interrupts import interrupt_cause

    runs = sorted(p.name for p in (out / "runs").glob("*") if (p / "run.json").is_file())
    kept = f"the runs started so far ({', '.join(runs)})" if runs else "the files made so far"
    err_console.print(
        f"interrupted ({interrupt_cause()}) while {stage}: {out} keeps {kept}, not a finished demo; "
        f"start it again with: mmad demo --out {out} --force",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def assist_command(
    benchmark: Path = typer.Argument(..., help="a benchmark built by `mmad build` (folder or mmad.json)"),
    model: str = typer.Option(..., "--model", "-m", help="the MLLM that captions and writes questions"),
    base_url: str = typer.Option(None, "--base-url"),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, max=256),
) -> None:
    """MLLM-assisted questions: caption each image with its defect outlined, then write questions."""
    from mmad.builder.assisted import assist
    from mmad.models.registry import ModelOptions, create_model

    backend = create_model(model, ModelOptions(base_url=base_url, detail="high"))
    backend.check()
    report = assist(benchmark, backend, concurrency=concurrency)
    added = ", ".join(f"{k} {v}" for k, v in report.added.items())
    if added:
        console.print(f"{report.captions} captions; added {added}", highlight=False, markup=False, soft_wrap=True)
    else:
        console.print(
            f"{report.captions} captions; added no questions (every one was rejected: reasons below)"
            if report.rejected
            else f"{report.captions} captions; added no questions",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for reason, n in sorted(report.rejected.items()):
        console.print(f"  [yellow]rejected[/] {n}: {reason}")
    console.print(f"next: mmad review export {benchmark} --out review/")


review_app = typer.Typer(help="Human review of generated questions: export a CSV and an HTML page, import verdicts.")


@review_app.command("export")
def review_export(
    benchmark: Path = typer.Argument(..., help="the benchmark folder or its mmad.json"),
    out: Path = typer.Option(Path("review"), "--out", "-o", help="the folder for review.csv and review.html"),
    all_questions: bool = typer.Option(False, "--all", help="include questions already accepted"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a review.csv or review.html already in --out"),
) -> None:
    """Write review.csv (fill its verdict column with accept or reject) and review.html."""
    from mmad.builder.review import export_review

    csv_path, html_path = export_review(benchmark, out, only_unreviewed=not all_questions, overwrite=overwrite)
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    console.print(f"wrote {csv_path} and {html_path}", highlight=False, markup=False)
    if rows == 0:
        console.print("no question awaits review (all are accepted); --all exports them all", highlight=False)
    console.print(f"next: fill the verdict column, then mmad review import {benchmark} {csv_path}", highlight=False)


@review_app.command("import")
def review_import(
    benchmark: Path = typer.Argument(..., help="the benchmark folder or its mmad.json"),
    verdicts: Path = typer.Argument(..., help="the filled-in review.csv"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would change, change nothing"),
    ignore_missing: bool = typer.Option(
        False, "--ignore-missing", help="pass over verdicts for questions not in the benchmark instead of refusing"
    ),
) -> None:
    """Apply accept/reject verdicts from a review CSV: each change is listed, the old json kept as a backup."""
    from mmad.builder.review import import_review
    from mmad.builder.verdicts import shorten

    result = import_review(benchmark, verdicts, dry_run=dry_run, ignore_missing=ignore_missing)
    say = "would be " if dry_run else ""
    for change in result.changes:
        console.print(
            f"{say}{change.action} {change.image} [{change.type}] {shorten(change.stem, 100)!r} "
            f"({change.uid}, line {change.line})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for key in result.images_removed:
        console.print(f"{say}removed image {key} (no question left)", highlight=False, markup=False, soft_wrap=True)
    for row in result.already_removed:
        console.print(f"not applied: {row.describe()} was removed by an earlier import", highlight=False, markup=False)
    for row in result.skipped:
        console.print(
            f"not applied: {row.describe()} is not in this benchmark (--ignore-missing)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    counts = (
        f"accepted {result.accepted}, removed {result.rejected}, already accepted {result.unchanged}, "
        f"no verdict {result.pending}"
    )
    if result.already_removed or result.skipped:
        counts += f", not applied {len(result.already_removed) + len(result.skipped)}"
    if dry_run:
        console.print(f"dry run: {counts}; nothing was changed", highlight=False, markup=False)
    elif not result.written:
        console.print(f"{counts}; nothing to change, the benchmark was not rewritten", highlight=False, markup=False)
    else:
        console.print(counts, highlight=False, markup=False)
        logged = f"changes logged in {result.log}" if result.log else "the review log could not be written"
        console.print(
            f"previous json kept as {result.backup} (to undo: copy it back); {logged}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
