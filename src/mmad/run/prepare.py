"""The first stage of a run: selection, model, resume state, plan. Nothing is sent here.

`prepare` checks everything that can be checked before a request goes out (the config against the
benchmark, the model's prerequisites, the run folder), so a run that cannot work fails at once,
with nothing written but what was already there.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmad.data.clean import exclude_paths_from
from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark
from mmad.errors import ConfigError, RunError
from mmad.models.base import Model
from mmad.models.registry import ModelOptions, create_model
from mmad.protocol.strategies import StrategySet
from mmad.records.record import Status
from mmad.run.card import protocol_card
from mmad.run.config import RESUMABLE_SECTIONS, RESUMABLE_SETTINGS, RunConfig
from mmad.run.manifest import DatasetInfo, Manifest, now, read_manifest, write_manifest
from mmad.run.naming import default_run_dir
from mmad.run.plan import Planner, Selection
from mmad.run.preflight import preflight
from mmad.run.secrets import redact
from mmad.run.solving import check_judge_price, judge_model
from mmad.run.store import RunStore

logger = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass
class PreparedRun:
    """Everything the engine needs, and what the finish stage records."""

    config: RunConfig
    run_dir: Path
    store: RunStore
    benchmark: Benchmark
    selection: Selection
    strategies: StrategySet
    planner: Planner
    model: Model
    judge: Model | None
    price: tuple[float, float] | None
    order: list[Key]
    wanted: set[Key]
    manifest: Manifest
    resumed: bool = False
    notes: list[str] = field(default_factory=list)


def make_model(config: RunConfig) -> Model:
    """The backend a config names."""
    connection = config.connection
    return create_model(
        config.model,
        ModelOptions(
            base_url=connection.base_url,
            key_env=connection.key_env,
            detail=config.images.detail,
            extra_body=connection.extra_body,
            timeout_s=config.execution.timeout_s,
            max_connections=max(config.execution.concurrency, 8),
            text_only=connection.text_only,
            device=connection.device,
            dtype=connection.dtype,
            batch_size=connection.batch_size,
            model_args=connection.model_args,
        ),
    )


def resume_config(run_dir: str | Path, **flat: Any) -> RunConfig:
    """The config a run folder was made with, with flat settings (``concurrency=64``) on top."""
    from mmad.records.folder import check_run_folder

    recorded = read_manifest(check_run_folder(run_dir)).config.model_dump(mode="json")
    return RunConfig.from_nested_with_flat(recorded, flat, source=f"{run_dir}/run.json")


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """The config with its file paths (data, knowledge, prices, cache folder) made absolute."""

    def absolute(path: str | None) -> str | None:
        return str(Path(path).expanduser().resolve()) if path else path

    return config.model_copy(
        update={
            "data": absolute(config.data),
            "prompt": config.prompt.model_copy(update={"knowledge": absolute(config.prompt.knowledge)}),
            "selection": config.selection.model_copy(
                update={"exclude": exclude_paths_from(config.selection.exclude, Path.cwd())}
            ),
            "execution": config.execution.model_copy(
                update={
                    "prices": absolute(config.execution.prices),
                    "cache_dir": absolute(config.execution.cache_dir),
                }
            ),
        }
    )


def check_resume(recorded: RunConfig, given: RunConfig, run_dir: Path) -> None:
    """A resumed run may change how requests are sent, never what is asked."""
    # The data may be named by another path (a resume from another folder): its sha256 is checked instead.
    changed = [
        c
        for c in given.changed_settings(recorded)
        if c.split(".")[0] not in RESUMABLE_SECTIONS and c not in RESUMABLE_SETTINGS and c != "data"
    ]
    if changed:
        # Each recorded value is named: mmad.evaluate(resume=True) takes every setting from its keywords, so one
        # left out is a change too, and the fix is that value ("resume without those settings" was no fix there).
        was, now = recorded.model_dump(mode="json"), given.model_dump(mode="json")

        def value(dump: dict[str, Any], dotted: str) -> Any:
            section, _, name = dotted.partition(".")
            return dump[section][name] if name else dump[section]

        said = [redact(f"{c} ({value(was, c)!r} in its run.json, {value(now, c)!r} given)") for c in changed]
        msg = (
            f"--resume {run_dir} would change {', '.join(said)}; a resumed run asks what it asked before. "
            "Start a new run in another folder (--out), or resume with the values recorded"
        )
        raise ConfigError(msg)


def _new_manifest(
    config: RunConfig,
    prepared_card: dict[str, Any],
    benchmark: Benchmark,
    selection: Selection,
    model: Model,
    judge: Model | None,
) -> Manifest:
    from mmad._version import __version__

    return Manifest(
        mmad_version=__version__,
        created_at=now(),
        python=platform.python_version(),
        config=config,
        dataset=DatasetInfo(
            source=str(benchmark.source),
            sha256=benchmark.sha256,
            questions_in_benchmark=benchmark.n_questions,
            questions_selected=selection.n_questions,
        ),
        card=prepared_card,
        card_hash=prepared_card["hash"],
        model=model.describe(),
        judge=judge.describe() if judge is not None else None,
    )


def prepare(
    config: RunConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    model: Model | None = None,
    judge: Model | None = None,
) -> PreparedRun:
    """Check and plan a run; returns it with its store open (locked). Raises before anything is sent."""
    run_dir = Path(out) if out else default_run_dir(config)
    store = RunStore(run_dir)
    if not resume:
        config = with_absolute_paths(config)  # so the run can be resumed or reported from any folder
    if resume:
        if not store.exists():
            msg = f"{run_dir} holds no run to resume (no run.json); start one with `mmad eval`"
            raise RunError(msg)
        recorded = read_manifest(run_dir)
        check_resume(recorded.config, config, run_dir)
        # a -d given to the resume (the benchmark moved) is recorded absolute too, as at the start
        config = with_absolute_paths(config)
    elif store.exists():
        msg = (
            f"{run_dir} already holds a run; continue it (`mmad eval --resume {run_dir}`, or resume=True from "
            "Python) or write to another folder (--out)"
        )
        raise RunError(msg)
    elif run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        msg = f"{run_dir} exists and is not an empty folder or a run; choose another folder (--out)"
        raise RunError(msg)
    if resume and not Path(config.data).exists():
        where = (
            "is not there any more (moved or deleted?)"
            if Path(config.data).is_absolute()
            else f"is not there from {Path.cwd()} (a path relative to the folder the run was started in)"
        )
        msg = f"{run_dir} was run on {config.data}, which {where}; give the benchmark's path with -d"
        msg += " (its sha256 is checked)"
        raise RunError(msg)
    benchmark = load_benchmark(config.data)
    if resume:
        recorded_sha = recorded.dataset.sha256
        if recorded_sha not in {None, benchmark.sha256}:
            msg = (
                f"{run_dir} was run on a different benchmark json (sha256 {recorded_sha[:12]}…, "
                f"now {benchmark.sha256[:12]}…); resuming would mix versions"
            )
            raise RunError(msg)
        if recorded.card:
            from mmad.data.clean import benchmark_split, split_change

            split = benchmark_split(config.selection.errata, config.selection.exclude, benchmark)
            why = split_change(recorded.card, split, benchmark)
            if why:
                msg = f"--resume {run_dir}: {why}; resuming would ask other questions than the run's. Restore it, "
                msg += "or start a new run in another folder (--out)"
                raise RunError(msg)
    checked = preflight(config, benchmark)
    selection, strategies, knowledge, price = checked.selection, checked.strategies, checked.knowledge, checked.price
    agent = None
    if strategies.agent_expert:
        from mmad.protocol.agent import AgentRenderer

        agent = AgentRenderer(
            strategies.agent_expert,
            strategies.agent_notation or "bbox",
            run_dir / "agent",
            shots=config.prompt.shots,
            similar=config.prompt.similar_templates,
        )
    planner = Planner(benchmark, config.prompt_settings(), strategies, knowledge, agent)
    model = model or make_model(config)
    model.check()
    batch_size = getattr(getattr(model, "batcher", None), "batch_size", None)
    if isinstance(batch_size, int) and batch_size > config.execution.concurrency:
        logger.warning(
            "batches of %s cannot fill with %s requests in flight; raise --concurrency to at least the batch size",
            batch_size,
            config.execution.concurrency,
        )
    judge = judge or judge_model(config)
    if judge is not None:
        judge.check()
        check_judge_price(config, judge)
    model.prepare(benchmark)
    card = protocol_card(config, benchmark, strategies)
    store.open()
    try:
        done = {k for k, status in store.statuses().items() if status is not Status.ERROR}
        order = selection.keys
        wanted = set(order) - done
        if resume:  # read again under the lock; execution settings may have changed
            described = judge.describe() if judge is not None else None
            manifest = read_manifest(run_dir).started(config, model.describe(), described)
        else:
            manifest = _new_manifest(config, card, benchmark, selection, model, judge)
        write_manifest(run_dir, manifest)
    except BaseException:
        store.close()
        raise
    return PreparedRun(
        config=config,
        run_dir=run_dir,
        store=store,
        benchmark=benchmark,
        selection=selection,
        strategies=strategies,
        planner=planner,
        model=model,
        judge=judge,
        price=price,
        order=order,
        wanted=wanted,
        manifest=manifest,
        resumed=resume,
    )
