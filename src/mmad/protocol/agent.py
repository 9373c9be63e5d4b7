"""The agent strategy: an expert's output drawn on an extra image placed after the query (§G.2).

The drawing itself is `mmad.expert.render`. The oracle (``gt``) uses the ground-truth mask; for a
normal image it returns the plain image, as the official code does, which leaks the label: it is
an upper bound, not a method.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from mmad.data.schema import Benchmark, ImageItem
from mmad.expert.render import MAX_SIDE, render
from mmad.protocol.messages import ImagePart
from mmad.protocol.official_text import AGENT_TEXTS


class AgentRenderer:
    """Makes the extra image of each query: the expert's map or the ground-truth mask, drawn."""

    def __init__(self, expert: str, notation: str, folder: Path, shots: int = 1) -> None:
        self.expert = expert
        self.notation = notation
        self.folder = Path(folder)
        self.shots = max(1, shots)
        self._detector: object | None = None
        self._lock = threading.Lock()

    def _map(self, benchmark: Benchmark, item: ImageItem, image: Image.Image) -> np.ndarray | None:
        if self.expert == "gt":
            mask_file = benchmark.mask_file(item)
            if mask_file is None:
                return None
            files = sorted(mask_file.glob("*.png")) if mask_file.is_dir() else [mask_file]
            union = np.zeros((image.height, image.width), dtype=np.float32)
            for file in files:
                with Image.open(file) as mask:
                    union = np.maximum(union, np.asarray(mask.convert("L").resize(image.size)) > 127)
            return union
        from mmad.expert.patchcore import PatchCoreExpert

        with self._lock:
            if self._detector is None:
                self._detector = PatchCoreExpert()
        detector = self._detector
        assert isinstance(detector, PatchCoreExpert)
        templates = item.templates(self.shots) or item.templates(1, similar=True)
        normals = []
        for template in templates:
            with Image.open(benchmark.resolve(template)) as opened:
                normals.append(opened.convert("RGB"))
        if not normals:
            return None
        return detector.predict(image, normals, keys=[str(benchmark.resolve(t)) for t in templates]).anomaly_map

    def render(self, benchmark: Benchmark, item: ImageItem) -> tuple[ImagePart | None, str]:
        """The extra image part and its text (the official InternVL wording)."""
        with Image.open(benchmark.resolve(item.key)) as opened:
            image = opened.convert("RGB")
        anomaly_map = self._map(benchmark, item, image)
        oracle = self.expert == "gt"
        if anomaly_map is None:  # the oracle on a normal image: the plain image, as upstream
            drawn = image.copy()
            drawn.thumbnail((MAX_SIDE, MAX_SIDE))
        else:
            drawn = render(image, anomaly_map, self.notation, oracle=oracle)
        name = hashlib.sha1(f"{self.expert}|{self.notation}|{item.key}".encode()).hexdigest()[:16]
        path = self.folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        drawn.save(path)
        return ImagePart(path=str(path), role="expert"), AGENT_TEXTS[self.notation]
