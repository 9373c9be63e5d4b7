"""What a mask says about a defect: where it is on the product, how big, what shape, what tone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ANALYSIS_SIDE = 256
CELL_NAMES = (
    ("Top left", "At the top", "Top right"),
    ("On the left side", "Around the center", "On the right side"),
    ("Bottom left", "At the bottom", "Bottom right"),
)
EDGES = "Around the edges"
ROW_SIDES = {0: "At the top", 2: "At the bottom"}
COL_SIDES = {0: "On the left side", 2: "On the right side"}


def load_rgb(path: Path, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """An image as an RGB float array, its longest side at most `side`."""
    with Image.open(path) as image:
        image.draft("RGB", (side, side))
        rgb = image.convert("RGB")
        rgb.thumbnail((side, side), Image.Resampling.BOX)
        return np.asarray(rgb, dtype=np.float32)


LOSSY_SUFFIXES = frozenset({".jpg", ".jpeg", ".webp"})


def read_mask(path: Path) -> np.ndarray:
    """A mask file as booleans at its own size: any non-zero value is defect.

    Label maps (VisA's 1, 2, ... per region; palette images by index), 0/255 masks, RGB(A) masks
    and alpha-only masks all read the same; a JPEG mask is thresholded at half its maximum, since
    compression leaves faint non-zero pixels around the edges.
    """
    with Image.open(path) as image:
        if image.mode in {"P", "1", "L", "I", "I;16", "I;16B", "I;16L", "F"}:  # a palette image: by index
            values = np.asarray(image)
        else:
            rgba = np.asarray(image.convert("RGBA"))
            values = rgba[..., :3].max(axis=2)
            if not values.any() and rgba[..., 3].min() != rgba[..., 3].max():
                values = rgba[..., 3]
    values = values.astype(np.float32)
    if path.suffix.lower() in LOSSY_SUFFIXES:
        top = float(values.max())
        return values > min(127.0, top / 2) if top > 0 else np.zeros(values.shape, dtype=bool)
    return values > 0


def union_mask(paths: Sequence[Path], shape: tuple[int, int] | None = None) -> np.ndarray:
    """The union of one or more mask files (instance masks), at shape (height, width) or the first mask's size."""
    union: np.ndarray | None = None
    for path in paths:
        mask = read_mask(path)
        if shape is None:
            shape = (int(mask.shape[0]), int(mask.shape[1]))
        if mask.shape != shape:
            mask = resize_mask(mask, shape)
        union = mask if union is None else union | mask
    if union is None:
        return np.zeros(shape or (1, 1), dtype=bool)
    return union


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean mask at another size: pixels at least half covered, and never losing a tiny defect entirely."""
    if mask.shape == shape:
        return mask
    small = Image.fromarray(mask.astype(np.float32)).resize((shape[1], shape[0]), Image.Resampling.BOX)
    coverage = np.asarray(small)
    resized = coverage >= 0.5
    if mask.any() and not resized.any():
        resized = coverage >= coverage.max() * 0.5
    return resized


def load_mask(paths: Sequence[Path], shape: tuple[int, int]) -> np.ndarray:
    """The union of one or more mask files, resized to (height, width), as booleans."""
    return union_mask(paths, shape)


def product_extent(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The product's bounding box (y0, x0, y1, x1): pixels unlike the border's colour.

    A texture or a product filling the frame gives the whole image.
    """
    height, width = rgb.shape[:2]
    step = max(1, max(height, width) // 64)  # a 64-px view is enough to find the product
    small = rgb[::step, ::step]
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    background = np.median(border, axis=0)
    spread = float(np.median(np.abs(border - background))) + 1.0
    distance = np.abs(small - background).max(axis=2)
    foreground = ndimage.binary_opening(distance > max(30.0, 6 * spread))
    share = foreground.mean()
    if share < 0.05 or share > 0.95:
        return 0, 0, height, width
    ys, xs = np.nonzero(foreground)
    return (
        int(ys.min()) * step,
        int(xs.min()) * step,
        min(height, (int(ys.max()) + 1) * step),
        min(width, (int(xs.max()) + 1) * step),
    )


@dataclass(frozen=True)
class Location:
    """Where a defect is, in words, and how sure the reading is."""

    answer: str
    cells: tuple[tuple[int, int], ...]
    mass: tuple[tuple[float, ...], ...]


def locate(mask: np.ndarray, extent: tuple[int, int, int, int]) -> Location | None:
    """The defect's place on a 3×3 grid over the product; None when the reading is ambiguous."""
    y0, x0, y1, x1 = extent
    region = mask[y0:y1, x0:x1]
    total = region.sum()
    if total == 0:
        return None
    h, w = region.shape
    rows = np.array_split(np.arange(h), 3)
    cols = np.array_split(np.arange(w), 3)
    mass = np.array([[region[r[0] : r[-1] + 1, c[0] : c[-1] + 1].sum() for c in cols] for r in rows]) / total
    table = tuple(tuple(float(v) for v in row) for row in mass)
    order = sorted(((mass[i, j], (i, j)) for i in range(3) for j in range(3)), reverse=True)
    (top_share, top_cell), (second_share, second_cell) = order[0], order[1]
    if top_share >= 0.6:
        i, j = top_cell
        return Location(CELL_NAMES[i][j], (top_cell,), table)
    ring = mass.sum() - mass[1, 1]
    touched = int((mass > 0.1).sum())
    if ring >= 0.85 and touched >= 3 and mass[1, 1] < 0.05:
        return Location(EDGES, tuple(c for _, c in order if mass[c] > 0.1), table)
    if top_share + second_share >= 0.8:
        (a, b), (c, d) = top_cell, second_cell
        if a == c and a in ROW_SIDES and {b, d} != {0, 2}:
            return Location(ROW_SIDES[a], (top_cell, second_cell), table)
        if b == d and b in COL_SIDES and {a, c} != {0, 2}:
            return Location(COL_SIDES[b], (top_cell, second_cell), table)
        if abs(a - c) + abs(b - d) >= 2 and second_share >= 0.3:
            first, second = sorted([CELL_NAMES[a][b], CELL_NAMES[c][d]])
            return Location(f"{first} and {second.lower()}", (top_cell, second_cell), table)
    return None


def location_distractors(location: Location, rng: np.random.Generator, n: int = 3) -> list[str]:
    """Region names that the defect clearly does not occupy, far ones first."""
    occupied = {(i, j) for i in range(3) for j in range(3) if location.mass[i][j] > 0.05}
    candidates = []
    for i in range(3):
        for j in range(3):
            if (i, j) in occupied:
                continue
            distance = min(abs(i - a) + abs(j - b) for a, b in occupied) if occupied else 2
            candidates.append((distance + float(rng.random()) * 0.5, CELL_NAMES[i][j]))
    if location.answer != EDGES and location.mass[1][1] > 0.3:
        candidates.append((3.0, EDGES))
    candidates.sort(reverse=True)
    names = [name for _, name in candidates if name != location.answer]
    return names[:n]


@dataclass(frozen=True)
class Appearance:
    """A defect's size, shape, count and tone."""

    size: str
    shape: str
    count: int
    tone: str

    def sentence(self) -> str:
        """One option text."""
        if self.shape == "scattered":
            return f"Several {self.size} scattered {self.tone} spots.".replace("  ", " ")
        article = "An" if self.size[0] in "aeiou" else "A"
        noun = "line-like mark" if self.shape == "elongated" else "blob"
        return f"{article} {self.size}, {self.shape} {self.tone} {noun}.".replace("  ", " ").replace(" ,", ",")


SIZES = ("tiny", "small", "medium-sized", "large")
SHAPES = ("elongated", "compact", "scattered")
TONES = ("dark", "bright", "discoloured")


def describe(mask: np.ndarray, rgb: np.ndarray, extent: tuple[int, int, int, int]) -> Appearance | None:
    """Size relative to the product, elongated/compact/scattered, how many, darker/brighter/other colour."""
    y0, x0, y1, x1 = extent
    area = mask.sum() / max(1, (y1 - y0) * (x1 - x0))
    if area == 0:
        return None
    size = SIZES[int(np.searchsorted([0.005, 0.02, 0.08], area))]
    _labels, count = ndimage.label(mask)
    if count >= 3:
        shape = "scattered"
    else:
        ys, xs = np.nonzero(mask)
        if len(ys) < 3:
            shape = "compact"
        else:
            eigen = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(float)))
            shape = "elongated" if eigen[1] > 9 * max(eigen[0], 1e-6) else "compact"
    ring = ndimage.maximum_filter(mask, size=13) & ~mask
    if not ring.any():
        return None
    inside = rgb[mask].mean(axis=0)
    around = rgb[ring].mean(axis=0)
    luminance = float(inside.mean() - around.mean())
    chroma = float(np.abs((inside - inside.mean()) - (around - around.mean())).max())
    if luminance <= -18:
        tone = "dark"
    elif luminance >= 18:
        tone = "bright"
    elif chroma >= 18:
        tone = "discoloured"
    else:
        return None  # too faint to describe reliably
    return Appearance(size, shape, int(count), tone)


def appearance_distractors(truth: Appearance, rng: np.random.Generator, n: int = 3) -> list[Appearance]:
    """Descriptions that differ from the truth in at least two of size, shape and tone."""
    options = []
    for size in SIZES:
        for shape in SHAPES:
            for tone in TONES:
                differences = (size != truth.size) + (shape != truth.shape) + (tone != truth.tone)
                size_gap = abs(SIZES.index(size) - SIZES.index(truth.size))
                if differences >= 2 and (size == truth.size or size_gap >= 2 or differences == 3):
                    options.append(Appearance(size, shape, 1, tone))
    picks = rng.permutation(len(options))[:n]
    return [options[int(i)] for i in picks]
