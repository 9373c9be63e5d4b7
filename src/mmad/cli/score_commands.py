"""`mmad score` and `mmad compare` (`report` and `leaderboard` live in report_commands)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mmad.cli.common import console, err_console, render_table, show_unparsed
from mmad.errors import AnswersFormatError, ConfigError
from mmad.score.table import Policy


def register(app: typer.Typer) -> None:
    """Add the scoring commands to the app."""
    app.command("score")(score_command)
    app.command("compare")(compare_command)


def _scored(path: Path, *, bootstrap: Any = None) -> Any:
    """The run or answers file behind a path, opened and scored once (`mmad.score.scored`)."""
    from mmad.run.scoring import score_run

    return score_run(path, bootstrap=bootstrap)


def _split_flags(errata: str, exclude: list[str]) -> str:
    """The clean-split flags as given (--errata drop, --exclude VisA, ...), for the notes and errors that name them."""
    flags = ["--errata drop"] if errata == "drop" else []
    return " ".join(flags + [f"--exclude {rule}" for rule in exclude])


def _clean_split(scored: Any, errata: str, exclude: list[str]) -> tuple[Any, Any]:
    """The answers without what --errata drop / --exclude leave out, and the counts (None when neither is given)."""
    from mmad.data.clean import partly_matched, split_for_images
    from mmad.run.scoring import without_left_out

    images = {a.image for a in scored.answers}
    try:
        split = split_for_images(errata, exclude, images, "these answers")
    except ConfigError as exc:
        # a rule the run itself applied matches none of its answers: name the run's own split, or the refusal
        # reads as a typo
        own = (scored.run.card.get("clean_split") or {}).get("exclude") if scored.run is not None else None
        if own:
            msg = f"{exc}; this run already left out {', '.join(own)} (its protocol card)"
            raise ConfigError(msg) from exc
        raise
    for line in partly_matched(split, images, "these answers"):
        err_console.print(f"[yellow]warning[/]: {escape(line)}", highlight=False, soft_wrap=True)
    if not split.active:
        return scored, None
    kept, counts = without_left_out(scored, split)
    if not kept.answers:
        msg = f"{_split_flags(errata, exclude)} left out every answer ({counts.describe()}); nothing is left to score"
        raise ConfigError(msg)
    return kept, counts


def _note_official_file_of_a_run(path: Path) -> None:
    """An official answers file has only gpt_answer, so a question its run failed reads as a wrong answer there
    (and the questions it declined are left out of it): say so when the file sits in a run folder that has such
    questions, and name the folder."""
    from mmad.records.folder import is_run_folder
    from mmad.records.record import Status
    from mmad.run.folder import open_run

    if path.is_dir() or path.suffix.lower() != ".json" or not is_run_folder(path.parent):
        return
    counts = Counter(r.status for r in open_run(path.parent).plain)
    gaps = []
    if counts[Status.ERROR]:
        gaps.append(f"its run's {counts[Status.ERROR]} failed questions count as wrong here")
    if counts[Status.ABSTAINED]:
        gaps.append(f"its {counts[Status.ABSTAINED]} declined questions are not in it")
    if gaps:
        err_console.print(
            f"[yellow]note[/]: {path} is an official answers file, which cannot tell a failed question from a wrong "
            f"answer: {'; '.join(gaps)}; `mmad score {path.parent}` scores them as the run recorded them",
            highlight=False,
            soft_wrap=True,
        )


def _check_answers_path(path: Path) -> None:
    if not path.exists():
        msg = f"{path} does not exist; give a run directory, a records.jsonl or an official answers .json"
        raise AnswersFormatError(msg)


def _run_summary(run: Any, completeness: Any) -> dict[str, Any]:
    return {
        "model": run.model,
        "status": run.status,
        "card_hash": run.card_hash,
        **vars(completeness),
        "missing": completeness.missing,
        "complete": completeness.complete,
    }


def score_command(
    answers: Path = typer.Argument(..., help="a run directory, records.jsonl, or official answers .json"),
    policy: Policy | None = typer.Option(
        None,
        "--policy",
        help="strict (unanswered = wrong) or upstream (official summary.py) [default: a recipe run's recipe's "
        "policy, else strict]",
        show_default=False,
    ),
    out: Path = typer.Option(None, "--out", "-o", help="where to write CSV, Markdown, JSON and the heatmap"),
    no_plot: bool = typer.Option(False, "--no-plot", help="skip the heatmap PNG"),
    as_json: bool = typer.Option(False, "--json", help="print the table as json (files are still written)"),
    ci: bool = typer.Option(False, "--ci", help="95% intervals on every cell: a bootstrap over images"),
    samples: int | None = typer.Option(
        None, "--samples", min=100, max=1_000_000, help="bootstrap resamples for --ci [default: 1000]"
    ),
    seed: int | None = typer.Option(None, "--seed", min=0, help="the bootstrap's seed for --ci [default: 0]"),
    errata: str = typer.Option(
        "keep", "--errata", help="keep (score everything, as published) or drop what the shipped errata name"
    ),
    exclude: list[str] = typer.Option(
        None, "--exclude", help="leave out a dataset, category or listed images: NAME, category:NAME, images:FILE"
    ),
) -> None:
    """Score answers: the MMAD table in the terminal, and its files (operating points included)."""
    from mmad._io import collector_paused
    from mmad.cli.score_extras import ci_bootstrap, print_intervals, print_metrics, print_operating
    from mmad.report.files import write_score_files
    from mmad.report.operating_files import intervals_to_dict, operating_to_dict, write_operating_files
    from mmad.report.tables import table_to_dict
    from mmad.run.recipes import recipe_policy_note
    from mmad.score.answers import any_reply

    bootstrap = ci_bootstrap(ci, samples, seed)

    _check_answers_path(answers)
    _note_official_file_of_a_run(answers)
    scored = _scored(answers, bootstrap=bootstrap)
    scored, left_out = _clean_split(scored, errata, exclude or [])
    run, graded = scored.run, scored.answers
    completeness = run.completeness if run is not None else None
    if not graded or not any_reply(graded):
        if as_json:
            # A script reading stdout gets an answer it can parse; the reason also goes to stderr.
            unscored: dict[str, Any] = {"scored": False, "answers": len(graded), "with_reply": 0}
            if run is not None and completeness is not None:
                unscored["run"] = _run_summary(run, completeness)
            typer.echo(json.dumps(unscored, indent=2))
        if not graded:
            msg = f"{answers} holds no answers yet; nothing to score"
            raise AnswersFormatError(msg)
        err_console.print(
            f"[red]nothing to score[/]: every one of the {len(graded)} requests in {answers} failed "
            f"(see its records.jsonl); a table would show only zeros",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    folder = out or (answers if answers.is_dir() else answers.parent)
    stem = "" if answers.is_dir() else answers.stem
    # A recipe run is scored as its published rows were, and its files are the ones `mmad eval` wrote.
    recipe = run.config.recipe if run is not None else None
    default = Policy(scored.policy.value)  # the run's own: its recipe's, else strict
    policy = policy or default
    if policy is not default:
        stem = f"{stem}_{policy.value}" if stem else policy.value
    scored = scored.with_policy(policy.value)
    with collector_paused():  # tens of thousands of small acyclic objects: the collector would only rescan them
        table = scored.table()
        if recipe and policy is default:
            table.notes.insert(0, recipe_policy_note(recipe))
        if left_out is not None:
            flags = _split_flags(errata, exclude or [])
            table.notes.insert(0, f"re-scored on a clean split ({flags}): {left_out.describe()}")
        intervals = scored.intervals
        title = f"MMAD — {answers.name}"
        paths = write_score_files(table, graded, folder, stem=stem, title=title, plot=not no_plot, intervals=intervals)
        operating = scored.operating
        paths.update(write_operating_files(operating, folder, stem=stem, title=title, plot=not no_plot))
        metrics = scored.metrics
    if as_json:
        data = {"scored": True, **table_to_dict(table), "operating_points": operating_to_dict(operating)}
        data["metrics"] = {m.metric: m.to_dict() for m in metrics}
        if intervals is not None:
            data["intervals"] = intervals_to_dict(intervals)
        if left_out is not None:
            data["left_out"] = {"errata": errata, "exclude": list(exclude or []), **left_out.as_dict()}
        if run is not None and completeness is not None:
            data["run"] = _run_summary(run, completeness)
        typer.echo(json.dumps(data, indent=2))
        return
    title = f"MMAD — {run.model if run is not None else answers.name}"
    if completeness is not None and not completeness.complete:
        title += f" (PARTIAL: {completeness.describe()})"
    console.print(render_table(table, title))
    if completeness is not None:
        card = run.card_hash or "none (run made before protocol cards)"
        console.print(f"{completeness.describe()}; run status {run.status}; protocol card {card}", soft_wrap=True)
        if run.recorded_status == "complete" and completeness.missing:
            err_console.print(
                f"[yellow]note[/]: run.json says complete, but records.jsonl lacks {completeness.missing} of the "
                f"selected questions (records lost or removed); `mmad eval --resume {answers}` asks them",
                highlight=False,
                soft_wrap=True,
            )
    for note in table.notes:
        console.print(f"[dim]note: {note}[/]")
    if intervals is not None:
        print_intervals(intervals)
    print_operating(operating, paths["operating_markdown"].name)
    print_metrics(metrics)
    if run is not None:
        unparsed = [r.raw_reply or "" for r in run.plain if r.status.value == "unparsed"]
        show_unparsed(len(unparsed), unparsed[:3])
    err_console.print("wrote " + ", ".join(str(p) for p in paths.values()), soft_wrap=True)


def _print_metrics_side_by_side(a: list[Any], b: list[Any]) -> None:
    """Every registered metric's headline figures of both runs (each whole run, not paired), as `mmad score`
    shows them."""

    values_a, values_b = {c.key: c.cell for c in a}, {c.key: c.cell for c in b}
    keys = list(dict.fromkeys([*values_a, *values_b]))
    if not keys:
        return
    view = Table(title="Metrics of each run (whole run, not paired)")
    for column in ("Metric", "A", "B", "B - A"):
        view.add_column(column, justify="left" if column == "Metric" else "right")
    for key in keys:
        x, y = values_a.get(key), values_b.get(key)
        vx, vy = (x.value if x else None), (y.value if y else None)
        # dollars per question are fractions of a cent: two decimals would show every change as +0.00
        digits = 4 if any(c is not None and c.unit == "$" for c in (x, y)) else 2
        delta = f"{vy - vx:+.{digits}f}" if vx is not None and vy is not None else "–"
        view.add_row(key, x.text(2) if x else "–", y.text(2) if y else "–", delta)
    console.print(view)


def _robustness(card_a: dict[str, Any], card_b: dict[str, Any]) -> dict[str, str] | None:
    """Which run is the other's perturbed twin (`mmad.score.robustness`), and its perturbation; else None."""
    from mmad.score.robustness import is_clean_counterpart, perturbation_of

    for clean, perturbed, name in ((card_a, card_b, "b"), (card_b, card_a, "a")):
        if is_clean_counterpart(clean, perturbed):
            return {"perturbed": name, "perturb": perturbation_of(perturbed) or ""}
    return None


