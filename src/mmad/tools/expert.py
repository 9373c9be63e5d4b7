"""expert and knowledge: the visual expert's reading of the image, and the category's domain knowledge.

The expert is mmad's PatchCore-style detector (`mmad.models.expert_model`), fitted on the
question's templates as the agent strategy fits it, calibrated per category on the benchmark.
Its map is drawn in the run's agent notation (`mmad.expert.render`); the result also gives the
image score beside the category's threshold and the one box that holds the strongest region.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mmad.expert.render import binarize, boxes_of, merge_boxes, regions, render_expert
from mmad.protocol.messages import ImagePart
from mmad.tools.base import Tool, ToolContext, ToolResult, no_unknown, open_rgb, save_result_image

if TYPE_CHECKING:
    from mmad.tools.toolbox import Toolbox

NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def suggested_box(anomaly_map: np.ndarray) -> list[float] | None:
    """The strongest region of a map as one relative box [x0, y0, x1, y1], or None when none stands out.

    The regions are those the agent rendering draws (above 2/3 of the peak, small ones dropped),
    merged into one box.
    """
    peak = float(anomaly_map.max())
    if peak <= 0:
        return None
    parts = regions(binarize(anomaly_map / peak))
    if not parts:
        return None
    x0, y0, x1, y1 = merge_boxes(boxes_of(parts), 1)[0]
    height, width = anomaly_map.shape
    return [round(x0 / width, 4), round(y0 / height, 4), round((x1 + 1) / width, 4), round((y1 + 1) / height, 4)]


class NoArgumentsTool(Tool):
    """A tool called without arguments."""

    parameters: ClassVar[dict[str, Any]] = NO_ARGUMENTS

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """No arguments."""
        no_unknown(args, set())
        return {}


class ExpertTool(NoArgumentsTool):
    """The visual expert's anomaly map, score and suggested box."""

    name: ClassVar[str] = "expert"
    description: ClassVar[str] = (
        "Ask a visual anomaly detector (fitted on normal images of the product) for its anomaly map drawn on "
        "the query, its anomaly score against the product's threshold, and the box it suggests."
    )

    def available(self, toolbox: Toolbox) -> str | None:
        """Only with the [expert] extra."""
        return toolbox.expert_problem()

    def run(self, context: ToolContext, args: dict[str, Any]) -> ToolResult:
        """Inspect, draw, read the box."""
        toolbox = context.toolbox
        item = context.item
        templates = item.templates(toolbox.shots, similar=toolbox.similar) or item.templates(1, similar=True)
        if not templates:
            return ToolResult.failure(self.name, f"{item.key} has no template to fit the expert on")
        query = ImagePart(path=str(context.query_path), role="query")
        parts = [ImagePart(path=str(toolbox.benchmark.resolve(t)), role="template") for t in templates]
        result, threshold = toolbox.expert(item).inspect_shared(query, parts)
        drawn = render_expert(open_rgb(context.query_path, "query image"), result.anomaly_map, toolbox.notation)
        identity = (self.name, item.key, toolbox.notation, *templates, f"{result.pred_score:.6g}")
        part = save_result_image(toolbox.folder, drawn, *identity)
        box = suggested_box(result.anomaly_map)
        above = result.pred_score > threshold
        verdict = "above the threshold: likely defective" if above else "at or below the threshold: likely normal"
        where = f"suggested box {box} (x0, y0, x1, y1, fractions of the image)" if box else "no region stands out"
        facts = {"score": round(result.pred_score, 4), "threshold": round(threshold, 4), "box": box}
        return ToolResult(
            text=(
                f"The detector's anomaly map, drawn as {toolbox.notation}. Anomaly score {result.pred_score:.3f}, "
                f"threshold {threshold:.3f} ({verdict}); {where}. As JSON: " + json.dumps(facts)
            ),
            summary=f"expert: score {result.pred_score:.3f} vs {threshold:.3f}, box {box}",
            images=(part,),
            data=facts,
        )


class KnowledgeTool(NoArgumentsTool):
    """The category's domain-knowledge text (the rag strategy's file)."""

    name: ClassVar[str] = "knowledge"
    description: ClassVar[str] = (
        "Read what is known about this product: its normal appearance and the defects it may have."
    )

    def available(self, toolbox: Toolbox) -> str | None:
        """Only with a domain-knowledge file."""
        return toolbox.knowledge_problem()

    def run(self, context: ToolContext, args: dict[str, Any]) -> ToolResult:
        """The text, or a plain 'none' for a category the file lacks."""
        knowledge = context.toolbox.knowledge()
        text = knowledge.for_item(context.item) if knowledge is not None else None
        category = f"{context.item.dataset}/{context.item.category}"
        if not text:
            return ToolResult(
                text=f"No domain knowledge is recorded for {category}.", summary=f"knowledge: none for {category}"
            )
        return ToolResult(text=text, summary=f"knowledge: {category}, {len(text)} characters")
