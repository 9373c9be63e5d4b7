"""Drawing an anomaly map or a ground-truth mask on an image: the agent strategy's extra image.

The rules are those of the official ``evaluation/examples/SoftPatch/call.py`` (jam-cc/MMAD):

- Size: an image whose longer side exceeds 512 px is shrunk to ``(int(w * s), int(h * s))``,
  ``s = 512 / max(w, h)`` (Pillow's bicubic); smaller images keep their size.
- The expert (``call_patchcore``): the map is resized to that size (bilinear) and divided by its
  maximum. ``bbox``/``contour``: pixels strictly above 2/3 of the maximum; if more than half the
  pixels pass, those strictly above the value at position ``int(0.5 * n)`` of the sorted map.
  Regions of at most 0.1% of the image are dropped. Boxes with the nearest centres are merged
  until at most 2 remain. ``highlight``: the viridis map blended with transparent black at 0.7,
  then composited over the image, which is 0.489 × map + 0.302 × image (the official code's
  effective weights). ``heatmap``: the viridis map.
- The ground truth (``call_ground_truth``): the mask is shrunk with nearest-neighbour; a pixel is
  defective when the mask's maximum is 1 and it is 1, when the maximum is 255 and it is 255, and
  otherwise when it is non-zero. ``contour``: the outer contour of every region, none dropped.
  ``bbox``: merged until at most 3 remain. ``highlight``: 0.6 × image + 0.4 × viridis(mask).
  ``mask``: viridis(mask). There is no ground-truth heatmap.
- Red (255, 0, 0), 2 px strokes; a box spans ``(x, y)`` to ``(x + w, y + h)`` as ``cv2.rectangle``
  draws a ``cv2.boundingRect``. Regions are 8-connected with their holes filled, as
  ``cv2.findContours(RETR_EXTERNAL)`` sees them.

OpenCV itself is not used: region areas are pixel counts (``cv2.contourArea`` measures the polygon
through the boundary pixels) and strokes may differ from OpenCV's by a pixel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

MAX_SIDE = 512
RED = (255, 0, 0)
EXPERT_BOXES = 2
ORACLE_BOXES = 3
MIN_AREA_FRACTION = 0.001
HIGHLIGHT_ALPHA = 0.7  # call_patchcore: Image.blend(transparent black, map, 0.7), then alpha_composite
ORACLE_IMAGE_WEIGHT, ORACLE_MAP_WEIGHT = 0.6, 0.4  # call_ground_truth: cv2.addWeighted(image, 0.6, map, 0.4, 0)
Box = tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive
_EIGHT = np.ones((3, 3), dtype=bool)


def shrunk_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size the official rendering works at: longer side at most 512, sides truncated by int()."""
    width, height = size
    if max(width, height) <= MAX_SIDE:
        return width, height
    scale = MAX_SIDE / max(width, height)
    return max(1, int(width * scale)), max(1, int(height * scale))


def _canvas(image: Image.Image) -> Image.Image:
    rgb = image.convert("RGB")
    size = shrunk_size(rgb.size)
    return rgb.resize(size, Image.Resampling.BICUBIC) if size != rgb.size else rgb.copy()


def binarize(anomaly_map: np.ndarray) -> np.ndarray:
    """Strictly above 2/3 of the maximum; when more than half passes, strictly above the sorted middle value."""
    peak = float(anomaly_map.max())
    if peak <= 0:
        return np.zeros(anomaly_map.shape, dtype=bool)
    normalised = anomaly_map / peak
    binary: np.ndarray = normalised > normalised.max() * (1 - 1 / 3)
    if np.count_nonzero(binary) / binary.size > 0.5:
        values = np.sort(normalised, axis=None)
        binary = normalised > values[int(0.5 * len(values))]
    return binary


def oracle_mask(gt: np.ndarray) -> np.ndarray:
    """The defective pixels of a grey-level ground-truth mask, by call_ground_truth's three cases."""
    peak = int(gt.max()) if gt.size else 0
    mask: np.ndarray
    if peak == 1:
        mask = gt == 1
    elif peak == 255:
        mask = gt == 255  # gt // 255: grey edge values count as background
    else:
        mask = gt > 0
    return mask


