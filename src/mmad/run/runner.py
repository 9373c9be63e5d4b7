"""A run in three stages: prepare (check and plan) → engine (ask) → finish (record and score).

Interrupted (Ctrl-C, a cancelled task), the run still finishes: what was answered stays in
records.jsonl, run.json says ``interrupted``, and ``--resume`` asks only what is missing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

from mmad._io import collector_frozen
from mmad.models.base import Model
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart
from mmad.run.cache import ResponseCache, check_cache_folder
from mmad.run.config import RunConfig
from mmad.run.engine import Engine, EngineSettings, EngineStats
from mmad.run.finish import RunResult, finish
from mmad.run.ledger import Ledger, Scheduler
from mmad.run.limits import RetryPolicy
from mmad.run.plan import SelectedItem
from mmad.run.prepare import PreparedRun, prepare
from mmad.run.secrets import redact
from mmad.run.solving import JudgeBooks, check_solver, make_solver


def engine_settings(prepared: PreparedRun) -> EngineSettings:
    """The engine's settings for a prepared run."""
    config = prepared.config
    execution = config.execution
    return EngineSettings(
        policy=RetryPolicy(execution.max_retries, execution.retry_base_s, execution.retry_max_s, execution.timeout_s),
        concurrency=execution.concurrency,
        temperature=config.decoding.temperature,
        parser=config.answers.parser,
        likelihood=config.answers.wants_logprobs,
        answer_from=config.answers.answer_from,
        max_cost=execution.max_cost,
        max_errors=execution.max_errors,
        price=prepared.price,
        spent_before_usd=_spent_before(prepared),
        tool_turns=config.prompt.max_turns if prepared.strategies.tools else None,
        cache_settings={
            "images": config.image_settings().describe(),
            "decoding": config.decoding.model_dump(mode="json"),
            "likelihood": config.answers.wants_logprobs,
            "parser": config.answers.parser,
            "benchmark": prepared.benchmark.sha256,
        },
    )


def _spent_before(prepared: PreparedRun) -> float:
    """Dollars the earlier sessions of a resumed run spent (run.json's usage)."""
    usage = prepared.manifest.usage if prepared.resumed else None
    # unknown (an unpriced model): --max-cost has only this session's spending to go on
    return usage.cost_usd if usage is not None and usage.cost_usd is not None else 0.0


def _image_paths(prepared: PreparedRun, items: list[SelectedItem]) -> Iterator[ImagePart]:
    """The image files a run will send, in order, by role (--perturb changes the query images only)."""
    prompt = prepared.config.prompt
    if prompt.blind:
        return
    for selected in items:
        for template in selected.item.templates(prompt.shots, similar=prompt.similar_templates):
            yield ImagePart(path=str(prepared.benchmark.resolve(template)), role="template")
        yield ImagePart(path=str(prepared.benchmark.resolve(selected.item.key)), role="query")


def make_engine(
    prepared: PreparedRun,
    on_progress: Callable[[EngineStats], None] | None = None,
    *,
    cache: ResponseCache | None = None,
) -> Engine:
    """The engine of a prepared run; opens the response cache unless given one already open."""
    config = prepared.config
    if cache is None and config.execution.cache:
        cache = ResponseCache(config.execution.cache_dir)
    settings = engine_settings(prepared)
    images = ImageEncoder(config.image_settings())
    # Made before the solver: the judge's calls are counted into its books and reserved from its budget.
    ledger = Ledger(prepared.store, settings, images, on_progress=on_progress)
    solver = make_solver(
        config,
        settings,
        judge=prepared.judge,
        judge_books=JudgeBooks(ledger.stats, images, cache, budget=ledger),
        agent=prepared.planner.agent,
        benchmark=prepared.benchmark,
        run_dir=prepared.store.folder,
    )
    engine = Engine(
        prepared.model,
        prepared.store,
        images,
        settings,
        solver=solver,
        cache=cache,
        on_progress=on_progress,
        ledger=ledger,
    )
    engine.wanted = prepared.wanted
    engine.ledger.manifest_holder = prepared  # the spending so far goes to run.json, for a run that is killed
    return engine


async def execute(prepared: PreparedRun, engine: Scheduler) -> EngineStats:
    """The engine stage: ask every wanted question; records are appended as answers arrive."""
    wanted = prepared.wanted
    todo = [s for s in prepared.selection.items if any(k in wanted for k in s.keys)]
    if prepared.model.prefetch_images and prepared.config.execution.engine == "local":
        engine.images.prefetch(_image_paths(prepared, todo))
    try:
        return await engine.run(prepared.planner.work(todo), len(wanted))
    finally:
        engine.images.stop()
        if engine.cache is not None:
            # A sweep's cells run in one process: an open cache would keep its writer thread, its
            # connection and its preloaded replies for the rest of the sweep, one set per cell.
            engine.cache.close()


async def run_async(
    config: RunConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    model: Model | None = None,
    judge: Model | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
) -> RunResult:
    """Prepare, ask and finish a run; resumable. Writes run.json and records.jsonl only."""
    check_solver(config)
    make: Callable[[], Scheduler]
    if config.execution.engine == "ray":  # only stage two differs: a Ray actor pool (or Ray Data LLM) asks
        from mmad.run.ray_runner import make_ray_engine, prepare_on_ray

        if config.execution.cache:  # the actors open it; a damaged or read-only one is named before the run folder
            check_cache_folder(config.execution.cache_dir)
            ResponseCache(config.execution.cache_dir, preload=False).close()
        prepared = prepare_on_ray(config, out=out, resume=resume, model=model, judge=judge)
        make = functools.partial(make_ray_engine, prepared, on_progress, model=model, judge=judge)
    else:
        # Opened before prepare writes the run folder: a cache that cannot be opened (damaged,
        # read-only) must not leave an empty run behind that the corrected command then refuses.
        if config.execution.cache:
            check_cache_folder(config.execution.cache_dir)  # named by where its path came from
        cache = ResponseCache(config.execution.cache_dir) if config.execution.cache else None
        try:
            prepared = prepare(config, out=out, resume=resume, model=model, judge=judge)
        except BaseException:
            if cache is not None:
                cache.close()
            raise
        make = functools.partial(make_engine, prepared, on_progress, cache=cache)
    try:
        engine = make()
    except (asyncio.CancelledError, KeyboardInterrupt):
        await asyncio.shield(finish(prepared, EngineStats(), interrupted=True))
        raise
    except BaseException as exc:
        # Nothing was asked: run.json says so and why, not a bare 'partial' (mmad runs shows the reason).
        await finish(prepared, _stopped_by(EngineStats(), "the engine could not be built", exc), failed=True)
        raise
    with collector_frozen():  # the benchmark and the plan, alive for the whole run
        try:
            stats = await execute(prepared, engine)
        except (asyncio.CancelledError, KeyboardInterrupt):
            await asyncio.shield(finish(prepared, engine.stats, interrupted=True))
            raise
        except BaseException as exc:
            await finish(prepared, _stopped_by(engine.stats, "the run failed while asking", exc))
            raise
        return await finish(prepared, stats)


def _stopped_by(stats: EngineStats, what: str, exc: BaseException) -> EngineStats:
    """The stats with why the run stopped (an error of its own), unless the engine said why already."""
    if stats.stopped_reason is None:
        text = " ".join(str(exc).split()) or "(no message)"
        stats.stopped_reason = redact(f"{what}: {type(exc).__name__}: {text}")
    return stats
