"""reference: the k normal images of the product most like the query.

The question's own templates come first (its similar templates, then its random ones): the
benchmark chose them for this image. When k asks for more, the rest are retrieved from the
category's other normal images (every template of the category's questions, and its normal query
images other than this one), ranked by the cosine similarity of the visual expert's backbone
features pooled over the image. Without the ``[expert]`` extra there is no backbone: the
templates alone are given, and the result says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from mmad.tools.base import (
    Tool,
    ToolArgumentError,
    ToolContext,
    ToolResult,
    fit_side,
    no_unknown,
    open_rgb,
    save_result_image,
)

if TYPE_CHECKING:
    from mmad.data.schema import Benchmark, ImageItem
    from mmad.expert.patchcore import PatchCoreExpert

logger = logging.getLogger(__name__)
MAX_REFERENCES = 4
NO_BACKBONE = "retrieval needs the visual expert's backbone (pip install 'mmad[expert]'); only the question's templates"


@dataclass(frozen=True)
class References:
    """Normal images chosen for a query: benchmark keys, how each was found, and a note for the model."""

    keys: tuple[str, ...]
    how: tuple[str, ...]  # "template" or "retrieved"
    note: str = ""


def category_normals(benchmark: Benchmark, item: ImageItem) -> list[str]:
    """The normal images of an item's category (templates of its questions, normal query images), sorted."""
    pool: set[str] = set()
    for other in benchmark.items:
        if other.dataset != item.dataset or other.category != item.category:
            continue
        pool.update(other.random_templates + other.similar_templates)
        if other.defect_free:
            pool.add(other.key)
    pool.discard(item.key)
    return sorted(pool)


def own_templates(item: ImageItem) -> list[str]:
    """The question's templates, similar ones first, without repeats (never the query itself)."""
    return [key for key in dict.fromkeys(item.similar_templates + item.random_templates) if key != item.key]


def rank_by_similarity(
    detector: PatchCoreExpert, query: Path, candidates: list[tuple[str, Path]]
) -> list[tuple[str, float]]:
    """Candidates by the cosine similarity of their pooled backbone features to the query's, best first."""

    def vector(path: Path) -> np.ndarray:
        stat = path.stat()
        grid = detector.image_features(f"{path}|{stat.st_size}|{stat.st_mtime_ns}", _loader(path))
        pooled: np.ndarray = grid.mean(dim=(1, 2)).cpu().numpy().astype(np.float64)
        return pooled / (np.linalg.norm(pooled) or 1.0)

    target = vector(query)
    scored = [(key, float(vector(path) @ target)) for key, path in candidates]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0]))


def choose_references(
    benchmark: Benchmark, item: ImageItem, k: int, detector: Callable[[], PatchCoreExpert | None]
) -> References:
    """The k references of an item: its templates, then retrieved normal images (see the module docstring)."""
    chosen = own_templates(item)[:k]
    how = ["template"] * len(chosen)
    if len(chosen) >= k:
        return References(tuple(chosen), tuple(how))
    remaining = [key for key in category_normals(benchmark, item) if key not in chosen]
    if not remaining:
        return References(tuple(chosen), tuple(how), f"the category has no other normal image than {len(chosen)}")
    backbone = detector()
    if backbone is None:
        return References(tuple(chosen), tuple(how), NO_BACKBONE)
    candidates = [(key, benchmark.resolve(key)) for key in remaining]
    ranked = rank_by_similarity(backbone, benchmark.resolve(item.key), candidates)
    for key, _similarity in ranked[: k - len(chosen)]:
        chosen.append(key)
        how.append("retrieved")
    return References(tuple(chosen), tuple(how))


class ReferenceTool(Tool):
    """Normal images of the same product, most similar first."""

    name: ClassVar[str] = "reference"
    description: ClassVar[str] = (
        "See normal (defect-free) images of the same product, most similar to the query first: what the product "
        "should look like."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "k": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_REFERENCES,
                "default": 1,
                "description": "how many normal images",
            }
        },
        "additionalProperties": False,
    }

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """k from 1 to MAX_REFERENCES (1 when left out)."""
        no_unknown(args, {"k"})
        k = args.get("k", 1)
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_REFERENCES:
            msg = f"k must be a whole number from 1 to {MAX_REFERENCES}, not {k!r}"
            raise ToolArgumentError(msg)
        return {"k": k}

    def run(self, context: ToolContext, args: dict[str, Any]) -> ToolResult:
        """The images, each at the run's image size."""
        toolbox = context.toolbox
        found = toolbox.references(context.item, args["k"])
        if not found.keys:
            return ToolResult.failure(self.name, f"{context.item.key} has no normal image of its product")
        parts = []
        for key in found.keys:
            image = fit_side(open_rgb(toolbox.benchmark.resolve(key), "normal reference image"), toolbox.max_side)
            parts.append(save_result_image(toolbox.folder, image, self.name, key, str(image.size)))
        listed = "; ".join(f"{key} ({how})" for key, how in zip(found.keys, found.how, strict=True))
        text = f"{len(found.keys)} normal image(s) of the product, most similar first: {listed}."
        if len(found.keys) < args["k"]:
            text += f" Only {len(found.keys)} of the {args['k']} asked for: {found.note}."
        return ToolResult(
            text=text,
            summary=f"reference k={args['k']}: {', '.join(found.keys)}",
            images=tuple(parts),
            data={
                "references": list(found.keys),
                "how": list(found.how),
                **({"note": found.note} if found.note else {}),
            },
        )


def _loader(path: Path) -> Callable[[], Image.Image]:
    return lambda: open_rgb(path, "normal image")
