"""`mmad models` (providers, presets, recipes) and `mmad runs` (the run folders under a directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mmad.cli.common import console, fitted_table
from mmad.errors import RunError


def register(app: typer.Typer) -> None:
    """Add the catalogue commands to the app."""
    app.command("models")(models_command)
    app.command("runs")(runs_command)


def models_command(as_json: bool = typer.Option(False, "--json", help="print json")) -> None:
    """The model providers, their endpoints and key variables, and the official recipes."""
    from mmad.models.providers import PROVIDERS, plugin_names
    from mmad.run.recipes import recipe_catalogue

    plugins = plugin_names()
    recipes = recipe_catalogue()
    api = {name: p for name, p in PROVIDERS.items() if p.transport == "http"}
    local = {name: p for name, p in PROVIDERS.items() if p.transport != "http"}
    if as_json:
        payload: dict[str, Any] = {
            "api": {
                name: {"base_url": p.base_url, "key_env": p.key_env, "local": p.on_this_machine, "note": p.note}
                for name, p in api.items()
            },
            "in_process": {name: p.description for name, p in local.items()},
            "providers": {
                name: {
                    "transport": p.transport,
                    "in_process": p.in_process,
                    "free": p.free,
                    "reads": sorted(p.reads or ()),
                    "extra": p.extra,
                    "description": p.description,
                }
                for name, p in PROVIDERS.items()
            },
            "plugins": plugins,
            "recipes": recipes,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    if console.width < NARROW:
        _print_listed(api, local, plugins, recipes)
        return
    table = Table(title="OpenAI-compatible providers: -m PROVIDER:MODEL")
    for column in ("Provider", "Base URL", "Key variable", "Note"):
        table.add_column(column, overflow="fold")  # a URL or file name cut with "…" could not be copied
    for name, info in api.items():
        table.add_row(name, escape(info.base_url or "(--base-url)"), info.key_env or "-", escape(info.note))
    console.print(table)
    console.print(f"They read {_flags(next(iter(api.values())).reads)}.", highlight=False)
    table = Table(title="Models in process")
    table.add_column("Provider", overflow="fold")
    table.add_column("What", overflow="fold")
    table.add_column("Settings it reads", overflow="fold")
    for name, info in local.items():
        reads = _flags(info.reads)
        if info.transport == "none":  # mmad.run.config takes the settings a baseline stands in for
            reads += " (it stands in for any model: the image and decoding settings are accepted)"
        table.add_row(name, escape(info.description), reads)
    for name in plugins:
        table.add_row(name, "plugin (entry point mmad.models)", "any")
    console.print(table)
    table = Table(title="Official recipes: --recipe NAME reproduces an official script's requests")
    for column in ("Recipe", "What", "Official script", "Published rows"):
        table.add_column(column, overflow="fold")
    for recipe in recipes:
        published = ", ".join(recipe["published"]) or "-"
        table.add_row(recipe["name"], escape(recipe["description"]), escape(recipe["source"]), published)
    console.print(table)


NARROW = 120
"""Below this width `mmad models` lists each entry with its fields under it: in four table columns a URL, a
script path or a CSV name was folded mid-word over several lines, and could not be read or copied whole."""


def _print_listed(
    api: dict[str, Any], local: dict[str, Any], plugins: list[str], recipes: list[dict[str, Any]]
) -> None:
    """The catalogue as one entry per block: its name, then each field on a line of its own (words wrap whole)."""

    def block(title: str, entries: list[tuple[str, list[tuple[str, str]]]]) -> None:
        console.print(Text(title, style="bold underline"))
        for name, fields in entries:
            console.print(Text(name, style="bold"))
            for label, value in fields:
                if value:
                    console.print(Text(f"  {label}: {value}"))

    block(
        "OpenAI-compatible providers: -m PROVIDER:MODEL",
        [
            (
                name,
                [
                    ("base URL", info.base_url or "(--base-url)"),
                    ("key variable", info.key_env or "-"),
                    ("note", info.note),
                ],
            )
            for name, info in api.items()
        ],
    )
    console.print(f"They read {_flags(next(iter(api.values())).reads)}.", highlight=False)
    in_process = []
    for name, info in local.items():
        reads = _flags(info.reads)
        if info.transport == "none":
            reads += " (it stands in for any model: the image and decoding settings are accepted)"
        in_process.append((name, [("what", info.description), ("reads", reads)]))
    in_process += [(name, [("what", "plugin (entry point mmad.models)"), ("reads", "any")]) for name in plugins]
    block("Models in process", in_process)
    block(
        "Official recipes: --recipe NAME reproduces an official script's requests",
        [
            (
                r["name"],
                [
                    ("what", r["description"]),
                    ("official script", r["source"]),
                    ("published rows", ", ".join(r["published"]) or "-"),
                ],
            )
            for r in recipes
        ],
    )


def _flags(reads: frozenset[str] | None) -> str:
    """A provider's settings as the flags that set them, in the description's order."""
    from mmad.models.providers import BACKEND_SETTINGS

    if reads is None:
        return "any"
    return ", ".join(f"--{name.replace('_', '-')}" for name in BACKEND_SETTINGS if name in reads) or "none"


def _run_row(folder: Path) -> dict[str, Any]:
    from mmad.run.folder import open_run
    from mmad.score.answers import any_reply, graded_from_record
    from mmad.score.table import score_answers

    run = open_run(folder)
    completeness = run.completeness
    graded = [graded_from_record(r) for r in run.plain]
    table = score_answers(graded) if any_reply(graded) else None
    average = table.average if table is not None else None
    status = run.status
    resume = None
    stale = run.stale
    if stale:  # "running" for ever otherwise: its process died holding nothing
        in_sweep = (folder.parent / "sweep.json").is_file()
        resume = f"mmad sweep --resume {folder.parent}" if in_sweep else f"mmad eval --resume {folder}"
        pid = run.lock_pid
        status = f"stale ({'pid ' + str(pid) if pid else 'its process'} is gone; resume: {resume})"
    return {
        "run": str(folder),
        "model": run.model,
        "status": status,
        "stale": stale,
        "resume": resume,
        # why a run stopped short (an engine that could not be built, a budget): run.json's own words
        "stopped_reason": run.manifest.stopped_reason,
        "selected": completeness.selected,
        "asked": completeness.asked,
        "answered": completeness.answered,
        "failed": completeness.failed,
        "average": average,
        # a declined subtask is missing, not 0: the average of the visual expert is over AD and DL only
        "covers": [s.value for s in table.average_covers] if table is not None else [],
        "card_hash": run.card_hash,
        "created_at": run.manifest.created_at,
    }


def _status_word(row: dict[str, Any]) -> str:
    """A run's status as the table shows it: its first word when the status carries details."""
    status = str(row["status"])
    return "stale" if row.get("stale") else status.split(":")[0].split(" (")[0]


