"""The paper's training-free strategies as prompt extras: domain-knowledge RAG, the expert agent
and chain of thought, as the MMAD paper and the official code (jam-cc/MMAD,
``evaluation/examples/``) apply them; docs/protocol.md describes each.

A strategy string is ``rag``, ``cot``, ``tools`` (the tool-using inspector, `mmad.solvers.tools`),
``agent:<expert>:<notation>`` (expert ``expert`` or ``gt``;
notation ``bbox``, ``contour``, ``highlight``, ``heatmap`` or ``mask``), several joined by ``+`` or
given one by one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmad.data.schema import Benchmark, ImageItem
from mmad.errors import ConfigError

NOTATIONS = ("bbox", "contour", "highlight", "heatmap", "mask")
AGENT_EXPERTS = ("expert", "gt")
# The knowledge file names DS-MVTec "MVTec" (the official scripts rename it for the lookup).
KNOWLEDGE_DATASET = {"DS-MVTec": "MVTec"}


@dataclass(frozen=True)
class StrategySet:
    """Which strategies a run uses."""

    rag: bool = False
    cot: bool = False
    agent_expert: str | None = None
    agent_notation: str | None = None
    tools: bool = False

    @property
    def names(self) -> list[str]:
        """The strategy strings, for run.json and file names."""
        names = []
        if self.rag:
            names.append("rag")
        if self.agent_expert:
            names.append(f"agent:{self.agent_expert}:{self.agent_notation}")
        if self.cot:
            names.append("cot")
        if self.tools:
            names.append("tools")
        return names


def parse_strategies(values: list[str]) -> StrategySet:
    """Read strategy strings such as ``rag+cot`` or ``agent:expert:bbox``."""
    rag = cot = tools = False
    expert = notation = None
    for value in values:
        for part in filter(None, (p.strip() for p in value.replace(",", "+").split("+"))):
            if part == "rag":
                rag = True
            elif part == "cot":
                cot = True
            elif part == "tools":
                tools = True
            elif part.startswith("agent"):
                pieces = part.split(":")
                expert = pieces[1] if len(pieces) > 1 else "expert"
                notation = pieces[2] if len(pieces) > 2 else "bbox"
                if expert not in AGENT_EXPERTS or notation not in NOTATIONS:
                    msg = (
                        f"strategy {part!r}: write agent:<expert>:<notation> with expert one of "
                        f"{AGENT_EXPERTS} and notation one of {NOTATIONS}"
                    )
                    raise ConfigError(msg)
                if notation == "mask" and expert != "gt":
                    msg = "the mask notation exists for the ground-truth oracle only: use agent:gt:mask"
                    raise ConfigError(msg)
                if notation == "heatmap" and expert == "gt":
                    msg = (
                        "agent:gt:heatmap does not exist: the official call_ground_truth (SoftPatch/call.py) "
                        "has no heatmap; use agent:gt:mask for the viridis mask"
                    )
                    raise ConfigError(msg)
            else:
                msg = f"unknown strategy {part!r}; choose rag, cot, tools, agent:expert:bbox, agent:gt:contour, ..."
                raise ConfigError(msg)
    if tools and cot:
        msg = "the tools strategy does not combine with cot: its conversation is its own chain of thought"
        raise ConfigError(msg)
    return StrategySet(rag=rag, cot=cot, agent_expert=expert, agent_notation=notation, tools=tools)


class DomainKnowledge:
    """The official domain-knowledge file: ``{dataset: {category: {defect or good: text}}}``."""

    def __init__(self, table: dict[str, dict[str, dict[str, str]]], source: str = "") -> None:
        self.table = table
        self.source = source

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DomainKnowledge:
        """Read a knowledge file, checking its shape."""
        source = Path(path)
        try:
            raw: Any = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            msg = f"cannot read the domain-knowledge file {source}: {exc}"
            raise ConfigError(msg) from exc
        ok = isinstance(raw, dict) and all(
            isinstance(cats, dict)
            and all(
                isinstance(entries, dict) and all(isinstance(t, str) for t in entries.values())
                for entries in cats.values()
            )
            for cats in raw.values()
        )
        if not ok:
            msg = f"{source}: a domain-knowledge file maps dataset -> category -> {{defect or 'good': text}}"
            raise ConfigError(msg)
        return cls(raw, str(source))

    @classmethod
    def find(cls, benchmark: Benchmark, path: str | None = None) -> DomainKnowledge:
        """The file the user named, or ``domain_knowledge.json`` next to the benchmark json."""
        if path:
            return cls.load(path)
        folder = benchmark.source.parent if benchmark.source else benchmark.root
        for candidate in (folder / "domain_knowledge.json", benchmark.root / "domain_knowledge.json"):
            if candidate.is_file():
                return cls.load(candidate)
        msg = f"the rag strategy needs domain_knowledge.json: none in {folder}; pass --knowledge FILE"
        raise ConfigError(msg)

    def text_for(self, dataset: str, category: str) -> str | None:
        """The official concatenation for a category: every entry, in file order, joined by newlines."""
        entries = self.table.get(KNOWLEDGE_DATASET.get(dataset, dataset), {}).get(category)
        return "\n".join(entries.values()) if entries else None

    def for_item(self, item: ImageItem) -> str | None:
        """The knowledge text of an image's category."""
        return self.text_for(item.dataset, item.category)
