"""Drawing an anomaly map or a mask on an image: the agent strategy's extra image (§G.2).

Rendering follows the official code: the anomaly map is normalised to a maximum of 1 and the
image resized so its longer side is at most 512 px. For ``bbox`` and ``contour`` the map is
thresholded at 2/3 of its maximum, or at its median when more than half the pixels pass; regions
of at most 0.1% of the image are dropped; red (255, 0, 0), 2 px wide. Boxes nearest to each other
(by centre distance) are merged until at most 2 remain (3 for the ground-truth oracle).
``highlight`` blends the viridis map over the image (alpha 0.7; 0.6/0.4 for the oracle),
``heatmap`` is the viridis map alone and ``mask`` the viridis of the binary mask (oracle only).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

MAX_SIDE = 512
RED = (255, 0, 0)
Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def binarize(anomaly_map: np.ndarray) -> np.ndarray:
    """Threshold at 2/3 of the maximum; at the median when more than half the pixels would pass."""
    peak = float(anomaly_map.max())
    if peak <= 0:
        return np.zeros(anomaly_map.shape, dtype=bool)
    normalised = anomaly_map / peak
    binary = normalised >= 2 / 3
    if binary.mean() > 0.5:
        binary = normalised > np.median(normalised)
    return binary


def regions(binary: np.ndarray, min_area_fraction: float = 0.001) -> list[np.ndarray]:
    """Connected regions larger than the area filter."""
    labels, count = ndimage.label(binary)
    minimum = min_area_fraction * binary.size
    return [labels == i for i in range(1, count + 1) if (labels == i).sum() > minimum]


def boxes_of(parts: list[np.ndarray]) -> list[Box]:
    """Bounding boxes of regions."""
    out = []
    for part in parts:
        ys, xs = np.nonzero(part)
        out.append((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())))
    return out


def merge_boxes(boxes: list[Box], limit: int) -> list[Box]:
    """Merge the two boxes with the nearest centres until at most `limit` remain."""
    merged = list(boxes)
    while len(merged) > limit:
        best = None
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                distance = ((a[0] + a[2]) - (b[0] + b[2])) ** 2 + ((a[1] + a[3]) - (b[1] + b[3])) ** 2
                if best is None or distance < best[0]:
                    best = (distance, i, j)
        assert best is not None
        _, i, j = best
        a, b = merged[i], merged[j]
        union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
        merged = [box for k, box in enumerate(merged) if k not in {i, j}] + [union]
    return merged


def _viridis(values: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    coloured: np.ndarray = (colormaps["viridis"](np.clip(values, 0, 1))[..., :3] * 255).astype(np.uint8)
    return coloured


def render(image: Image.Image, anomaly_map: np.ndarray, notation: str, *, oracle: bool = False) -> Image.Image:
    """Draw an anomaly map (or a ground-truth mask, oracle=True) on a copy of the image."""
    scale = min(1.0, MAX_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    peak = float(anomaly_map.max())
    normalised = anomaly_map / peak if peak > 0 else anomaly_map
    resized = np.asarray(Image.fromarray(normalised.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    if notation in {"bbox", "contour"}:
        binary = resized > 0.5 if oracle else binarize(resized)
        parts = regions(binary)
        draw = ImageDraw.Draw(canvas)
        if notation == "bbox":
            for box in merge_boxes(boxes_of(parts), 3 if oracle else 2):
                draw.rectangle(box, outline=RED, width=2)
        else:
            pixels = np.asarray(canvas).copy()
            for part in parts:
                edge = part & ~ndimage.binary_erosion(part)
                pixels[ndimage.binary_dilation(edge)] = RED
            canvas = Image.fromarray(pixels)
        return canvas
    if notation == "highlight":
        colour = _viridis(resized).astype(np.float32)
        base = np.asarray(canvas, dtype=np.float32)
        alpha = 0.4 if oracle else 0.7  # the map's weight: 0.7 for the expert, 0.6/0.4 for the oracle
        blended = (1 - alpha) * base + alpha * colour
        return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))
    if notation == "heatmap":
        return Image.fromarray(_viridis(resized))
    if notation == "mask":
        return Image.fromarray(_viridis((resized > 0.5).astype(np.float32)))
    msg = f"unknown notation {notation!r}"
    raise ValueError(msg)
