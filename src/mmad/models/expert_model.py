"""The visual expert as an mmad model: it answers what it can see and abstains on the rest.

- Anomaly Discrimination: "Yes" when the image score exceeds the category's threshold.
  Calibration: for each category, the expert is fitted on one normal template and scores other
  normal templates (leave-one-out, up to 6 pairs); the threshold is 1.3 × the highest of those
  normal scores. Without a benchmark to calibrate on (over HTTP), a request with two or more
  templates calibrates on its own templates the same way; otherwise the median of the known
  thresholds is used.
- Defect Localization: the option whose region holds the most anomaly-map mass per cell, on a
  3×3 grid over the image (the outer ring for "around the edges").
- Every other subtask: abstention, recorded as such.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
from PIL import Image

from mmad.data.schema import Benchmark
from mmad.errors import ConfigError
from mmad.expert.patchcore import ExpertResult, PatchCoreExpert, image_key
from mmad.models.base import Completion, Model, Request
from mmad.protocol.images import load_image
from mmad.protocol.messages import ImagePart

logger = logging.getLogger(__name__)
MARGIN = 1.3
DEFAULT_THRESHOLD = 20.0

_BLOCK = re.compile(r"Question(?:\s*\d+)?:\s*(?P<stem>.*?)\s*\n(?P<options>(?:[A-E]\. .*\n?)+)", re.MULTILINE)
_OPTION = re.compile(r"^([A-E])\. (.*)$", re.MULTILINE)
REGION_WORDS = {
    "top left": [(0, 0)],
    "upper left": [(0, 0)],
    "top right": [(0, 2)],
    "upper right": [(0, 2)],
    "bottom left": [(2, 0)],
    "lower left": [(2, 0)],
    "bottom right": [(2, 2)],
    "lower right": [(2, 2)],
    "top": [(0, 0), (0, 1), (0, 2)],
    "upper": [(0, 0), (0, 1), (0, 2)],
    "bottom": [(2, 0), (2, 1), (2, 2)],
    "lower": [(2, 0), (2, 1), (2, 2)],
    "left": [(0, 0), (1, 0), (2, 0)],
    "right": [(0, 2), (1, 2), (2, 2)],
    "center": [(1, 1)],
    "centre": [(1, 1)],
    "middle": [(1, 1)],
    "edge": [(i, j) for i in range(3) for j in range(3) if (i, j) != (1, 1)],
}


def option_cells(text: str) -> set[tuple[int, int]]:
    """The grid cells an option's words name (longest phrases first, so 'top left' is not 'top' + 'left')."""
    lowered = text.lower()
    cells: set[tuple[int, int]] = set()
    for phrase in sorted(REGION_WORDS, key=len, reverse=True):
        if re.search(rf"\b{phrase}s?\b", lowered):
            cells.update(REGION_WORDS[phrase])
            lowered = re.sub(rf"\b{phrase}s?\b", " ", lowered)
    return cells


def locate_option(anomaly_map: np.ndarray, options: dict[str, str]) -> str | None:
    """The option whose region holds the most anomaly mass per cell."""
    height, width = anomaly_map.shape
    peak = anomaly_map.max()
    weights = np.clip(anomaly_map - 0.5 * peak, 0, None) if peak > 0 else anomaly_map
    rows = np.array_split(np.arange(height), 3)
    cols = np.array_split(np.arange(width), 3)
    mass = np.array([[weights[r[0] : r[-1] + 1, c[0] : c[-1] + 1].sum() for c in cols] for r in rows])
    mass = mass / (mass.sum() or 1.0)
    best, best_score = None, -1.0
    for letter, text in options.items():
        cells = option_cells(text)
        if not cells:
            continue
        score = sum(mass[c] for c in cells) / len(cells)
        if score > best_score:
            best, best_score = letter, score
    return best


def _category_of(path: str | None, root: Path | None) -> str | None:
    if path is None or root is None:
        return None
    try:
        parts = Path(path).resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None
    return "/".join(parts[:2]) if len(parts) > 2 else None


