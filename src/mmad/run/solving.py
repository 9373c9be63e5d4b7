"""Which solver a run uses, chosen by name from its settings.

The innermost solver is ``--solver NAME`` where given, else ``cot`` with the cot strategy, else
``plain``; the agent strategy wraps it in ``agent-render`` and ``--judge`` wraps the result in
``judge``, whose judge is called through a model caller of its own (`make_judge`). The local engine
and each Ray actor build the same chain from the same config.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mmad.errors import ConfigError
from mmad.models.base import Model
from mmad.models.prices import load_prices, price_for
from mmad.protocol.images import ImageEncoder
from mmad.protocol.prompts import COT_VARIANTS, Variant
from mmad.protocol.strategies import parse_strategies
from mmad.run.cache import ResponseCache
from mmad.run.caller import Budget, JudgeClient
from mmad.run.config import RunConfig
from mmad.run.ledger import EngineSettings, EngineStats
from mmad.solvers import SOLVERS, Solver, SolverSettings, SolverSetup, build_solver


def solver_names(config: RunConfig, *, judge: bool) -> list[str]:
    """The chain of solvers a config names, innermost first."""
    strategies = parse_strategies(config.prompt.strategies)
    chosen = config.answers.solver
    names = [chosen or ("cot" if strategies.cot else "plain")]
    if strategies.tools:
        names.append("tools")
    if strategies.agent_expert:
        names.append("agent-render")
    if judge:
        names.append("judge")
    return names


ADDED_BY = {"tools": "--strategies tools", "agent-render": "--strategies agent:...", "judge": "--judge MODEL"}
"""The built-in wrappers: each wraps the solver that answers and is added by its own setting, never by --solver."""


def check_solver(config: RunConfig) -> None:
    """A ConfigError for a solver no module has registered, a wrapper named as the one that answers, or
    a solver the strategies cannot be asked with (said before the run folder is made: building the
    chain later would leave a run folder behind, and --solver plain with the cot strategy would fail
    every question)."""
    chosen = config.answers.solver
    if chosen and chosen not in SOLVERS:
        msg = f"--solver {chosen}: no such solver; the solvers are {', '.join(sorted(SOLVERS))}"
        raise ConfigError(msg)
    if chosen in ADDED_BY:
        answering = ", ".join(sorted(set(SOLVERS) - set(ADDED_BY)))
        msg = (
            f"--solver {chosen}: the {chosen} solver wraps the one that answers and is added by "
            f"{ADDED_BY[chosen]}; --solver names the one that answers ({answering})"
        )
        raise ConfigError(msg)
    cot = parse_strategies(config.prompt.strategies).cot
    if chosen == "plain" and cot:
        msg = (
            "--solver plain cannot ask the cot strategy's chain-of-thought turn: leave --solver out "
            "(the cot strategy asks with the cot solver) or drop --strategies cot"
        )
        raise ConfigError(msg)
    if chosen == "cot" and not cot:
        # Without the strategy no prompt has a chain-of-thought turn: the run would be a plain one under another name.
        msg = (
            "--solver cot asks the cot strategy's chain-of-thought turn: add --strategies cot (it picks the cot solver)"
        )
        if Variant(config.prompt.protocol) not in COT_VARIANTS:
            # naming only the strategy sent the user from this error to the protocol's (a recipe's cumulative)
            msg = (
                f"--solver cot asks the cot strategy's chain-of-thought turn, which --protocol "
                f"{config.prompt.protocol} does not have: add --strategies cot with --protocol per-question or "
                "per-image, or leave --solver out"
            )
        raise ConfigError(msg)
    if parse_strategies(config.prompt.strategies).tools:
        if config.prompt.protocol == "per-image":
            msg = "--strategies tools asks one question per request: use another --protocol than per-image"
            raise ConfigError(msg)
        from mmad.tools.toolbox import check_tool_names

        check_tool_names(tuple(config.prompt.tools) or None, knowledge_path=config.prompt.knowledge)


def make_agent(config: RunConfig, run_dir: str | Path) -> Any:
    """The agent strategy's renderer (drawing into the run folder's ``agent/``), or None without one."""
    strategies = parse_strategies(config.prompt.strategies)
    if not strategies.agent_expert:
        return None
    from mmad.protocol.agent import AgentRenderer

    return AgentRenderer(
        strategies.agent_expert,
        strategies.agent_notation or "bbox",
        Path(run_dir) / "agent",
        shots=config.prompt.shots,
        similar=config.prompt.similar_templates,
    )


def make_toolbox(config: RunConfig, run_dir: str | Path, benchmark: Any) -> Any:
    """The tools strategy's toolbox (its images in the run folder's ``tools/``), or None without it."""
    prompt = config.prompt
    strategies = parse_strategies(prompt.strategies)
    if not strategies.tools:
        return None
    from mmad.models.expert_model import fitted_expert
    from mmad.tools import Toolbox

    return Toolbox(
        benchmark,
        Path(run_dir) / "tools",
        names=tuple(prompt.tools) or None,
        max_side=config.image_settings().max_side,
        notation=strategies.agent_notation or "bbox",
        shots=prompt.shots,
        similar=prompt.similar_templates,
        knowledge_path=prompt.knowledge,
        expert=fitted_expert,
    )


def tool_protocol(config: RunConfig) -> str:
    """The tools strategy's protocol: as set, except that ``auto`` is ``text`` for a model in this
    process (transformers, vLLM, the baselines), which has no function calling to try."""
    protocol = config.prompt.tool_protocol
    if protocol != "auto":
        return protocol
    from mmad.errors import UnknownModelError
    from mmad.models.providers import provider_info

    try:
        info = provider_info(config.model)
    except UnknownModelError:
        return protocol
    return "text" if info.in_process or info.transport == "none" else protocol


@dataclass
class JudgeBooks:
    """What the judge's caller counts into and reserves from: the run's counters (the ledger's, or a
    Ray actor's own), the run's image encoder and response cache, and its budget (the ledger; None
    where the scheduler reserves for the judge itself)."""

    stats: EngineStats
    images: ImageEncoder
    cache: ResponseCache | None = None
    budget: Budget | None = None


def judge_model(config: RunConfig) -> Model | None:
    """The judge --judge names (None without one), at --judge-base-url where given, else at its provider's
    own address (--base-url and --key-env are the model's); its key is read from its provider's variable."""
    from mmad.models.registry import ModelOptions, create_model

    if config.answers.judge is None:
        return None
    check_judge_address(config)
    try:
        return create_model(config.answers.judge, ModelOptions(base_url=config.answers.judge_base_url))
    except ConfigError as exc:  # the same text as for -m: say which model it is about
        msg = f"--judge {config.answers.judge}: {exc}"
        raise ConfigError(msg) from exc


def check_judge_address(config: RunConfig) -> None:
    """A ConfigError for a judge whose provider has no address of its own (``compat:``) and no
    --judge-base-url: it could not be reached (the dry run says so too, building nothing)."""
    from mmad.models.providers import PROVIDERS

    name, url = config.answers.judge, config.answers.judge_base_url
    if name is None:
        return
    info = PROVIDERS.get(name.partition(":")[0])
    if url is None and info is not None and info.transport == "http" and not info.base_url:
        known = ", ".join(f"{p.name}:" for p in PROVIDERS.values() if p.transport == "http" and p.base_url)
        msg = (
            f"--judge {name}: {info.name}: has no address of its own, and --base-url is the model's, not the "
            f"judge's; give the judge's with --judge-base-url URL, or name the judge by a provider that has "
            f"one ({known})"
        )
        raise ConfigError(msg)


def judge_price(config: RunConfig, judge: Model | None = None) -> tuple[float, float] | None:
    """The judge's price: from the run's --prices file, by the name --judge gave (else the judge's own,
    a judge model handed to the run); None without a judge or a price."""
    name = config.answers.judge or (judge.name if judge is not None else None)
    return None if name is None else price_for(name, load_prices(config.execution.prices))


def check_judge_price(config: RunConfig, judge: Model | None = None) -> tuple[float, float] | None:
    """The judge's price; a ConfigError for a --max-cost run whose judge has none: its spending could not
    be counted (the dry run, which builds no judge, checks it by the name --judge gave)."""
    price = judge_price(config, judge)
    if config.execution.max_cost is not None and price is None:
        name = config.answers.judge or (judge.name if judge is not None else "")
        msg = (
            f"--max-cost needs a price for the judge {name} too (it is paid from the same budget); "
            "give one in a --prices file"
        )
        raise ConfigError(msg)
    return price


def make_judge(config: RunConfig, settings: EngineSettings, judge: Model, books: JudgeBooks | None) -> JudgeClient:
    """The judge's caller: a model client of its own (cache, the run's retries, usage, the budget)."""
    books = books or JudgeBooks(EngineStats(), ImageEncoder(config.image_settings()))
    return JudgeClient(
        judge,
        books.images,
        replace(settings, price=judge_price(config, judge)),
        books.stats,
        cache=books.cache,
        budget=books.budget,
    )


def solver_settings(settings: EngineSettings) -> SolverSettings:
    """What a solver reads of the engine's settings (how a reply is parsed)."""
    return SolverSettings(parser=settings.parser, answer_from=settings.answer_from)


def make_solver(
    config: RunConfig,
    settings: EngineSettings,
    *,
    judge: Model | None = None,
    judge_books: JudgeBooks | None = None,
    agent: Any = None,
    benchmark: Any = None,
    run_dir: str | Path | None = None,
) -> Solver:
    """The solver chain of a run (`agent` and `benchmark` are needed by the agent strategy only; the
    tools strategy needs `benchmark` and `run_dir`). The judge is called through a caller of its own,
    counted into `judge_books` (a fresh set of counters where not given)."""
    check_solver(config)
    options: dict[str, Any] = {}
    if parse_strategies(config.prompt.strategies).tools:
        from mmad.solvers.tools import ToolLoopSettings

        if run_dir is None or benchmark is None:
            msg = "the tools strategy needs the benchmark and the run folder to make its toolbox"
            raise ConfigError(msg)
        options["toolbox"] = make_toolbox(config, run_dir, benchmark)
        prompt = config.prompt
        options["tool_loop"] = ToolLoopSettings(
            max_turns=prompt.max_turns, protocol=tool_protocol(config), blend=prompt.blend
        )
    setup = SolverSetup(
        settings=solver_settings(settings),
        judge=make_judge(config, settings, judge, judge_books) if judge is not None else None,
        agent=agent,
        benchmark=benchmark,
        options=options,
    )
    return build_solver(solver_names(config, judge=judge is not None), setup)
