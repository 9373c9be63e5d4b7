"""Which questions a run asks, and the prompts that ask them."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from mmad.data.clean import DropCounts, benchmark_split, filter_pairs, partly_matched
from mmad.data.schema import Benchmark, ImageItem, Subtask
from mmad.errors import ConfigError, DataError, MMADError
from mmad.protocol.messages import Prompt
from mmad.protocol.prompts import Extras, PromptSettings, build_prompts, posed_questions
from mmad.protocol.strategies import DomainKnowledge, StrategySet
from mmad.run.config import SelectionConfig
from mmad.run.engine import PlanFailure

logger = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass(frozen=True)
class SelectedItem:
    """An image with all its questions, and the ids of those the run asks."""

    item: ImageItem
    asked: frozenset[str]
    keys: tuple[Key, ...] = ()
    """The (question, posing) keys of the asked questions, in the order they are asked."""

    @property
    def asked_item(self) -> ImageItem:
        """The image holding only the asked questions."""
        return self.item.model_copy(update={"questions": [q for q in self.item.questions if q.id in self.asked]})


@dataclass(frozen=True)
class Selection:
    """The selected images in file order, and every (question, posing) key in the order asked."""

    items: list[SelectedItem]
    keys: list[Key]
    left_out: DropCounts = field(default_factory=DropCounts)
    """What --errata drop and --exclude left out of the other filters' choice, per reason."""

    @property
    def n_questions(self) -> int:
        """Distinct questions selected."""
        return sum(len(s.asked) for s in self.items)


# The official scripts' --debug: random.seed(1), then random.sample(list(chat_ad.keys()), 1600)
# (Transformers/internvl_query.py; no other released script has --debug).
DEBUG_SEED = 1
DEBUG_IMAGES = 1600


def official_debug_keys(benchmark: Benchmark) -> list[str]:
    """The image keys the official scripts ask under ``--debug``, in the order they ask them (the sample's)."""
    keys = [item.key for item in benchmark.items]
    if len(keys) < DEBUG_IMAGES:
        msg = (
            f"--subset official-debug samples {DEBUG_IMAGES:,} images as the official scripts' --debug does; "
            f"this benchmark has {len(keys):,} (the scripts would stop with ValueError); use --limit instead"
        )
        raise ConfigError(msg)
    return random.Random(DEBUG_SEED).sample(keys, DEBUG_IMAGES)


def select_questions(benchmark: Benchmark, config: SelectionConfig, settings: PromptSettings) -> Selection:
    """The questions a run asks: a named subset, filters, then a seeded sample, in file order (the
    subset's own order for official-debug: the answers file, and so summary.py's remove-while-iterating
    skips, follow the order the script asked in)."""
    wanted_subtasks = {Subtask.parse(s) for s in config.subtasks}
    datasets = set(config.datasets)
    categories = set(config.categories)
    known = {item.dataset for item in benchmark.items}
    unknown = datasets - known
    if unknown:
        msg = f"--datasets {', '.join(sorted(unknown))} is not in this benchmark; it has {', '.join(sorted(known))}"
        raise ConfigError(msg)
    if categories:
        known_categories = {item.category for item in benchmark.items} | {
            f"{item.dataset}/{item.category}" for item in benchmark.items
        }
        missing = categories - known_categories
        if missing:
            msg = (
                f"--categories {', '.join(sorted(missing))} is not in this benchmark; "
                f"it has {', '.join(sorted({item.category for item in benchmark.items}))}"
            )
            raise ConfigError(msg)
    candidates = benchmark.items
    if config.subset == "official-debug":
        by_key = {item.key: item for item in benchmark.items}
        candidates = [by_key[key] for key in official_debug_keys(benchmark)]
    split = benchmark_split(config.errata, config.exclude, benchmark)
    for line in partly_matched(split, (item.key for item in benchmark.items), "this benchmark"):
        logger.warning(line)
    left_out = DropCounts()
    chosen: list[tuple[ImageItem, list[str]]] = []
    for item in candidates:
        if datasets and item.dataset not in datasets:
            continue
        if categories and item.category not in categories and f"{item.dataset}/{item.category}" not in categories:
            continue
        questions = [q for q in item.questions if not wanted_subtasks or q.subtask in wanted_subtasks]
        if split.active:
            kept, counts = filter_pairs(split, [(q.image, q.type) for q in questions])
            left_out.merge(counts)
            questions = [q for q, keep in zip(questions, kept, strict=True) if keep]
        ids = [q.id for q in questions]
        if ids:
            chosen.append((item, ids))
    if config.limit is not None:
        pool = [qid for _, ids in chosen for qid in ids]
        keep = set(random.Random(config.seed).sample(pool, min(config.limit, len(pool))))
        chosen = [(item, [q for q in ids if q in keep]) for item, ids in chosen]
        chosen = [(item, ids) for item, ids in chosen if ids]
    if not chosen:
        msg = "the selection holds no questions: loosen --datasets, --categories, --subtasks, --exclude or --limit"
        raise ConfigError(msg)
    items = []
    for item, ids in chosen:
        asked = frozenset(ids)
        posed = posed_questions(
            item.model_copy(update={"questions": [q for q in item.questions if q.id in asked]}), settings
        )
        items.append(SelectedItem(item, asked, tuple(p.key for group in posed for p in group)))
    keys = [key for selected in items for key in selected.keys]
    return Selection(items, keys, left_out)