def _reasons(counts: dict[str, int]) -> str:
    """Why questions were left out on one side, in words: 'error 236, abstained 60' or 'none'."""
    return ", ".join(f"{reason} {n}" for reason, n in counts.items()) or "none"


def _compare_side(path: Path, folder: Any, answers: list[Any]) -> dict[str, Any]:
    """What compare says about one of its runs: how much of it is there, and whether it is partial."""
    failed = sum(a.failure == "error" for a in answers)
    side: dict[str, Any] = {"path": str(path), "answers": len(answers), "failed": failed, "missing": 0}
    if folder is not None:
        completeness = folder.completeness
        side.update(
            status=folder.status, selected=completeness.selected, asked=completeness.asked, missing=completeness.missing
        )
    side["partial"] = bool(side["failed"] or side["missing"])
    return side


def _warn_partial(sides: dict[str, Any]) -> None:
    """One line per partial run: its gaps are left out of the pairs, never counted as wrong answers."""
    for name, side in sides.items():
        if not side["partial"]:
            continue
        gaps = [f"{side['failed']} of {side['answers']} requests failed"] if side["failed"] else []
        if side["missing"]:
            gaps.append(f"{side['missing']} of its {side['selected']} selected questions were never asked")
        err_console.print(
            f"[yellow]warning[/]: {name.upper()} ({side['path']}) is a partial run: {'; '.join(gaps)}. Its unanswered "
            f"questions are left out of the comparison, not counted as wrong; `mmad eval --resume {side['path']}` "
            "asks them",
            highlight=False,
            soft_wrap=True,
        )


