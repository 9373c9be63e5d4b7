"""The checks a run makes against its benchmark before a model is built or anything is written.

`prepare` runs them first, and `--dry-run` runs the same ones (`mmad.run.estimate.dry_run`), so an
estimate is only ever shown for a run that would start.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmad.data.formats import check_protocol
from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark
from mmad.errors import ConfigError, TooFewTemplatesError
from mmad.models.prices import load_prices, price_for
from mmad.protocol.strategies import DomainKnowledge, StrategySet, parse_strategies
from mmad.run.cache import check_cache_folder
from mmad.run.config import RunConfig
from mmad.run.plan import Selection, select_questions


@dataclass
class Preflight:
    """What the checks loaded, for the stages that follow."""

    benchmark: Benchmark
    selection: Selection
    strategies: StrategySet
    knowledge: DomainKnowledge | None
    price: tuple[float, float] | None


def check_shots(benchmark: Benchmark, selection: Selection, config: RunConfig) -> None:
    """Every selected image has the templates its shots show."""
    shots = config.prompt.shots
    if shots == 0 or config.prompt.blind:
        return
    similar = config.prompt.similar_templates
    pool = "similar_templates" if similar else "random_templates"
    short = [s.item for s in selection.items if len(s.item.templates(shots, similar=similar)) < shots]
    if short:
        most = max(len(item.similar_templates if similar else item.random_templates) for item in short)
        msg = (
            f"--shots {shots}: {len(short)} selected images have fewer than {shots} {pool} "
            f"(e.g. {short[0].key} has {len(short[0].templates(shots, similar=similar))}; the most any of them "
            f"has is {most}); choose --shots {most} or fewer"
        )
        raise TooFewTemplatesError(msg)


def check_expert_templates(config: RunConfig) -> None:
    """The visual expert compares the query with template images: without any it declines every question,
    a run of nothing but abstentions that would finish "complete" (a sweep skips such a cell)."""
    if config.model.partition(":")[0] != "expert":
        return
    if config.prompt.blind:
        msg = (
            f"-m {config.model} with --blind: the visual expert looks only at the images, so it would decline "
            "every question; leave --blind out"
        )
        raise ConfigError(msg)
    if config.prompt.shots == 0:
        msg = (
            f"-m {config.model} with --shots 0: the visual expert compares the query with template images, so "
            "without any it would decline every question; use --shots 1 or more"
        )
        raise TooFewTemplatesError(msg)


def preflight(config: RunConfig, benchmark: Benchmark | None = None) -> Preflight:
    """Check the config against the benchmark (selection, templates, knowledge, price) and the [ray] extra
    for the Ray engine."""
    if config.execution.engine == "ray":  # the dry run and a sweep name a missing [ray] extra before anything
        from mmad.run.ray_session import import_ray

        import_ray()
    if config.connection.text_only and not config.prompt.blind:
        msg = (
            "--text-only sends no images, yet the prompt would still ask about them (answers to pictures "
            "the model never saw); add --blind for the text-only baseline, or leave --text-only out"
        )
        raise ConfigError(msg)
    check_expert_templates(config)
    if config.execution.cache:
        check_cache_folder(config.execution.cache_dir)
    benchmark = benchmark or load_benchmark(config.data)
    strategies = parse_strategies(config.prompt.strategies)
    if strategies.agent_expert and config.prompt.blind:
        # the agent's whole point is the expert's picture beside the query: blind, the model sees neither,
        # and the run would be scored and labelled as the agent strategy
        agent = f"agent:{strategies.agent_expert}:{strategies.agent_notation or 'bbox'}"
        msg = (
            f"--blind with --strategies {agent}: the agent strategy shows the model the expert's picture beside the "
            "query, but --blind sends no image, so it would see neither and the run would still be labelled Agent; "
            "leave --blind out, or drop the agent strategy"
        )
        raise ConfigError(msg)
    if strategies.agent_expert:
        from mmad.protocol.agent import check_agent

        check_agent(strategies.agent_expert, strategies.agent_notation or "bbox", config.prompt.shots)
    if config.images.perturb and (strategies.tools or strategies.agent_expert):
        # the tools' crops and the agent's expert map are made from the query file's clean pixels
        which = "--strategies tools" if strategies.tools else f"the {strategies.agent_expert} agent strategy"
        msg = (
            f"--perturb with {which}: its images are made from the clean query file, so the model would see "
            "the unperturbed pixels too; run --perturb without it"
        )
        raise ConfigError(msg)
    knowledge = DomainKnowledge.find(benchmark, config.prompt.knowledge) if strategies.rag else None
    selection = select_questions(benchmark, config.selection, config.prompt_settings())
    if not config.prompt.blind:
        check_protocol(benchmark, shots=config.prompt.shots, similar_templates=config.prompt.similar_templates)
    check_shots(benchmark, selection, config)
    price = price_for(config.model, load_prices(config.execution.prices))
    if config.execution.max_cost is not None and price is None:
        msg = f"--max-cost needs a price for {config.model}; give one in a --prices file"
        raise ConfigError(msg)
    return Preflight(benchmark, selection, strategies, knowledge, price)
