"""Which solver a run uses, chosen by name from its settings.

The innermost solver is ``--solver NAME`` where given, else ``cot`` with the cot strategy, else
``plain``; the agent strategy wraps it in ``agent-render`` and ``--judge`` wraps the result in
``judge``. The local engine and each Ray actor build the same chain from the same config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmad.errors import ConfigError
from mmad.models.base import Model
from mmad.protocol.strategies import parse_strategies
from mmad.run.config import RunConfig
from mmad.run.ledger import EngineSettings
from mmad.solvers import SOLVERS, Solver, SolverSettings, SolverSetup, build_solver


def solver_names(config: RunConfig, *, judge: bool) -> list[str]:
    """The chain of solvers a config names, innermost first."""
    strategies = parse_strategies(config.prompt.strategies)
    chosen = getattr(config.answers, "solver", None)
    names = [chosen or ("cot" if strategies.cot else "plain")]
    if strategies.agent_expert:
        names.append("agent-render")
    if judge:
        names.append("judge")
    return names


def check_solver(config: RunConfig) -> None:
    """A ConfigError for a solver no module has registered (said before the run folder is made)."""
    chosen = getattr(config.answers, "solver", None)
    if chosen and chosen not in SOLVERS:
        msg = f"--solver {chosen}: no such solver; the solvers are {', '.join(sorted(SOLVERS))}"
        raise ConfigError(msg)


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


def make_solver(
    config: RunConfig,
    settings: EngineSettings,
    *,
    judge: Model | None = None,
    agent: Any = None,
    benchmark: Any = None,
) -> Solver:
    """The solver chain of a run (`agent` and `benchmark` are needed by the agent strategy only)."""
    check_solver(config)
    setup = SolverSetup(
        settings=SolverSettings(parser=settings.parser, answer_from=settings.answer_from),
        judge=judge,
        agent=agent,
        benchmark=benchmark,
    )
    return build_solver(solver_names(config, judge=judge is not None), setup)
