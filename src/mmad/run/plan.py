"""Which questions a run asks, and the prompts that ask them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from mmad.data.schema import Benchmark, ImageItem, Subtask
from mmad.errors import ConfigError
from mmad.protocol.prompts import Extras, PromptSettings, build_prompts
from mmad.protocol.strategies import DomainKnowledge, StrategySet
from mmad.run.config import RunConfig


def select_items(benchmark: Benchmark, config: RunConfig) -> list[ImageItem]:
    """The image items to ask, each holding only the selected questions, in file order."""
    wanted_subtasks = {Subtask.parse(s) for s in config.subtasks}
    datasets = set(config.datasets)
    categories = set(config.categories)
    known = {item.dataset for item in benchmark.items}
    unknown = datasets - known
    if unknown:
        msg = f"--dataset {sorted(unknown)} is not in this benchmark; it has {sorted(known)}"
        raise ConfigError(msg)
    chosen: list[ImageItem] = []
    for item in benchmark.items:
        if datasets and item.dataset not in datasets:
            continue
        if categories and item.category not in categories and f"{item.dataset}/{item.category}" not in categories:
            continue
        questions = [q for q in item.questions if not wanted_subtasks or q.subtask in wanted_subtasks]
        if questions:
            chosen.append(item.model_copy(update={"questions": questions}))
    if config.limit is not None:
        ids = [q.id for item in chosen for q in item.questions]
        keep = set(random.Random(config.seed).sample(ids, min(config.limit, len(ids))))
        chosen = [
            item.model_copy(update={"questions": [q for q in item.questions if q.id in keep]})
            for item in chosen
            if any(q.id in keep for q in item.questions)
        ]
    if not chosen:
        msg = "the selection holds no questions: loosen --dataset, --category, --subtask or --limit"
        raise ConfigError(msg)
    return chosen


@dataclass
class Planner:
    """Turns selected items into prompts, strategies applied."""

    benchmark: Benchmark
    settings: PromptSettings
    strategies: StrategySet
    knowledge: DomainKnowledge | None = None
    agent: object | None = None  # an AgentRenderer (mmad.protocol.agent) when an agent strategy runs

    def extras(self, item: ImageItem) -> Extras:
        """The strategies' additions for one image."""
        knowledge = self.knowledge.for_item(item) if self.knowledge is not None else None
        expert_image = None
        expert_text = ""
        if self.agent is not None:
            expert_image, expert_text = self.agent.render(self.benchmark, item)  # type: ignore[attr-defined]
        return Extras(
            knowledge=knowledge,
            expert_image=expert_image,
            expert_text=expert_text,
            chain_of_thought=self.strategies.cot,
        )

    def prompts(self, items: list[ImageItem]) -> Iterator:  # type: ignore[type-arg]
        """Every prompt, image by image (lazily: agent images are rendered as they are needed).

        The prompts see all of an image's questions (the cumulative context); the selected ones are asked.
        """
        for item in items:
            whole = self.benchmark.item(item.key)
            asked = {q.id for q in item.questions}
            yield from build_prompts(self.benchmark, whole, self.settings, self.extras(item), asked=asked)