def runs_command(
    folder: Path = typer.Argument(
        None, help="a folder holding run directories (searched two levels deep) [default: ./runs]", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="print json"),
) -> None:
    """The runs under a folder: model, status, asked and answered, score and protocol card."""
    from mmad.data.schema import SUBTASKS
    from mmad.records.folder import RUN_FILE, is_run_folder
    from mmad.score.answers import covers_text

    if folder is None:
        folder = Path("runs")
        if not folder.exists():
            # Before the first `mmad eval` there are no runs: that is an answer, not a usage error.
            if as_json:
                typer.echo("[]")
            else:
                console.print(
                    "no runs yet: ./runs does not exist (`mmad eval` writes its runs there unless --out says "
                    "otherwise; `mmad demo` under mmad-demo/runs)",
                    highlight=False,
                    soft_wrap=True,
                )
            return
    if not folder.exists():
        msg = (
            f"{folder} does not exist; `mmad eval` writes runs under ./runs unless --out says otherwise "
            "(`mmad demo` under mmad-demo/runs): give that folder, `mmad runs DIR`"
        )
        raise RunError(msg)
    if not folder.is_dir():
        msg = f"{folder} is a file, not a folder; give the folder your runs are in (default ./runs)"
        raise RunError(msg)
    candidates = [folder] if is_run_folder(folder) else []
    candidates += sorted(p.parent for p in folder.glob(f"*/{RUN_FILE}"))
    candidates += sorted(p.parent for p in folder.glob(f"*/*/{RUN_FILE}"))
    rows = []
    for run_dir in dict.fromkeys(candidates):
        try:
            rows.append(_run_row(run_dir))
        except Exception as exc:  # one damaged folder must not hide the others
            rows.append({"run": str(run_dir), "model": "?", "status": f"unreadable: {exc}"})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"no runs under {folder} (a run folder holds {RUN_FILE})")
        return
    # Below 110 columns the borders go (as the score tables' do), so that at 80 the columns fit without "…"
    narrow = console.width < 110
    table = fitted_table(f"Runs under {folder} (averages: strict policy)", narrow=narrow)
    # A model's name is short and read as one word: it keeps its width (up to 24) and the run's path folds
    model_width = min(24, max(len(str(row["model"])) for row in rows))
    for column in ("Run", "Model", "Status", "Asked", "Answered", "Failed", "Average", "Card"):
        # Run and Model fold, never "…" (a cut path or model could not be typed back); the others never wrap
        table.add_column(
            column,
            justify="right" if column in {"Asked", "Answered", "Failed"} else "left",
            overflow="fold",
            no_wrap=column not in {"Run", "Model"},
            min_width=model_width if column == "Model" else None,
        )
    for row in rows:
        average = row.get("average")
        table.add_row(
            escape(row["run"]),
            escape(str(row["model"])),
            # a status with details (a stale run's pid and resume command, why a folder is unreadable) is one
            # word here and whole on a line of its own under the table, never cut
            escape(_status_word(row)),
            f"{row.get('asked', '-')}/{row.get('selected', '-')}",
            str(row.get("answered", "-")),
            str(row.get("failed", "-")),
            "-" if average is None else f"{average:.2f}",
            str(row.get("card_hash") or "-"),
        )
    console.print(table)
    for row in rows:
        if _status_word(row) != str(row["status"]):
            console.print(f"{row['run']}: {row['status']}", highlight=False, markup=False, soft_wrap=True)
        if row.get("stopped_reason") and row["status"] != "complete":
            said = f"{row['run']}: {row['status']}: {row['stopped_reason']}"
            console.print(said, highlight=False, markup=False, soft_wrap=True)
    for row in rows:
        covers = row.get("covers") or []
        if row.get("average") is not None and len(covers) < len(SUBTASKS):
            console.print(f"{row['run']}: the average covers {covers_text(covers)}", highlight=False, markup=False)
