"""`mmad download`, `mmad info`, `mmad validate`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import TaskID
from rich.table import Table

from mmad.cli.common import console, fitted_table, simple_progress


def register(app: typer.Typer) -> None:
    """Add the data commands to the app."""
    app.command("download")(download_command)
    app.command("info")(info_command)
    app.command("validate")(validate_command)


def download_command(
    out: Path = typer.Option(Path("data/MMAD"), "--out", "-o", help="the data root to fill"),
    revision: str = typer.Option(
        None,
        "--revision",
        help="Hub revision: a commit, branch or ref (default: the pinned commit c4ed190…, whose checksums are "
        "known; refs/pr/1 is the official README's ALL_DATA.zip)",
    ),
    datasets: list[str] = typer.Option(
        None,
        "--datasets",
        help="fetch only these datasets' zips (DS-MVTec, GoodsAD, MVTec-AD, MVTec-LOCO, VisA; repeat or "
        "comma-separate); DS-MVTec brings MVTec-AD, its templates",
    ),
    include: list[str] = typer.Option(
        None, "--include", help="fetch exactly the repository files matching these globs (e.g. loose files)"
    ),
    source: Path = typer.Option(None, "--source", help="copy from a local folder holding the Hub's files"),
    github_base: str = typer.Option(
        None, "--github-base", help="where to fetch mmad.json when the revision lacks it (raw.githubusercontent.com)"
    ),
    no_github: bool = typer.Option(False, "--no-github", help="never take mmad.json from GitHub"),
    no_extract: bool = typer.Option(False, "--no-extract", help="keep the zips packed"),
    keep_archives: bool = typer.Option(
        False, "--keep-archives", help="keep the zips (in OUT/.mmad-download) after unpacking"
    ),
) -> None:
    """Download MMAD (jiang-cc/MMAD on the Hugging Face Hub), check it, unpack it; resumes where it stopped."""
    from mmad.data.hub import check_download_request, download
    from mmad.data.known import DEFAULT_REVISION
    from mmad.data.sources import GitHubFileSource, HuggingFaceSource, LocalFolderSource
    from mmad.data.sources import Source as DataSource

    # Before the first line is printed: a request that would fetch something else is refused first.
    patterns = tuple(include) if include else None
    check_download_request(
        out, local=source is not None, revision=revision, datasets=datasets or None, patterns=patterns
    )
    hub: DataSource = LocalFolderSource(source) if source else HuggingFaceSource(revision=revision)
    github: GitHubFileSource | bool = False if no_github else (GitHubFileSource(github_base) if github_base else True)
    if not source:
        console.print(f"revision {revision or DEFAULT_REVISION} of jiang-cc/MMAD → {out}")
    with simple_progress() as bar:  # on stderr: stdout holds only the result lines
        tasks: dict[str, TaskID] = {}

        def on_progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        result = download(
            out,
            source=hub,
            datasets=datasets or None,
            patterns=patterns,
            extract=not no_extract,
            keep_archives=keep_archives,
            github=github,
            progress=on_progress,
        )
    for note in result.notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    origins = ", ".join(f"{name} from {origin}" for name, origin in result.json_origins.items())
    console.print(
        f"[green]done[/]: revision {result.revision} (commit {result.commit}); {len(result.fetched)} fetched, "
        f"{len(result.skipped)} already there, {len(result.extracted)} unpacked into {result.out}"
        + (f"; {origins}" if origins else ""),
        highlight=False,
    )
    console.print(f"provenance: {result.provenance}", highlight=False)
    console.print(f"next: mmad validate {result.out}", highlight=False)


def info_command(
    data: Path = typer.Argument(..., help="data root (holding mmad.json) or the json itself"),
    as_json: bool = typer.Option(False, "--json", help="print json instead of tables"),
) -> None:
    """Counts per source dataset and subtask, images, categories, defect types, answer letters."""
    from mmad.data.info import describe
    from mmad.data.official import load_benchmark
    from mmad.data.schema import SUBTASKS

    info = describe(load_benchmark(data))
    if as_json:
        console.print_json(info.model_dump_json())
        return
    console.print(f"{info.n_images} images, {info.n_questions} questions; sha256 {info.sha256[:16]}…")
    # Below 110 columns the borders and padding go (as the score tables' do): at 80, MMAD's five datasets
    # and their four- and five-digit counts fit whole
    narrow = console.width < 110
    table = fitted_table("Questions per source dataset × subtask", narrow=narrow)
    table.add_column("Dataset", no_wrap=True)
    for subtask in SUBTASKS:
        table.add_column(subtask.short, justify="right", no_wrap=True)
    table.add_column("Total", justify="right", no_wrap=True)
    if narrow:  # one number per column: "1600 / 3200" would wrap
        table.add_column("Normal", justify="right", no_wrap=True)
        table.add_column("Abnormal", justify="right", no_wrap=True)
    else:
        table.add_column("Normal / abnormal images", justify="right")
    table.add_column("Categories", justify="right", no_wrap=True)
    for dataset, counts in info.questions.items():
        images = info.images.get(dataset, {})
        normal, abnormal = images.get("normal", 0), images.get("abnormal", 0)
        table.add_row(
            dataset,
            *(str(counts[s.value]) for s in SUBTASKS),
            str(sum(counts.values())),
            *((str(normal), str(abnormal)) if narrow else (f"{normal} / {abnormal}",)),
            str(len(info.categories.get(dataset, []))),
        )
    if narrow:
        table.caption = "Normal, Abnormal: images"
    console.print(table)
    letters = Table(title="Answer letters per subtask")
    letters.add_column("Subtask")
    for letter in "ABCDE":
        letters.add_column(letter, justify="right")
    for subtask_name, counts in info.answer_letters.items():
        letters.add_row(subtask_name, *(str(counts.get(letter, 0)) for letter in "ABCDE"))
    console.print(letters)
    n_defects = sum(len(v) for v in info.defect_types.values())
    console.print(f"{n_defects} defect types over {len(info.defect_types)} categories")
    if info.unknown_types:
        console.print(f"[yellow]unknown question types[/]: {info.unknown_types}")


def validate_command(
    data: Path = typer.Argument(
        ..., help="data root, or the file itself (mmad.json, metadata.csv), or a tree of <dataset>/<category>/QA.json"
    ),
    root: Path = typer.Option(None, "--root", help="the folder image paths are relative to (default: the file's)"),
    no_files: bool = typer.Option(False, "--no-files", help="check the json only, not the files it names"),
    as_json: bool = typer.Option(False, "--json", help="print the report as json"),
    show: int = typer.Option(
        50, "--show", min=0, help="how many problems to list, 0 for none (the known-gap summaries always show)"
    ),
) -> None:
    """Check the questions and every file they name, then sum up the known gaps; exit 1 when there are errors."""
    from mmad.data.validate import validate

    with simple_progress() as bar:  # on stderr, so --json's stdout stays json
        task = bar.add_task("checking", total=None)
        report = validate(
            data,
            root=root,
            check_files=not no_files,
            progress=lambda n: bar.update(task, completed=n),
            on_total=lambda n: bar.update(task, total=n),
        )
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        listed = [p for p in report.problems if not p.code.startswith("gap-")]
        gaps = [p for p in report.problems if p.code.startswith("gap-")]
        for problem in listed[:show]:
            style = "red" if problem.severity == "error" else "yellow"
            # markup=False: a problem's [code] and any text from the data are printed as they are.
            console.print(str(problem), style=style, highlight=False, markup=False, soft_wrap=True)
        if len(listed) > show:
            console.print(f"… and {len(listed) - show} more (--show N, or --json)")
        if gaps:
            console.print("[bold]Known gaps of the published copies[/]")
            for problem in gaps:
                console.print(
                    f"{problem.code}: {problem.message}. {problem.fix}", style="yellow", highlight=False, markup=False
                )
        verdict = "[green]valid[/]" if report.ok else f"[red]{report.n_errors} errors[/]"
        console.print(
            f"{report.n_images} images, {report.n_questions} questions: {verdict}, "
            f"{len(report.problems) - report.n_errors} warnings"
        )
    if not report.ok:
        raise typer.Exit(1)