class ExpertModel(Model):
    """PatchCore as an mmad backend."""

    def __init__(self, expert: PatchCoreExpert | None = None, *, fit_on: str = "templates") -> None:
        if fit_on not in {"templates", "category"}:
            msg = f"the expert fits on 'templates' (each query's) or 'category' (its normal images), not {fit_on!r}"
            raise ConfigError(msg)
        self.name = f"expert:{fit_on}"
        self.endpoint = "local-expert"
        self.expert = expert or PatchCoreExpert()
        self.fit_on = fit_on
        self.thresholds: dict[str, float] = {}
        self.pools: dict[str, list[str]] = {}
        self._request_thresholds: dict[tuple[str, ...], float] = {}
        self.root: Path | None = None

    @classmethod
    def from_name(cls, model_id: str = "", device: str | None = None) -> ExpertModel:
        """``expert`` (fit on each query's templates, as the paper's agent) or ``expert:category``
        (fit on the category's normal images, gathered from the benchmark's templates)."""
        return cls(PatchCoreExpert(device=device), fit_on="category" if model_id == "category" else "templates")

    def describe(self) -> dict[str, Any]:
        """Backbone, layers and calibration."""
        return {
            "name": self.name,
            "backbone": "efficientnet-lite0 (ImageNet)",
            "layers": [4, 10],
            "image_size": self.expert.image_size,
            "fit_on": self.fit_on,
            "calibration": f"leave-one-out on normal templates x{MARGIN}",
        }

    def prepare(self, benchmark: Benchmark) -> None:
        """Calibrate a threshold per category from its normal template images."""
        self.root = benchmark.root
        pools: dict[str, list[str]] = {}
        for item in benchmark.items:
            pool = pools.setdefault(f"{item.dataset}/{item.category}", [])
            for template in item.random_templates + item.similar_templates:
                if template not in pool and len(pool) < 7:
                    pool.append(template)
        for category, pool in pools.items():
            self.pools[category] = [str(benchmark.resolve(p)) for p in pool]
            images = [load_image(ImagePart(path=path)) for path in self.pools[category]]
            if len(images) >= 2:
                self.thresholds[category] = self._calibrate(images, self.pools[category])
        logger.info("expert thresholds: %s", {k: round(v, 2) for k, v in self.thresholds.items()})

    def _calibrate(self, normals: list[Image.Image], keys: list[str] | None = None) -> float:
        """MARGIN x the highest score of a normal image against the bank the expert would use:
        one other template (templates mode) or all the other normal images (category mode)."""
        names: list[str | None] = list(keys) if keys else [image_key(im) for im in normals]
        scores = []
        for i in range(1, min(len(normals), 7)):
            bank = [j for j in range(len(normals)) if j != i] if self.fit_on == "category" else [i - 1]
            result = self.expert.predict(normals[i], [normals[j] for j in bank], keys=[names[j] for j in bank])
            scores.append(result.pred_score)
        return MARGIN * max(scores)

    def threshold_for(self, query: ImagePart, templates: list[Image.Image]) -> float:
        """The calibrated threshold of the query's category, or one calibrated on the request itself."""
        category = _category_of(query.path, self.root)
        if category in self.thresholds:
            return self.thresholds[category]
        if len(templates) >= 2:
            # Calibrating costs several fits; requests that share their templates share the result.
            key = tuple(image_key(t) for t in templates)
            if key not in self._request_thresholds:
                self._request_thresholds[key] = self._calibrate(templates)
            return self._request_thresholds[key]
        return median(self.thresholds.values()) if self.thresholds else DEFAULT_THRESHOLD

    def inspect(self, query: ImagePart, templates: list[ImagePart]) -> tuple[ExpertResult, float]:
        """The expert's result for a query and its threshold."""
        category = _category_of(query.path, self.root)
        if self.fit_on == "category" and category in self.pools:
            templates = [ImagePart(path=path, role="template") for path in self.pools[category]]
        normals = [load_image(t) for t in templates]
        keys: list[str | None] = [t.path or image_key(im) for t, im in zip(templates, normals, strict=True)]
        result = self.expert.predict(load_image(query), normals, keys=keys)
        return result, self.threshold_for(query, normals)

    async def generate(self, request: Request) -> Completion:
        """Answer Anomaly Discrimination and Defect Localization; abstain on the rest."""
        first = next((m for m in request.messages if m.role == "user"), None)
        images = [p for p in first.images if p.role != "expert"] if first else []
        last = next((m for m in reversed(request.messages) if m.role == "user"), None)
        blocks = [
            (m.group("stem"), dict(_OPTION.findall(m.group("options"))))
            for m in _BLOCK.finditer(last.text if last else "")
        ]
        if len(images) < 2 or not blocks:
            return Completion(text="", abstained=True, extra={"abstain_reason": "needs a template and a query"})
        query, templates = images[-1], images[:-1]
        result, threshold = await asyncio.to_thread(self.inspect, query, templates)
        letters: list[str | None] = []
        for stem, options in blocks:
            lowered = stem.lower()
            if "is there any defect" in lowered or "any anomal" in lowered:
                wanted = "yes" if result.pred_score > threshold else "no"
                letters.append(next((k for k, v in options.items() if v.lower().startswith(wanted)), None))
            elif "where is the defect" in lowered or "location" in lowered:
                letters.append(locate_option(result.anomaly_map, options))
            else:
                letters.append(None)
        scores = {"pred_score": result.pred_score, "threshold": threshold}
        if all(letter is None for letter in letters):
            return Completion(text="", abstained=True, scores=scores)
        if len(letters) == 1:
            text = f"Answer: {letters[0]}"
        else:
            text = "\n".join(f"{i}. Answer: {letter or '-'}." for i, letter in enumerate(letters, start=1))
        return Completion(text=text, prompt_tokens=0, completion_tokens=0, scores=scores)
