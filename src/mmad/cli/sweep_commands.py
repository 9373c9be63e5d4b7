"""`mmad sweep`: a grid of runs from a TOML file or flags, each cell a run folder, one table at the end.

Exit codes: 0 every cell is complete, 1 some cell is partial or failed (resume the sweep), 2 a
usage or input error (nothing was run), 130 interrupted (resume with ``mmad sweep --resume DIR``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from mmad.cli.common import add_run_task, console, err_console, progress_bar, setting_warnings
from mmad.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the sweep command to the app."""
    app.command("sweep")(sweep_command)


def _setting(text: str) -> tuple[str, Any]:
    """KEY=VALUE, the value read as JSON when it is JSON (numbers, true, lists), else as text."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        msg = f"--set {text!r}: write a setting as KEY=VALUE, e.g. --set limit=200 or --set image_size=768"
        raise ConfigError(msg)
    try:
        return key.strip().replace("-", "_"), json.loads(value)
    except ValueError:
        return key.strip().replace("-", "_"), value


def sweep_command(
    ctx: typer.Context,
    grid: Path = typer.Argument(None, help="a sweep file (TOML), e.g. docs/sweeps/paper-ablations.toml"),
    out: Path = typer.Option(None, "--out", "-o", help="the sweep folder (default sweeps/<file name>)"),
    resume: Path = typer.Option(None, "--resume", help="continue this sweep: complete cells are kept"),
    data: Path = typer.Option(None, "--data", "-d", help="data root holding mmad.json, or the json"),
    model: list[str] = typer.Option(None, "--model", "-m", help="a model of the grid (repeat)"),
    recipe: list[str] = typer.Option(None, "--recipe", help="official recipes instead of --protocol (repeat)"),
    protocol: list[str] = typer.Option(None, "--protocol", help="protocols of the grid (repeat)"),
    shots: list[int] = typer.Option(None, "--shots", help="shot counts of the grid (repeat)"),
    similar_templates: str = typer.Option(
        None, "--similar-templates", help="similar template images: no, yes or both [default: no]"
    ),
    templates: list[str] = typer.Option(None, "--templates", hidden=True, help="old: random and/or similar"),
    strategies: list[str] = typer.Option(None, "--strategies", help="a strategy set: none, rag, rag+cot (repeat)"),
    circular: str = typer.Option(None, "--circular", help="no, yes or both [default: no]"),
    parallel: int = typer.Option(None, "--parallel", help="cells run at once [default: 2]"),
    engine: str = typer.Option(None, "--engine", help="local or ray [default: local]"),
    ray_address: str = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS", help="the Ray cluster to use"),
    setting: list[str] = typer.Option(None, "--set", help="a flat setting of every cell, KEY=VALUE (repeat)"),
    html: bool = typer.Option(True, "--html/--no-html", help="also write an HTML report of every cell"),
    ci: bool = typer.Option(False, "--ci", help="95% intervals in the table: a bootstrap over each cell's images"),
    samples: int | None = typer.Option(
        None, "--samples", min=100, max=1_000_000, help="bootstrap resamples for --ci [default: 1000]"
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        min=0,
        help="the --ci bootstrap's seed [default: 0]; not the questions' sample (--set seed=N seeds every cell's)",
    ),
) -> None:
    """Run a grid of evaluations (models × protocol or recipe × shots × similar_templates × strategies × circular)."""
    from mmad.cli.score_extras import ci_bootstrap
    from mmad.run.sweep import SweepSpec

    bootstrap = ci_bootstrap(ci, samples, seed)
    spec: SweepSpec | None = None
    if resume is not None:
        if grid is not None:
            msg = "--resume continues a sweep with its recorded grid; it cannot be combined with a sweep file"
            raise ConfigError(msg)
        _refuse_with_resume(ctx, resume)
        folder = resume
    else:
        raw: dict[str, Any] = {}
        if grid is not None:
            # -d and -m fill a file that leaves data or models out (a flag over a key it gives is a note below)
            fill = {k: v for k, v in (("data", str(data) if data else None), ("models", list(model or []))) if v}
            with setting_warnings():  # a setting by its old name: one line each
                raw = SweepSpec.from_file(grid, fill).model_dump(mode="json", exclude_unset=True)  # what the file says
        from_file = set(raw) - {"settings"}
        file_settings = dict(raw.get("settings") or {})
        axes = {
            "models": list(model) if model else None,
            "recipe": list(recipe) if recipe else None,
            "protocol": list(protocol) if protocol else None,
            "shots": list(shots) if shots else None,
            "similar_templates": _similar_templates(similar_templates, templates),
            "strategies": list(strategies) if strategies else None,
            "circular": _no_yes_both("--circular", circular),
            "parallel": parallel,
            "data": str(data) if data else None,
        }
        given = {k: v for k, v in axes.items() if v is not None}
        settings = dict(file_settings)
        settings.update(dict(_setting(s) for s in setting or []))
        settings.update({k: v for k, v in (("engine", engine), ("ray_address", ray_address)) if v})
        for key in sorted(k for k in given if k in from_file and raw[k] != _as_in_file(k, given[k])):
            _note(f"{_FLAGS[key]} replaces {grid}'s {key} = {raw[key]}")
        for key in sorted(k for k in settings if k in file_settings and file_settings[k] != settings[k]):
            _note(f"{key} {settings[key]} replaces {grid}'s [settings] {key} = {file_settings[key]}")
        raw.update(given)
        raw["settings"] = settings
        if not raw.get("models") or not raw.get("data"):
            msg = (
                "give a sweep file, or --model and --data (e.g. mmad sweep -m random -d data/MMAD --shots 0 --shots 1)"
            )
            raise ConfigError(msg)
        with setting_warnings():
            spec = SweepSpec.parse(raw, source=str(grid) if grid else "the sweep flags")
        folder = out or Path("sweeps") / (grid.stem if grid else "sweep")
        notes = (n for cell in spec.cells() for n in [*cell.config.override_notes(), *cell.config.recipe_notes()])
        for line in dict.fromkeys(notes):
            _note(line)  # a setting on top of a recipe is shown once, however many cells it reaches
    _run(spec, folder, resume=resume is not None, html=html, bootstrap=bootstrap)


# The flag of each key of the grid, for notes and refusals.
_FLAGS = {
    "models": "--model",
    "recipe": "--recipe",
    "protocol": "--protocol",
    "shots": "--shots",
    "similar_templates": "--similar-templates",
    "strategies": "--strategies",
    "circular": "--circular",
    "parallel": "--parallel",
    "data": "--data",
}


def _as_in_file(key: str, value: Any) -> Any:
    """A flag's value as the sweep file's entry reads once parsed: ``-m random`` is ``{"name": "random"}``."""
    return [{"name": m} for m in value] if key == "models" else value


def _note(text: str) -> None:
    err_console.print(f"note: {text}", highlight=False, markup=False, soft_wrap=True)


def _refuse_with_resume(ctx: typer.Context, folder: Path) -> None:
    """--resume runs the grid sweep.json recorded: a flag that would change it would be ignored."""
    for param in ctx.command.params:
        # the table's intervals change no cell: a resumed (or finished) sweep may show them
        if param.name in {"resume", "html", "ctx", "ci", "samples", "seed"} or param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE":
            continue  # a default, or $RAY_ADDRESS
        flag = max(param.opts, key=len) if param.opts else param.name
        msg = (
            f"{flag} cannot be combined with --resume: the sweep continues with the grid {folder}/sweep.json "
            f"recorded; leave {flag} out, or start a new sweep with --out NEW_FOLDER"
        )
        raise ConfigError(msg)


def _similar_templates(text: str | None, old: list[str] | None) -> list[bool] | None:
    """--similar-templates no|yes|both, or the old --templates random/similar (one warning line)."""
    from mmad.run.sweep import TEMPLATE_KINDS

    if old and text is not None:
        msg = "--templates is the old name of --similar-templates; give --similar-templates only"
        raise typer.BadParameter(msg, param_hint="--templates")
    if old:
        bad = [v for v in old if v.strip().lower() not in TEMPLATE_KINDS]
        if bad:
            msg = f"--templates {bad[0]!r}: choose random or similar (or give --similar-templates no, yes or both)"
            raise ConfigError(msg)
        err_console.print(
            "warning: --templates is the old name of --similar-templates (no, yes or both); "
            "the old name will stop working",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return list(dict.fromkeys(TEMPLATE_KINDS[v.strip().lower()] for v in old))
    return _no_yes_both("--similar-templates", text)


def _no_yes_both(flag: str, text: str | None) -> list[bool] | None:
    """A sweep axis given as no, yes or both: the values to sweep (None when the flag is left out)."""
    if text is None:
        return None
    choices = {"no": [False], "yes": [True], "both": [False, True]}
    if text.lower() not in choices:
        msg = f"{flag} {text!r}: choose no, yes or both"
        raise ConfigError(msg)
    return choices[text.lower()]


def _run(spec: Any, folder: Path, *, resume: bool, html: bool, bootstrap: Any = None) -> None:
    from mmad.api import evaluate_async
    from mmad.run.engine import EngineStats
    from mmad.run.sweep import run_sweep
    from mmad.run.sweep_table import narrower_averages, sweep_rows, write_sweep_table

    with progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def on_progress(cell: str, stats: EngineStats) -> None:
            from mmad.cli.common import show_stats

            if cell not in tasks:
                tasks[cell] = add_run_task(bar, cell)
            show_stats(bar, tasks[cell], stats)

        async def ask(config: Any, out: Path, resume_cell: bool, progress: Any) -> Any:
            return await evaluate_async(config, out=out, resume=resume_cell, on_progress=progress)

        try:
            result = asyncio.run(run_sweep(spec, folder, resume=resume, runner=ask, on_progress=on_progress))
        except KeyboardInterrupt:
            bar.stop()
            err_console.print(f"interrupted; continue the sweep with: mmad sweep --resume {folder}", highlight=False)
            raise typer.Exit(130) from None
    rows = sweep_rows(folder, bootstrap=bootstrap)
    files = write_sweep_table(folder, rows)
    console.print(_table(rows, folder))
    for line in narrower_averages(rows):  # an expert cell's AD+DL average is not a seven-subtask one
        console.print(f"Average of {line}", highlight=False, markup=False, soft_wrap=True)
    if html:
        report = _html_report([c.run_dir for c in result.cells], folder, bootstrap)
        if report is not None:
            files["html"] = report
    console.print("written: " + ", ".join(str(p) for p in files.values()), soft_wrap=True)
    for name, reason in result.skipped.items():
        err_console.print(f"[dim]skipped {name}: {reason}[/]", highlight=False, soft_wrap=True)
    failed = [c for c in result.cells if c.status != "complete"]
    for cell in failed:
        err_console.print(f"[yellow]{cell.status}[/] {cell.name}: {cell.error or ''}", highlight=False, soft_wrap=True)
    if failed:
        err_console.print(f"continue the sweep with: mmad sweep --resume {folder}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _table(rows: list[Any], folder: Path) -> RenderableType:
    """The sweep table, every number whole: where the cells' names do not fit beside the numbers
    (80 columns), a borderless table of numbered cells with their names and statuses below it."""
    from rich.console import Group
    from rich.measure import Measurement
    from rich.text import Text

    from mmad.cli.common import _compact_table

    title = f"MMAD sweep — {folder}"
    full = _sweep_view(Table(title=title), rows, numbered=False)
    if Measurement.get(console, console.options.update_width(10_000), full).maximum <= console.width:
        return full
    view = _sweep_view(_compact_table(title, None), rows, numbered=True)
    names = "\n".join(f"{i}: {row.cell} ({row.status})" for i, row in enumerate(rows, 1))
    return Group(view, Text(names, style="dim"))


def _sweep_view(view: Table, rows: list[Any], *, numbered: bool) -> Table:
    from mmad.data.schema import SUBTASKS
    from mmad.run.sweep_table import interval_text

    circular = any(row.circular is not None for row in rows)
    with_ci = any(row.intervals for row in rows)
    head = ["#"] if numbered else ["Cell", "Status"]
    head += ["Asked", "Average", *(["95% CI"] if with_ci else []), *(["Circular"] if circular else [])]
    head += [s.short for s in SUBTASKS]
    for column in head:
        wide = column in {"Cell", "Status"}
        view.add_column(column, justify="left" if wide else "right", no_wrap=not wide, overflow="fold")
    for i, row in enumerate(rows, 1):
        values = [row.subtasks.get(s.value) for s in SUBTASKS]
        view.add_row(
            *([str(i)] if numbered else [escape(row.cell), row.status]),
            f"{row.asked}/{row.selected}",
            _pct(row.average),
            *([interval_text(row)] if with_ci else []),
            *([_pct(row.circular)] if circular else []),
            *(_pct(v) for v in values),
        )
    return view


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _html_report(run_dirs: list[Path], folder: Path, bootstrap: Any = None) -> Path | None:
    """report.html of every cell that holds a run."""
    from mmad.records.folder import RUN_FILE
    from mmad.report.html import write_html_report

    runs = [d for d in run_dirs if (d / RUN_FILE).is_file()]
    if not runs:
        return None
    return write_html_report(runs, folder / "report.html", title=f"MMAD sweep - {folder.name}", bootstrap=bootstrap)
