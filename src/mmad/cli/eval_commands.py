"""`mmad eval` and `mmad serve`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from mmad.cli.common import console
from mmad.errors import ConfigError
from mmad.run.engine import EngineStats


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the app."""
    app.command("eval")(eval_command)
    app.command("serve")(serve_command)
    app.command("build")(build_command)
    app.command("demo")(demo_command)
    app.command("assist")(assist_command)
    app.add_typer(review_app, name="review")


def progress_bar() -> Progress:
    """The live bar of an evaluation: done, rate, ETA, failures, tokens, cost."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} q/s"),
        TimeRemainingColumn(),
        TextColumn(
            "failed {task.fields[failed]} · unparsed {task.fields[unparsed]} · "
            "{task.fields[tokens]} tok · ${task.fields[cost]:.4f} · conc {task.fields[conc]}"
        ),
        console=console,
    )


def add_run_task(bar: Progress, name: str) -> TaskID:
    """A progress line for one run, with the fields `progress_bar` shows."""
    return bar.add_task(name, total=None, rate=0.0, failed=0, unparsed=0, tokens=0, cost=0.0, conc=0)


def show_stats(bar: Progress, task: TaskID, stats: EngineStats) -> None:
    """Put an engine's live counters on its progress line."""
    bar.update(
        task,
        total=stats.total,
        completed=stats.done,
        rate=stats.rate,
        failed=stats.failed,
        unparsed=stats.unparsed,
        tokens=stats.prompt_tokens + stats.completion_tokens,
        cost=stats.cost_usd,
        conc=stats.concurrency,
    )