@dataclass
class Planner:
    """Turns selected items into prompts, strategies applied."""

    benchmark: Benchmark
    settings: PromptSettings
    strategies: StrategySet
    knowledge: DomainKnowledge | None = None
    agent: object | None = None  # an AgentRenderer (mmad.protocol.agent) when an agent strategy runs

    def extras(self, item: ImageItem) -> Extras:
        """The strategies' additions for one image (the agent image is named here, drawn by its solver)."""
        knowledge = self.knowledge.for_item(item) if self.knowledge is not None else None
        expert_image = None
        expert_text = ""
        if self.agent is not None:
            expert_image, expert_text = self.agent.part_for(item)  # type: ignore[attr-defined]
        return Extras(
            knowledge=knowledge,
            expert_image=expert_image,
            expert_text=expert_text,
            chain_of_thought=self.strategies.cot,
        )

    def prompts_for(self, selected: SelectedItem) -> list[Prompt]:
        """The prompts of one image's asked questions; they see all its questions (the cumulative context)."""
        item = selected.item
        return build_prompts(self.benchmark, item, self.settings, self.extras(item), asked=selected.asked)

    def _template_shortfall(self, item: ImageItem) -> str:
        shots = self.settings.shots
        if shots <= 0 or len(item.templates(shots, similar=self.settings.similar_templates)) >= shots:
            return ""
        pool = "similar templates" if self.settings.similar_templates else "random templates"
        listed = len(item.templates(shots, similar=self.settings.similar_templates))
        return f"{shots}-shot needs {shots} {pool}; the record of {item.key} lists {listed}"

    def prompts(self, items: list[SelectedItem]) -> Iterator[Prompt]:
        """Every prompt, image by image (lazily: agent images are rendered as they are needed)."""
        for selected in items:
            yield from self.prompts_for(selected)

    def _work_for(self, selected: SelectedItem) -> list[Prompt] | PlanFailure:
        # A missing image file is found when the request is built (the engine records it as an
        # input failure); here only what the record itself lacks is checked, without touching disk.
        try:
            if not self.settings.blind:
                short = self._template_shortfall(selected.item)
                if short:
                    raise DataError(short)
            return self.prompts_for(selected)
        except (MMADError, OSError, ValueError) as exc:
            logger.warning("cannot ask the questions of %s: %s", selected.item.key, exc)
            posed = tuple(p for group in posed_questions(selected.asked_item, self.settings) for p in group)
            return PlanFailure(selected.item.key, posed, exc)

    async def work(self, items: list[SelectedItem]) -> AsyncIterator[Prompt | PlanFailure]:
        """Every prompt, lazily; an image whose prompts cannot be built becomes one PlanFailure.

        Rendering an agent image runs the expert (tens of milliseconds): it happens in a worker
        thread so the event loop keeps sending requests meanwhile.
        """
        for selected in items:
            if self.agent is not None:
                built = await asyncio.to_thread(self._work_for, selected)
            else:
                built = self._work_for(selected)
            if isinstance(built, PlanFailure):
                yield built
            else:
                for prompt in built:
                    yield prompt
