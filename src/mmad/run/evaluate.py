"""`mmad.evaluate`: a benchmark, a model and a protocol in; a run directory and the MMAD table out."""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmad._io import atomic_write_text
from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark, ImageItem
from mmad.errors import ConfigError, RunError
from mmad.models.base import Model
from mmad.models.batching import MicroBatcher
from mmad.models.prices import load_prices, price_for
from mmad.models.registry import ModelOptions, create_model
from mmad.protocol.images import ImageEncoder
from mmad.protocol.prompts import posed_questions
from mmad.protocol.strategies import DomainKnowledge, parse_strategies
from mmad.records.record import Status, latest_records
from mmad.report.files import write_score_files
from mmad.run.cache import ResponseCache
from mmad.run.config import RunConfig
from mmad.run.engine import Engine, EngineSettings, EngineStats
from mmad.run.limits import RetryPolicy
from mmad.run.plan import Planner, select_items
from mmad.run.store import RunStore
from mmad.score.answers import graded_from_records, write_official_answers
from mmad.score.official_csv import write_accuracy_csv
from mmad.score.table import ScoreTable, score_answers

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What an evaluation left behind."""

    run_dir: Path
    table: ScoreTable
    stats: EngineStats
    complete: bool
    files: dict[str, Path] = field(default_factory=dict)


def slug(text: str) -> str:
    """A file-name-safe form of a model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def run_name(config: RunConfig) -> str:
    """The default run folder name: model, shots, protocol, strategies."""
    parts = [slug(config.model), f"{config.shots}shot", config.protocol.value]
    parts += [slug(s) for s in config.strategies]
    if config.blind:
        parts.append("blind")
    if config.circular:
        parts.append("circular")
    return "_".join(parts)


def answers_file_name(config: RunConfig) -> str:
    """The official answers file name: ``answers_{k}_shot_{model}{suffixes}.json``."""
    suffix = "".join(f"_{slug(s)}" for s in config.strategies)
    if config.similar_templates:
        suffix = "_Similar_template" + suffix
    if config.blind:
        suffix += "_Text_only"
    return f"answers_{config.shots}_shot_{slug(config.model.split(':', 1)[-1])}{suffix}.json"


def make_model(config: RunConfig) -> Model:
    """The backend a config names."""
    return create_model(
        config.model,
        ModelOptions(
            base_url=config.base_url,
            key_env=config.key_env,
            detail=config.detail,
            extra_body=config.extra_body,
            timeout_s=config.timeout_s,
            max_connections=max(config.concurrency, 8),
            text_only=config.text_only,
            device=config.device,
            dtype=config.dtype,
            batch_size=config.batch_size,
            model_args=config.model_args,
        ),
    )