def eval_command(
    model: str = typer.Option(None, "--model", "-m", help="provider:model, e.g. openai:gpt-4o, vllm:NAME, random"),
    data: Path = typer.Option(None, "--data", "-d", help="data root holding mmad.json, or the json"),
    out: Path = typer.Option(None, "--out", "-o", help="run directory (default runs/<model>_<k>shot_<protocol>)"),
    resume: Path = typer.Option(None, "--resume", help="continue this run: ask only what is missing or failed"),
    protocol: str = typer.Option("per-question", "--protocol", help="per-question, cumulative, gemini, per-image"),
    shots: int = typer.Option(1, "--shots", help="template images shown before the query"),
    similar: bool = typer.Option(False, "--similar", help="use similar_templates instead of random_templates"),
    blind: bool = typer.Option(False, "--blind", help="text-only baseline: no images"),
    circular: bool = typer.Option(False, "--circular", help="ask every rotation of the options"),
    strategy: list[str] = typer.Option(None, "--strategy", help="rag, cot, agent:expert:bbox, agent:gt:contour, ..."),
    knowledge: Path = typer.Option(None, "--knowledge", help="domain-knowledge json for rag"),
    limit: int = typer.Option(None, "--limit", help="ask a seeded random sample of this many questions"),
    dataset: list[str] = typer.Option(None, "--dataset", help="only these source datasets"),
    category: list[str] = typer.Option(None, "--category", help="only these categories"),
    subtask: list[str] = typer.Option(None, "--subtask", help="only these subtasks"),
    concurrency: int = typer.Option(16, "--concurrency", "-c", help="requests in flight at most"),
    max_retries: int = typer.Option(5, "--max-retries"),
    timeout: float = typer.Option(120.0, "--timeout", help="seconds per request"),
    max_cost: float = typer.Option(None, "--max-cost", help="stop cleanly once this many dollars are spent"),
    prices: Path = typer.Option(None, "--prices", help="json {model: [input $/M, output $/M]}"),
    no_cache: bool = typer.Option(False, "--no-cache", help="do not reuse or store responses"),
    base_url: str = typer.Option(None, "--base-url", help="the server's /v1 URL (overrides the preset)"),
    key_env: str = typer.Option(None, "--key-env", help="environment variable holding the API key"),
    extra_body: str = typer.Option(None, "--extra-body", help="json merged into each request body"),
    text_only: bool = typer.Option(False, "--text-only-server", help="the server rejects image parts"),
    device: str = typer.Option(None, "--device", help="in-process models: cuda, cuda:1 or cpu"),
    dtype: str = typer.Option(None, "--dtype", help="in-process models: bfloat16, float16 or float32"),
    batch_size: int = typer.Option(None, "--batch-size", help="in-process models: requests generated together"),
    model_args: str = typer.Option(
        None, "--model-args", help="in-process models: json, e.g. '{\"tensor_parallel_size\": 2}' for vllm-local"
    ),
    image_size: int = typer.Option(512, "--image-size", help="longest side in px (0: keep the size)"),
    original_images: bool = typer.Option(False, "--original-images", help="send the files' own bytes"),
    detail: str = typer.Option("low", "--detail", help="low, high, auto or none"),
    parser: str = typer.Option("mmad", "--parser", help="mmad (layered) or upstream (official regex)"),
    judge: str = typer.Option(None, "--judge", help="a model that maps unparsed replies to letters"),
    likelihood: bool = typer.Option(False, "--likelihood", help="also record letter log-probabilities"),
    answer_from: str = typer.Option("text", "--answer-from", help="text (parse the reply) or likelihood (best letter)"),
    max_tokens: int = typer.Option(128, "--max-tokens"),
    temperature: float = typer.Option(0.0, "--temperature"),
    dry_run: bool = typer.Option(False, "--dry-run", help="estimate requests, tokens and cost; send nothing"),
) -> None:
    """Evaluate a model on MMAD (or any MMAD-format benchmark) with the official protocol."""
    from mmad.cli.score_commands import render_table
    from mmad.run.config import RunConfig
    from mmad.run.evaluate import evaluate_async, load_run_config

    if resume is not None:
        config = load_run_config(resume)
        config = config.model_copy(update={"concurrency": concurrency, "max_cost": max_cost or config.max_cost})
        out = resume
    else:
        if not model or not data:
            msg = "give --model and --data (or --resume RUN)"
            raise ConfigError(msg)
        body = _json_option("--extra-body", extra_body)
        engine_args = _json_option("--model-args", model_args)
        config = RunConfig(
            model=model,
            data=str(data),
            protocol=protocol,
            shots=shots,
            similar_templates=similar,
            blind=blind,
            circular=circular,
            strategies=list(strategy or []),
            knowledge=str(knowledge) if knowledge else None,
            limit=limit,
            datasets=list(dataset or []),
            categories=list(category or []),
            subtasks=list(subtask or []),
            concurrency=concurrency,
            max_retries=max_retries,
            timeout_s=timeout,
            max_cost=max_cost,
            prices=str(prices) if prices else None,
            cache=not no_cache,
            base_url=base_url,
            key_env=key_env,
            extra_body=body,
            text_only=text_only,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            model_args=engine_args,
            image_size=image_size or None,
            original_images=original_images,
            detail=None if detail == "none" else detail,
            parser=parser,
            judge=judge,
            likelihood=likelihood,
            max_tokens=max_tokens,
            temperature=temperature,
        )
    if dry_run:
        _dry_run(config)
        return
    with progress_bar() as bar:
        task = add_run_task(bar, config.model)

        def on_progress(stats: EngineStats) -> None:
            show_stats(bar, task, stats)

        result = asyncio.run(evaluate_async(config, out=out, resume=resume is not None, on_progress=on_progress))
    console.print(render_table(result.table, f"MMAD — {config.model}"))
    if "circular" in result.files:
        from mmad.cli.score_commands import render_circular

        console.print(render_circular(result.files["circular"]))
    stats = result.stats
    console.print(
        f"{stats.done} questions this session ({stats.cached} from cache, {stats.retries} retries); "
        f"{stats.prompt_tokens + stats.completion_tokens} tokens, ${stats.cost_usd:.4f}"
    )
    if stats.stopped_reason:
        console.print(f"[yellow]stopped: {stats.stopped_reason}[/]; continue with: mmad eval --resume {result.run_dir}")
    elif not result.complete:
        console.print(f"[yellow]some questions failed[/]; retry them with: mmad eval --resume {result.run_dir}")
    console.print(f"run directory: {result.run_dir}")