def compare_command(
    run_a: Path = typer.Argument(..., help="the baseline run (directory, records.jsonl or answers json)"),
    run_b: Path = typer.Argument(..., help="the run to compare with it"),
    samples: int = typer.Option(1000, "--samples", min=100, max=1_000_000, help="bootstrap resamples"),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json", help="print json"),
) -> None:
    """Per-subtask and per-category differences (B - A) with paired bootstrap 95% intervals."""
    from mmad.run.card import card_differences
    from mmad.score.answers import covers_text
    from mmad.score.compare import compare_runs, declined_subtasks, pair_answers
    from mmad.score.robustness import PERTURB_KEY

    for path in (run_a, run_b):
        _check_answers_path(path)
        _note_official_file_of_a_run(path)
    scored_a, scored_b = _scored(run_a), _scored(run_b)
    folder_a, folder_b = scored_a.run, scored_b.run
    notes: list[str] = []
    robustness: dict[str, str] | None = None
    same = (folder_a.path if folder_a else run_a).resolve() == (folder_b.path if folder_b else run_b).resolve()
    if same:  # every difference is 0 by construction: a typo in a script, not a finding
        notes.append(f"{run_a} and {run_b} are the same run: every difference is 0 by construction")
        err_console.print(f"[yellow]warning[/]: {notes[-1]}", highlight=False, soft_wrap=True)
    cards: dict[str, str | None] = {}
    if folder_a is not None and folder_b is not None:
        sha_a, sha_b = folder_a.benchmark_sha256, folder_b.benchmark_sha256
        if sha_a and sha_b and sha_a != sha_b:
            msg = (
                f"{run_a} and {run_b} were run on different benchmarks (mmad.json sha256 {sha_a[:12]}… and "
                f"{sha_b[:12]}…); their questions are not the same questions"
            )
            raise AnswersFormatError(msg)
        differences = card_differences(folder_a.card, folder_b.card)
        # the card leaves the model out: only the same model's two runs are a perturbation's pair
        robustness = _robustness(folder_a.card, folder_b.card) if folder_a.model == folder_b.model else None
        # a robustness pair differs in its perturbation by design: that is what the table measures
        # a clean split changes which questions were asked, never how: only the questions both asked are paired
        skipped = {"mmad_version", "clean_split", PERTURB_KEY} if robustness else {"mmad_version", "clean_split"}
        notes += [f"protocol differs: {k}: {a!r} vs {b!r}" for k, a, b in differences if k not in skipped]
        if any(k == "clean_split" for k, _, _ in differences):
            from mmad.report.leaderboard.rules import clean_split_marks

            split_a, split_b = (
                "; ".join(clean_split_marks(f.card)) or "the whole benchmark" for f in (folder_a, folder_b)
            )
            notes.append(
                f"question sets differ: A {split_a}; B {split_b}. Only the questions both asked are paired, "
                "so this changes which questions B - A covers, not their answers"
            )
        cards = {"a": folder_a.card_hash, "b": folder_b.card_hash}
    answers_a, answers_b = scored_a.answers, scored_b.answers
    for path, answers in ((run_a, answers_a), (run_b, answers_b)):
        if not answers:  # not "no shared question", which sends the user to check the benchmark
            resume = f"; `mmad eval --resume {path}` asks its questions" if path.is_dir() else ""
            msg = f"{path} holds no answers yet; nothing to compare{resume}"
            raise AnswersFormatError(msg)
    pairing = pair_answers(answers_a, answers_b)
    sides = {"a": _compare_side(run_a, folder_a, answers_a), "b": _compare_side(run_b, folder_b, answers_b)}
    shared = pairing.shared
    head = {
        "overlap": {"shared": shared, "a": len(answers_a), "b": len(answers_b)},
        "paired": len(pairing.pairs),
        "left_out": {"total": pairing.left_out, "a": pairing.left_out_a, "b": pairing.left_out_b},
        "partial": any(side["partial"] for side in sides.values()),
        "runs": sides,
        "notes": notes,
        "card_hashes": cards,
        "robustness": robustness,
    }
    if pairing.shared and not pairing.pairs:
        if as_json:  # a script reading stdout gets an answer it can parse; the reason goes to stderr
            typer.echo(json.dumps({"compared": False, **head, "declined": [], "differences": []}, indent=2))
        err_console.print(
            f"[red]nothing to compare[/]: {run_a} and {run_b} share {pairing.shared} questions, but no question "
            f"was answered by both (left out: A {_reasons(pairing.left_out_a)}; B {_reasons(pairing.left_out_b)})",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    result = compare_runs(answers_a, answers_b, samples=samples, seed=seed)
    declined = [s.value for s in declined_subtasks(answers_a, answers_b)]
    overlap = f"{shared} questions in both (A has {len(answers_a)}, B has {len(answers_b)})"
    average = next((d for d in result if d.group == "Average"), None)
    if as_json:
        payload = {
            "compared": True,
            **head,
            "declined": declined,
            "differences": [{**vars(d), "delta": d.delta} for d in result],
            "metrics": {
                side: {c.key: c.cell.value for c in run.summary()} for side, run in (("a", scored_a), ("b", scored_b))
            },
        }
        typer.echo(json.dumps(payload, indent=2))
        _warn_partial(sides)
        return
    if robustness is not None:
        clean, perturbed = ("A", "B") if robustness["perturbed"] == "b" else ("B", "A")
        console.print(
            f"robustness: {perturbed} is {clean}'s protocol with --perturb {robustness['perturb']} (the same card "
            f"otherwise), so each B - A below is the perturbation's effect"
            + (" (its sign reversed: A is the perturbed run)" if perturbed == "A" else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    view = Table(title=f"{run_b.name} vs {run_a.name} (paired bootstrap by image, {samples} resamples)")
    for column in ("Group", "A", "B", "B - A", "95% interval", "n"):
        view.add_column(column, justify="left" if column == "Group" else "right")
    for d in result:
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
    view.caption = f"{len(pairing.pairs)} questions answered by both runs, paired; {overlap}"
    console.print(view)
    _print_metrics_side_by_side(scored_a.summary(), scored_b.summary())
    if pairing.left_out:
        console.print(
            f"left out {pairing.left_out} questions not answered by both (a failed request, a refusal or an "
            f"abstention is no answer; a reply without a letter is a wrong one): "
            f"A {_reasons(pairing.left_out_a)}; B {_reasons(pairing.left_out_b)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for note in notes:
        if note.startswith("question sets differ"):
            console.print(note, markup=False, highlight=False, soft_wrap=True)
    if average is not None:
        console.print(
            f"Average covers {covers_text(average.covers)}; each category's average covers the subtasks paired in it",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if declined:
        console.print(
            f"no figure for {', '.join(declined)}: one of the runs declined every question of them (the visual "
            "expert answers only AD and DL), so no question of theirs is paired",
            style="dim",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    _warn_partial(sides)
    protocol_notes = [note for note in notes if note.startswith("protocol differs")]
    if protocol_notes:
        # A difference measured across protocols may be the protocol's, not the model's: say so beside the table.
        hashes = {k: v or "none (run made before protocol cards)" for k, v in cards.items()}
        console.print(
            f"[yellow]the runs were asked under different protocols[/] (A card {hashes['a']}, B card {hashes['b']}); "
            "part of B - A may come from these settings:",
            highlight=False,
            soft_wrap=True,
        )
        for note in protocol_notes:
            console.print(f"  {note}", markup=False, highlight=False, soft_wrap=True)