def _meta(
    config: RunConfig,
    benchmark_sha: str,
    benchmark_source: str,
    n_questions: int,
    model: Model,
    strategies: list[str],
) -> dict[str, Any]:
    from mmad import __version__

    return {
        "mmad_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "config": config.model_dump(mode="json"),
        "dataset": {"source": benchmark_source, "sha256": benchmark_sha, "questions_selected": n_questions},
        "model": model.describe(),
        "protocol": {**asdict(config.prompt_settings()), "variant": config.protocol.value},
        "images": config.image_settings().describe(),
        "strategies": strategies,
        "status": "running",
    }


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The config recorded in a run directory."""
    meta = RunStore(run_dir).read_meta()
    return RunConfig.model_validate(meta["config"])


async def evaluate_async(
    config: RunConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    model: Model | None = None,
    judge: Model | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
) -> RunResult:
    """Evaluate a model on a benchmark; resumable. See `evaluate` for the arguments."""
    run_dir = Path(out) if out else Path("runs") / run_name(config)
    store = RunStore(run_dir)
    benchmark = load_benchmark(config.data)
    if resume:
        if not store.exists():
            msg = f"{run_dir} holds no run to resume (no run.json); start one with `mmad eval`"
            raise RunError(msg)
        recorded = store.read_meta()
        if recorded.get("dataset", {}).get("sha256") not in {None, benchmark.sha256}:
            msg = (
                f"{run_dir} was run on a different benchmark json (sha256 {recorded['dataset']['sha256'][:12]}…, "
                f"now {benchmark.sha256[:12]}…); resuming would mix versions"
            )
            raise RunError(msg)
    elif store.exists():
        msg = f"{run_dir} already holds a run; continue it with `mmad eval --resume {run_dir}` or choose --out"
        raise RunError(msg)
    strategies = parse_strategies(config.strategies)
    knowledge = DomainKnowledge.find(benchmark, config.knowledge) if strategies.rag else None
    agent = None
    if strategies.agent_expert:
        from mmad.protocol.agent import AgentRenderer

        agent = AgentRenderer(
            strategies.agent_expert,
            strategies.agent_notation or "bbox",
            run_dir / "agent",
            shots=config.shots,
            similar=config.similar_templates,
        )
    items = select_items(benchmark, config)
    settings = config.prompt_settings()
    order = [(p.question_id, p.variant) for item in items for group in posed_questions(item, settings) for p in group]
    model = model or make_model(config)
    model.check()
    batcher = getattr(model, "batcher", None)
    if isinstance(batcher, MicroBatcher) and batcher.batch_size > config.concurrency:
        logger.warning(
            "batches of %s cannot fill with %s requests in flight; raise --concurrency to at least the batch size",
            batcher.batch_size,
            config.concurrency,
        )
    model.prepare(benchmark)
    price = price_for(config.model, load_prices(config.prices))
    if config.max_cost is not None and price is None:
        msg = f"--max-cost needs a price for {config.model}; give one in a --prices file"
        raise ConfigError(msg)
    store.open()
    try:
        done = {k for k, r in latest_records(store.load()).items() if r.status is not Status.ERROR}
        wanted = set(order) - done
        todo_items = [item for item in items if any((q.id, v) in wanted for q, v in _keys(item, settings))]
        meta = (
            store.read_meta()
            if resume
            else _meta(config, benchmark.sha256, str(benchmark.source), len(order), model, strategies.names)
        )
        meta["status"] = "running"
        store.write_meta(meta)
        planner = Planner(benchmark, settings, strategies, knowledge, agent)
        prompts = (
            p for p in planner.prompts(todo_items) if any((q.question_id, q.variant) in wanted for q in p.questions)
        )
        images = ImageEncoder(config.image_settings())
        from mmad.models.openai_api import OpenAICompatibleModel

        if isinstance(model, OpenAICompatibleModel):  # the backends that send encoded images
            images.prefetch(_image_paths(benchmark, todo_items, config))
        engine = Engine(
            model,
            store,
            images,
            EngineSettings(
                policy=RetryPolicy(config.max_retries, config.retry_base_s, config.retry_max_s, config.timeout_s),
                concurrency=config.concurrency,
                temperature=config.temperature,
                parser=config.parser,
                likelihood=config.likelihood or config.answer_from == "likelihood",
                answer_from=config.answer_from,
                max_cost=config.max_cost,
                price=price,
                cache_settings={
                    "images": config.image_settings().describe(),
                    "temperature": config.temperature,
                    "likelihood": config.likelihood or config.answer_from == "likelihood",
                    "parser": config.parser,
                },
            ),
            cache=ResponseCache(config.cache_dir) if config.cache else None,
            judge=judge or (create_model(config.judge) if config.judge else None),
            on_progress=on_progress,
        )
        engine.wanted = wanted
        try:
            stats = await engine.run(prompts, len(wanted))
        finally:
            images.stop()
        latest = store.compact(order)
        missing = [k for k in order if k not in latest]
        failed = [k for k in order if k in latest and latest[k].status is Status.ERROR]
        complete = not missing and not failed and stats.stopped_reason is None
        meta.update(
            status="complete" if complete else "partial",
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            missing=len(missing),
            failed=len(failed),
            stopped_reason=stats.stopped_reason,
            usage={
                "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
                "cost_usd": round(stats.cost_usd, 6),
                "cached": stats.cached,
                "retries": stats.retries,
            },
        )
        store.write_meta(meta)
    finally:
        store.close()
        await model.aclose()
    graded = graded_from_records(latest[k] for k in order if k in latest)
    table = score_answers(graded)
    files = write_score_files(table, graded, run_dir, title=f"MMAD — {config.model}")
    answers_path = run_dir / answers_file_name(config)
    write_official_answers(graded, answers_path)
    accuracy_path = answers_path.with_name(answers_path.stem + "_accuracy.csv")
    write_accuracy_csv(table, accuracy_path)
    files.update(answers=answers_path, official_csv=accuracy_path, records=store.records_file, run=store.run_file)
    if config.circular:
        from mmad.score.circular import circular_report

        report = circular_report(latest.values())
        files["circular"] = run_dir / "circular.json"
        atomic_write_text(files["circular"], json.dumps(asdict(report), indent=2))
    return RunResult(run_dir=run_dir, table=table, stats=stats, complete=complete, files=files)


def _image_paths(benchmark: Benchmark, items: list[ImageItem], config: RunConfig) -> Iterator[str]:
    """The image files a run will send, in order."""
    if config.blind:
        return
    for item in items:
        for template in item.templates(config.shots, similar=config.similar_templates):
            yield str(benchmark.resolve(template))
        yield str(benchmark.resolve(item.key))


def _keys(item: Any, settings: Any) -> list[tuple[Any, str]]:
    return [(item.questions[i], p.variant) for i, group in enumerate(posed_questions(item, settings)) for p in group]


def evaluate(
    model: str,
    data: str | Path,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    on_progress: Callable[[EngineStats], None] | None = None,
    **settings: Any,
) -> RunResult:
    """Evaluate a model on an MMAD-format benchmark with the official protocol (or a variant).

    Args:
        model: ``provider:model``, e.g. ``openai:gpt-4o``, ``vllm:Qwen/Qwen2.5-VL-7B-Instruct``, ``random``.
        data: the data root holding mmad.json, or the json.
        out: the run directory (default ``runs/<model>_<k>shot_<protocol>``).
        resume: continue the run in ``out``: ask only what is missing or failed.
        on_progress: called with live counters.
        **settings: any `RunConfig` field (protocol, shots, concurrency, max_cost, strategies, ...).
    """
    config = RunConfig(model=model, data=str(data), **settings)
    return asyncio.run(evaluate_async(config, out=out, resume=resume, on_progress=on_progress))