def _json_option(flag: str, text: str | None) -> dict[str, object]:
    """A json-object option, or a ConfigError naming the flag."""
    try:
        value = json.loads(text) if text else {}
    except ValueError as exc:
        msg = f"{flag} is not valid json: {exc}"
        raise ConfigError(msg) from exc
    if not isinstance(value, dict):
        msg = f"{flag} must be a json object, e.g. '{{\"key\": 1}}'"
        raise ConfigError(msg)
    return value


def _dry_run(config: object) -> None:
    from mmad.data.official import load_benchmark
    from mmad.models.prices import load_prices, price_for
    from mmad.protocol.strategies import parse_strategies
    from mmad.run.config import RunConfig
    from mmad.run.estimate import estimate
    from mmad.run.plan import Planner, select_items

    assert isinstance(config, RunConfig)
    benchmark = load_benchmark(config.data)
    items = select_items(benchmark, config)
    strategies = parse_strategies(config.strategies)
    plain = parse_strategies([s for s in config.strategies if not s.startswith("agent")])
    planner = Planner(benchmark, config.prompt_settings(), plain)
    price = price_for(config.model, load_prices(config.prices))
    result = estimate(list(planner.prompts(items)), config.image_settings(), price)
    if strategies.agent_expert:
        result.images_sent += result.requests
        result.prompt_tokens += 85 * result.requests
    console.print(f"[bold]dry run[/] for {config.model} ({config.protocol.value}, {config.shots}-shot): nothing sent")
    console.print(f"  questions {result.questions}, requests {result.requests}, images sent {result.images_sent}")
    console.print(f"  tokens ≈ {result.prompt_tokens:,} in + {result.completion_tokens:,} out")
    if result.cost_usd is None:
        console.print("  cost: no price known for this model; give --prices FILE")
    else:
        console.print(f"  cost ≈ ${result.cost_usd:.2f} at ${price[0]}/M in, ${price[1]}/M out")  # type: ignore[index]


def serve_command(
    model: str = typer.Option("random", "--model", "-m", help="the mmad backend to serve (random, fixed:A, expert)"),
    port: int = typer.Option(8765, "--port"),
    host: str = typer.Option("127.0.0.1", "--host", help="the address to bind (keep it local)"),
    latency: float = typer.Option(0.0, "--latency", help="seconds added to every request"),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="fraction of requests that fail on purpose"),
    faults: str = typer.Option(",".join(("429", "500", "503", "timeout", "drop", "malformed", "empty")), "--faults"),
    retry_after: float = typer.Option(0.2, "--retry-after", help="Retry-After of injected 429s"),
    hang: float = typer.Option(30.0, "--hang", help="how long an injected time-out hangs"),
    seed: int = typer.Option(0, "--seed"),
    data: Path = typer.Option(None, "--data", help="a benchmark the model may prepare on (the expert calibrates)"),
) -> None:
    """Serve an mmad model as an OpenAI-compatible chat-completions API."""
    from mmad.data.official import load_benchmark
    from mmad.models.registry import create_model
    from mmad.serve.server import ChatServer, FaultPlan

    plan = FaultPlan(
        rate=fault_rate,
        kinds=tuple(k for k in faults.split(",") if k),
        retry_after_s=retry_after,
        hang_s=hang,
        seed=seed,
    )
    backend = create_model(model)
    if data is not None:
        backend.prepare(load_benchmark(data))
    server = ChatServer(backend, host=host, port=port, latency_s=latency, faults=plan, model_name=model)

    async def main() -> None:
        await server.start()
        console.print(f"serving {model} at {server.base_url} (Ctrl-C to stop)")
        await server.serve_forever()

    asyncio.run(main())


