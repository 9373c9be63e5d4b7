"""`mmad eval`: flags mapped onto `RunConfig` once, then the run and its terminal output.

Exit codes: 0 every selected question has an answer record (answered, unparsed or refused), 1 some
requests failed or questions are missing (the run stopped early, or failures remain: resume it),
2 a usage or input error (nothing was sent), 130 interrupted (what was answered is saved).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from mmad.cli.common import (
    add_run_task,
    console,
    err_console,
    progress_bar,
    render_circular,
    render_table,
    setting_warnings,
    show_unparsed,
)
from mmad.cli.setting_flags import settings_from_flags, with_setting_flags
from mmad.errors import ConfigError, RunError

if TYPE_CHECKING:
    from mmad.run.engine import EngineStats


def register(app: typer.Typer) -> None:
    """Add the evaluation command to the app."""
    app.command("eval")(eval_command)


@with_setting_flags
def eval_command(
    model: str = typer.Option(None, "--model", "-m", help="provider:model, e.g. openai:gpt-4o, vllm:NAME, random"),
    data: Path = typer.Option(None, "--data", "-d", help="data root holding mmad.json, or the json"),
    out: Path = typer.Option(
        None, "--out", "-o", help="run directory (default runs/<model>[_<recipe>]_<k>shot_<protocol>[_<strategy>...])"
    ),
    resume: Path = typer.Option(None, "--resume", help="continue this run: ask only what is missing or failed"),
    config_file: Path = typer.Option(None, "--config", help="a run file (TOML, JSON, or a run's run.json)"),
    recipe: str = typer.Option(None, "--recipe", help="an official script's settings: gpt4o, gemini, internvl, ..."),
    dry_run: bool = typer.Option(False, "--dry-run", help="estimate requests, tokens and cost; send nothing"),
    **settings: Any,
) -> None:
    """Evaluate a model on MMAD (or any MMAD-format benchmark) with the official protocol."""
    # every setting's flag is made from the config's schema (mmad.cli.setting_flags): a new field needs no code here
    flat = settings_from_flags(settings)
    with setting_warnings():
        config = _config(model, data, resume, config_file, recipe, flat)
    from mmad.run.config import FLAT_NAMES, in_callers_words

    flags = {".".join(FLAT_NAMES[name]) for name in flat if name in FLAT_NAMES}
    if resume is None:  # a resumed run's overrides were shown when it started
        file = str(config_file) if config_file is not None else None
        for note in [*config.override_notes(file=file, flags=flags), *config.recipe_notes()]:
            err_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    try:
        if dry_run:
            _dry_run(config)
            return
        _run(config, out=resume or out, resume=resume is not None)
    except (ConfigError, RunError) as exc:
        if config_file is not None:  # the run's checks say flags; a run file's settings are its keys
            exc.args = (in_callers_words(str(exc), flagged=flags, identity=False), *exc.args[1:])
        raise


def _config(
    model: str | None,
    data: Path | None,
    resume: Path | None,
    config_file: Path | None,
    recipe: str | None,
    flat: dict[str, Any],
) -> Any:
    from mmad.run.config import RunConfig
    from mmad.run.prepare import resume_config

    identity = {k: v for k, v in (("model", model), ("data", str(data) if data else None), ("recipe", recipe)) if v}
    if resume is not None:
        if config_file is not None:
            msg = "--resume continues a run with its recorded settings; it cannot be combined with --config"
            raise ConfigError(msg)
        return resume_config(resume, **identity, **flat)
    if config_file is not None:
        return RunConfig.from_file(config_file, **identity, **flat)
    if not model or not data:
        msg = "give --model and --data (or --config RUN.toml, or --resume RUN); e.g. mmad eval -m random -d data/MMAD"
        raise ConfigError(msg)
    return RunConfig.from_flat(model, str(data), recipe=recipe, **flat)


def _run(config: Any, *, out: Path | None, resume: bool) -> None:
    from mmad.api import evaluate_async
    from mmad.run.naming import default_run_dir

    run_dir = out or default_run_dir(config)
    with progress_bar() as bar:
        task = add_run_task(bar, config.model)

        def on_progress(stats: EngineStats) -> None:
            from mmad.cli.common import show_stats

            show_stats(bar, task, stats)

        try:
            result = asyncio.run(evaluate_async(config, out=run_dir, resume=resume, on_progress=on_progress))
        except KeyboardInterrupt:
            bar.stop()
            _interrupted(run_dir)
            raise typer.Exit(130) from None
    _report(result)


def spending_text(stats: EngineStats, model: str, judge: str | None = None) -> str:
    """What a session spent, as its closing line says it: a figure only where it was measured (a backend
    that counts no tokens, or a model without a price, is not a free one). The figures hold the judge's
    calls (--judge), whose share follows."""
    tokens = stats.prompt_tokens + stats.completion_tokens
    counts = stats.judge
    answered = stats.priced_requests + stats.unpriced_requests + counts.priced_requests + counts.unpriced_requests
    token_text = "no tokens reported" if answered and not tokens else f"{tokens} tokens"
    if stats.cost_known:
        text = f"{token_text}, ${stats.cost_usd:.4f}"
    elif stats.unpriced_requests and not stats.priced_requests:  # the model's cost is the unknown one
        if tokens - counts.prompt_tokens - counts.completion_tokens:
            text = f"{token_text}, cost unknown (no price for {model}; --prices FILE gives one)"
        else:
            text = f"{token_text}, cost unknown (the replies carried no token usage to price)"
    elif counts.prompt_tokens + counts.completion_tokens:
        text = f"{token_text}, cost unknown (no price for the judge {judge or ''}; --prices FILE gives one)"
    else:  # a judge with a price whose server reports no usage: nothing to price, not a missing price
        text = f"{token_text}, cost unknown (the judge's replies carried no token usage to price)"
    if counts.requests:
        share = f", ${counts.cost_usd:.4f} of it" if stats.cost_known else ""
        text += (
            f" (judge: {counts.requests} calls, {counts.cached} from cache, {counts.retries} retries, "
            f"{counts.failed} without a verdict{share})"
        )
    return text


def _report(result: Any) -> None:
    stats = result.stats
    completeness = result.completeness
    failures = [f.describe() for f in result.failures]
    if completeness.asked and result.nothing_answered:
        err_console.print(
            "[red]no answers[/]: every request failed, so there is nothing to score (no score files written)",
            highlight=False,
        )
        for line in failures[:5]:
            err_console.print(f"  {line}", highlight=False, soft_wrap=True)
    else:
        title = f"MMAD — {result.config.model}"
        if not result.complete:
            title += f" (PARTIAL: {completeness.describe()})"
        console.print(render_table(result.table, title))
        for note in result.table.notes:
            console.print(f"note: {note}", style="dim", markup=False, highlight=False, soft_wrap=True)
        if "circular" in result.files:
            console.print(render_circular(result.files["circular"]))
        for line in failures[:5]:
            err_console.print(f"[yellow]failed[/] {line}", highlight=False, soft_wrap=True)
        n_unparsed = result.table.failures.get("unparsed", 0)
        show_unparsed(n_unparsed, result.unparsed, " (--judge MODEL can read them)")
    console.print(
        f"{completeness.describe()}; this session {stats.done} records ({stats.cached} from cache, "
        f"{stats.retries} retries), {spending_text(stats, result.config.model, result.config.answers.judge)}",
        soft_wrap=True,
    )
    console.print(f"protocol card {result.card.get('hash', '-')}; run directory: {result.run_dir}", soft_wrap=True)
    if stats.without_logprobs:
        err_console.print(
            f"[yellow]warning[/]: letter log-probabilities were asked for, but {stats.without_logprobs} replies "
            "carried none (the server may not support logprobs); those questions were answered from the text",
            highlight=False,
            soft_wrap=True,
        )
    if stats.stopped_reason:
        err_console.print(f"[yellow]stopped early[/]: {stats.stopped_reason}", highlight=False, soft_wrap=True)
    if not result.complete:
        err_console.print(
            f"the run is partial; continue it with: mmad eval --resume {result.run_dir}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _interrupted(run_dir: Path) -> None:
    from mmad.records.folder import is_run_folder
    from mmad.run.folder import open_run

    if not is_run_folder(run_dir):
        err_console.print("interrupted before the run started; nothing was saved")
        return
    run = open_run(run_dir)
    if run.completeness.complete:
        # The signal came after the last answer was recorded (while run.json or the files were written):
        # nothing is left to ask, but the files may not all be there. A resume asks nothing and writes
        # them all; `mmad score` would leave the official answers json missing and run.json as it was.
        err_console.print(
            f"interrupted after the run was complete ({run.completeness.describe()}, saved in {run_dir}); "
            f"its files may not all be written: mmad eval --resume {run_dir} writes them, asking nothing",
            highlight=False,
            soft_wrap=True,
        )
        return
    err_console.print(
        f"interrupted: {run.completeness.describe()} saved in {run_dir}; resume with: mmad eval --resume {run_dir}",
        highlight=False,
        soft_wrap=True,
    )


def _dry_run(config: Any) -> None:
    from mmad.run.estimate import dry_run

    result = dry_run(config)  # the checks of a real run's first stage, then the count; nothing is built or sent
    prompt = config.prompt
    how = [prompt.protocol.value, f"{prompt.shots}-shot" + (" similar" if prompt.similar_templates else "")]
    how += [f"strategy {s}" for s in prompt.strategies] + (["circular"] if prompt.circular else [])
    how += ["blind"] if prompt.blind else []
    console.print(f"[bold]dry run[/] for {escape(config.model)} ({', '.join(how)}): nothing sent", highlight=False)
    from mmad.run.recipes import server_caveats

    for caveat in server_caveats(config.recipe, config.model):
        err_console.print(
            f"[yellow]warning[/]: {escape(config.model)} is asked over HTTP, which does not take this from the "
            f"{config.recipe} recipe: {escape(caveat)}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"  questions {result.questions}, requests {result.requests}, images sent {result.images_sent}")
    if result.left_out:
        console.print(f"  clean split: {escape(result.left_out)}", highlight=False, soft_wrap=True)
    console.print(f"  tokens ≈ {result.prompt_tokens:,} in + {result.completion_tokens:,} out")
    if result.cost_usd is None or result.price is None:
        console.print("  cost: no price known for this model; give --prices FILE")
    else:
        console.print(f"  cost ≈ ${result.cost_usd:.2f} at ${result.price[0]}/M in, ${result.price[1]}/M out")
    if config.answers.judge:
        # How many replies the judge reads is known only once the parser has failed on them: a bound, apart.
        most = "no price known for it (--prices FILE)"
        if result.judge_cost_usd is not None:
            # A bound rounds up: a judge that costs a fraction of a cent was shown as "at most $0.00", free.
            bound = math.ceil(round(result.judge_cost_usd * 100, 6)) / 100
            most = f"at most ${bound:.2f} (every reply unparsed, as long as allowed)"
        console.print(
            f"  judge {escape(config.answers.judge)}: not in the cost above; it reads only the replies the parser "
            f"cannot: up to {result.judge_requests} requests, {most}",
            highlight=False,
            soft_wrap=True,
        )
