"""zoom and compare: a box of the query, alone or beside the same box of a normal reference."""

from __future__ import annotations

from typing import Any, ClassVar

from PIL import Image

from mmad.tools.base import (
    BOX_SCHEMA,
    Tool,
    ToolContext,
    ToolResult,
    box_text,
    crop_box,
    fit_side,
    open_rgb,
    save_result_image,
    validate_box,
)

GAP = 8
"""Pixels of white between the two halves of a comparison."""


class BoxTool(Tool):
    """A tool whose one argument is a box of the image."""

    parameters: ClassVar[dict[str, Any]] = BOX_SCHEMA

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """A box, clamped."""
        return validate_box(args)


class ZoomTool(BoxTool):
    """The query cropped to a box, scaled up to the run's image size."""

    name: ClassVar[str] = "zoom"
    description: ClassVar[str] = (
        "Look closer: the query image cropped to a box (fractions of the image, 0-1, origin top left), "
        "enlarged to full size."
    )

    def run(self, context: ToolContext, args: dict[str, Any]) -> ToolResult:
        """Crop and enlarge."""
        toolbox = context.toolbox
        crop = fit_side(crop_box(open_rgb(context.query_path, "query image"), args), toolbox.max_side)
        where = box_text(args)
        part = save_result_image(toolbox.folder, crop, self.name, context.item.key, where, str(crop.size))
        return ToolResult(
            text=f"The query image cropped to {where}, enlarged to {crop.width}x{crop.height} px.",
            summary=f"zoom {where} -> {crop.width}x{crop.height}",
            images=(part,),
            data={"box": [args[k] for k in ("x0", "y0", "x1", "y1")]},
        )


class CompareTool(BoxTool):
    """The same box from the query (left) and the nearest normal reference (right)."""

    name: ClassVar[str] = "compare"
    description: ClassVar[str] = (
        "Compare a box of the query image (left) with the same box of the most similar normal image of the "
        "product (right), side by side; the box is in fractions of each image, 0-1, origin top left."
    )

    def run(self, context: ToolContext, args: dict[str, Any]) -> ToolResult:
        """Crop both, put them side by side at the run's image size."""
        toolbox = context.toolbox
        references = toolbox.references(context.item, 1)
        if not references.keys:
            return ToolResult.failure(self.name, f"{context.item.key} has no normal image to compare with")
        reference_key = references.keys[0]
        query = crop_box(open_rgb(context.query_path, "query image"), args)
        normal = crop_box(open_rgb(toolbox.benchmark.resolve(reference_key), "normal reference image"), args)
        # Both halves at the query crop's height, so equal parts line up.
        normal = normal.resize(
            (max(1, round(normal.width * query.height / normal.height)), query.height), Image.Resampling.BICUBIC
        )
        pair = Image.new("RGB", (query.width + GAP + normal.width, query.height), (255, 255, 255))
        pair.paste(query, (0, 0))
        pair.paste(normal, (query.width + GAP, 0))
        pair = fit_side(pair, toolbox.max_side)
        where = box_text(args)
        part = save_result_image(
            toolbox.folder, pair, self.name, context.item.key, reference_key, where, str(pair.size)
        )
        return ToolResult(
            text=(
                f"Left: the query image cropped to {where}. Right: the same box of a normal image of the product "
                f"({reference_key})."
            ),
            summary=f"compare {where} with {reference_key}",
            images=(part,),
            data={"box": [args[k] for k in ("x0", "y0", "x1", "y1")], "reference": reference_key},
        )