def build_command(
    source: Path = typer.Argument(..., help="an anomaly-detection dataset root (<root>/<category>/...)"),
    out: Path = typer.Option(..., "--out", "-o", help="the benchmark folder to write"),
    layout: str = typer.Option("auto", "--layout", help="auto, mvtec, visa, loco, goodsad or folder"),
    name: str = typer.Option(None, "--name", help="the dataset name in every key (default: the folder's name)"),
    seed: int = typer.Option(0, "--seed"),
    templates: int = typer.Option(3, "--templates", help="random and similar templates per image"),
    knowledge: Path = typer.Option(None, "--knowledge", help="domain-knowledge json for Object Analysis"),
    copy: bool = typer.Option(False, "--copy", help="copy images instead of linking them"),
) -> None:
    """Build an MMAD-style benchmark from an anomaly-detection dataset."""
    from mmad.builder.build import build_benchmark

    with Progress(
        TextColumn("building"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as bar:
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
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(
        f"[green]built[/] {out / 'mmad.json'}: {report.images} images, {benchmark.n_questions} questions "
        f"({report.layout} layout)"
    )
    for qtype, n in sorted(report.questions.items()):
        console.print(f"  {qtype}: {n}")
    for reason, n in sorted(report.skipped.items()):
        console.print(f"  [yellow]skipped[/] {n}: {reason}")
    console.print(f"next: mmad validate {out} ; mmad eval --model ... --data {out}")


def demo_command(
    out: Path = typer.Option(Path("mmad-demo"), "--out", "-o", help="where the demo writes everything"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The whole job on synthetic data, with no download and no key: build, serve, evaluate, score."""
    import time

    from mmad.cli.score_commands import render_table
    from mmad.demo import SMOKE_TEST_LABEL, run_demo

    started = time.monotonic()
    console.print(
        "[bold]mmad demo[/]: generating a synthetic dataset, building its benchmark, serving the models "
        "that run here on 127.0.0.1 and evaluating them through the OpenAI-compatible client."
    )
    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(name: str, stats: EngineStats) -> None:
            if name not in tasks:
                tasks[name] = add_run_task(bar, name)
            show_stats(bar, tasks[name], stats)

        result = run_demo(out, seed=seed, on_progress=on_progress)
    for name, run in result.runs.items():
        console.print(render_table(run.table, f"{name} — {SMOKE_TEST_LABEL}"))
    console.print(f"benchmark: {result.benchmark}; runs: {result.folder / 'runs'}; {time.monotonic() - started:.0f} s")


def assist_command(
    benchmark: Path = typer.Argument(..., help="a benchmark built by `mmad build` (folder or mmad.json)"),
    model: str = typer.Option(..., "--model", "-m", help="the MLLM that captions and writes questions"),
    base_url: str = typer.Option(None, "--base-url"),
    concurrency: int = typer.Option(4, "--concurrency", "-c"),
) -> None:
    """MLLM-assisted questions: caption each image with its defect outlined, then write questions."""
    from mmad.builder.assisted import assist
    from mmad.models.registry import ModelOptions, create_model

    backend = create_model(model, ModelOptions(base_url=base_url, detail="high"))
    backend.check()
    report = assist(benchmark, backend, concurrency=concurrency)
    console.print(f"{report.captions} captions; added " + ", ".join(f"{k} {v}" for k, v in report.added.items()))
    for reason, n in sorted(report.rejected.items()):
        console.print(f"  [yellow]rejected[/] {n}: {reason}")
    console.print(f"next: mmad review export {benchmark} --out review/")


review_app = typer.Typer(help="Human review of generated questions: export a CSV and an HTML page, import verdicts.")


@review_app.command("export")
def review_export(
    benchmark: Path = typer.Argument(...),
    out: Path = typer.Option(Path("review"), "--out", "-o"),
    all_questions: bool = typer.Option(False, "--all", help="include questions already accepted"),
) -> None:
    """Write review.csv (fill its verdict column) and review.html."""
    from mmad.builder.assisted import export_review

    csv_path, html_path = export_review(benchmark, out, only_unreviewed=not all_questions)
    console.print(f"wrote {csv_path} and {html_path}")


@review_app.command("import")
def review_import(benchmark: Path = typer.Argument(...), verdicts: Path = typer.Argument(...)) -> None:
    """Apply accept/reject verdicts from a review CSV."""
    from mmad.builder.assisted import import_review

    result = import_review(benchmark, verdicts)
    console.print(f"accepted {result.accepted}, rejected {result.rejected} (removed), {result.pending} left open")