def regions(binary: np.ndarray, min_area_fraction: float = MIN_AREA_FRACTION) -> list[np.ndarray]:
    """8-connected regions, holes filled, larger than the area filter (0 keeps every region)."""
    from scipy import ndimage  # 0.6 s to import; run/config reaches this module through the tools

    labels, count = ndimage.label(binary, structure=_EIGHT)
    minimum = min_area_fraction * binary.size
    out = []
    for index in range(1, count + 1):
        region = ndimage.binary_fill_holes(labels == index)
        if region.sum() > minimum:
            out.append(region)
    return out


def boxes_of(parts: list[np.ndarray]) -> list[Box]:
    """Bounding boxes of regions (inclusive pixel bounds)."""
    out = []
    for part in parts:
        ys, xs = np.nonzero(part)
        out.append((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())))
    return out


def merge_boxes(boxes: list[Box], limit: int) -> list[Box]:
    """Merge the two boxes with the nearest centres (first pair on ties, merged box last) until `limit` remain."""
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


def _draw_boxes(canvas: Image.Image, parts: list[np.ndarray], limit: int) -> Image.Image:
    draw = ImageDraw.Draw(canvas)
    for x0, y0, x1, y1 in merge_boxes(boxes_of(parts), limit):
        draw.rectangle((x0, y0, x1 + 1, y1 + 1), outline=RED, width=2)  # cv2: (x, y) to (x + w, y + h)
    return canvas


def _draw_contours(canvas: Image.Image, parts: list[np.ndarray]) -> Image.Image:
    from scipy import ndimage

    pixels = np.asarray(canvas).copy()
    for part in parts:
        edge = part & ~ndimage.binary_erosion(part)
        pixels[ndimage.binary_dilation(edge)] = RED
    return Image.fromarray(pixels)


def render_expert(image: Image.Image, anomaly_map: np.ndarray, notation: str) -> Image.Image:
    """Draw an expert's anomaly map on (a shrunk copy of) the image, as call_patchcore does."""
    canvas = _canvas(image)
    resized = np.asarray(Image.fromarray(anomaly_map.astype(np.float32)).resize(canvas.size, Image.Resampling.BILINEAR))
    peak = float(resized.max())
    normalised = resized / peak if peak > 0 else np.zeros_like(resized)
    if notation in {"bbox", "contour"}:
        parts = regions(binarize(normalised))
        if notation == "bbox":
            return _draw_boxes(canvas, parts, EXPERT_BOXES)
        return _draw_contours(canvas, parts)
    if notation == "highlight":
        coloured = Image.fromarray(_viridis(normalised)).convert("RGBA")
        overlay = Image.blend(Image.new("RGBA", coloured.size), coloured, HIGHLIGHT_ALPHA)
        return Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
    if notation == "heatmap":
        return Image.fromarray(_viridis(normalised))
    msg = f"the expert has no {notation!r} rendering; choose bbox, contour, highlight or heatmap"
    raise ValueError(msg)


def render_oracle(image: Image.Image, gt: np.ndarray, notation: str) -> Image.Image:
    """Draw a ground-truth mask (grey levels, any size) on (a shrunk copy of) the image, as call_ground_truth does."""
    canvas = _canvas(image)
    if gt.shape != (canvas.height, canvas.width):
        gt = np.asarray(Image.fromarray(gt.astype(np.uint8)).resize(canvas.size, Image.Resampling.NEAREST))
    mask = oracle_mask(gt)
    coloured = _viridis(mask.astype(np.float32)) if mask.any() else np.zeros((*mask.shape, 3), np.uint8)
    if notation == "mask":
        return Image.fromarray(coloured)
    if notation == "contour":
        return _draw_contours(canvas, regions(mask, 0.0))
    if notation == "bbox":
        return _draw_boxes(canvas, regions(mask, 0.0), ORACLE_BOXES)
    if notation == "highlight":
        blended = ORACLE_IMAGE_WEIGHT * np.asarray(canvas, np.float64) + ORACLE_MAP_WEIGHT * coloured
        return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    msg = f"the ground truth has no {notation!r} rendering: use bbox, contour, highlight or mask"
    raise ValueError(msg)


def render(image: Image.Image, anomaly_map: np.ndarray, notation: str, *, oracle: bool = False) -> Image.Image:
    """An expert's map (or, with oracle=True, a ground-truth mask) drawn on a copy of the image."""
    if oracle:
        gt = anomaly_map if anomaly_map.dtype == np.uint8 else (anomaly_map > 0.5).astype(np.uint8)
        return render_oracle(image, gt, notation)
    return render_expert(image, anomaly_map, notation)
