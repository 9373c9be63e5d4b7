"""Real photos with drawn defects and exact masks: small (0.1-0.7% of the image) and large ones.

The photos ship inside scikit-image (the ``[demo]`` extra): three textures (brick, gravel,
grass) and two scenes (coffee, coins). Normal images vary the way real captures do: textures
are cropped at a random position, scenes shift by a few pixels, and every image gets its own
gain, a gentle light gradient and sensor noise. Defects are drawn on the same images, after the
same processing, so the defect is the only thing that tells a defective image from a normal
one. The mask is exactly the set of pixels a defect changed.

Kept apart from ``mmad.builder.synthetic`` on purpose: this data measures the expert, so it must
not move when the demo generator does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 448
CATEGORIES = ("brick", "gravel", "grass", "coffee", "coins")
KINDS = ("stain", "scratch", "hole", "crack", "foreign")
SMALL = (0.001, 0.007)  # share of the image's pixels
LARGE = (0.02, 0.06)
_TINT = {"brick": (1.0, 0.72, 0.58), "gravel": (0.95, 0.92, 0.86), "grass": (0.55, 1.0, 0.45), "coins": (1, 1, 1)}


def _photo(name: str) -> np.ndarray:
    from skimage import data as skdata

    photo = np.asarray(getattr(skdata, name)(), dtype=np.float32)
    if photo.ndim == 2:
        photo = photo[..., None] * np.array(_TINT.get(name, (1, 1, 1)), dtype=np.float32)
    return photo[..., :3]


def normal_image(category: str, rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """One normal capture of a category: position, light and noise vary, nothing else."""
    photo = _photo(category)
    height, width = photo.shape[:2]
    if category in {"brick", "gravel", "grass"}:
        side = min(height, width) - 64  # textures: anywhere on the photo
        y, x = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    else:
        side = min(height, width) - 24  # scenes: the same framing, shifted by up to 12 px
        y = (height - side) // 2 + int(rng.integers(-12, 13))
        x = (width - side) // 2 + int(rng.integers(-12, 13))
    crop = photo[y : y + side, x : x + side]
    resized = np.asarray(
        Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR),
        dtype=np.float32,
    )
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * math.pi)
    gradient = 1 + 0.06 * ((xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle))
    lit = resized * rng.uniform(0.9, 1.1) * gradient[..., None] + rng.normal(0, 2.0, resized.shape)
    return Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))


def _blob(size: int, centre: tuple[float, float], radius: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular filled outline: a circle whose radius wobbles with the angle."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = yy - centre[1], xx - centre[0]
    theta = np.arctan2(dy, dx)
    wobble = sum(rng.uniform(0, 0.18) * np.cos(k * theta + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
    stretch = rng.uniform(0.7, 1.0)
    rotation = rng.uniform(0, math.pi)
    u = dx * math.cos(rotation) + dy * math.sin(rotation)
    v = (-dx * math.sin(rotation) + dy * math.cos(rotation)) / stretch
    result: np.ndarray = np.hypot(u, v) <= radius * math.sqrt(stretch) * (1 + wobble)
    return result


def _polyline(size: int, points: list[tuple[float, float]], width: float) -> np.ndarray:
    """Pixels within width/2 of a polyline."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    distance = np.full((size, size), np.inf, dtype=np.float32)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        sx, sy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * sx + (yy - y0) * sy) / max(sx * sx + sy * sy, 1e-6), 0, 1)
        distance = np.minimum(distance, np.hypot(xx - (x0 + t * sx), yy - (y0 + t * sy)))
    result: np.ndarray = distance <= width / 2
    return result


def _shape(kind: str, size: int, area: float, centre: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    if kind in {"stain", "hole", "foreign"}:
        return _blob(size, centre, math.sqrt(area / math.pi), rng)
    # Small ones are hairlines; a large one is a gouge (a hairline that long would leave the image).
    width = rng.uniform(2.5, 4.0) if kind == "scratch" else rng.uniform(2.0, 3.0)
    width = max(width, math.sqrt(area) / 5)
    length = area / width
    angle = rng.uniform(0, math.pi)
    if kind == "scratch":  # one or two nearly straight strokes
        bend = rng.uniform(-0.3, 0.3)
        half = length / 2
        points = [
            (centre[0] - half * math.cos(angle), centre[1] - half * math.sin(angle)),
            centre,
            (centre[0] + half * math.cos(angle + bend), centre[1] + half * math.sin(angle + bend)),
        ]
    else:  # a crack: a jagged walk
        steps = 6
        points = [centre]
        for _ in range(steps):
            angle += rng.uniform(-0.8, 0.8)
            x, y = points[-1]
            points.append((x + length / steps * math.cos(angle), y + length / steps * math.sin(angle)))
    return _polyline(size, points, width)


def _paint(kind: str, pixels: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Change the masked pixels in place, each kind its own way, all clearly visible."""
    inside = pixels[mask]
    if kind == "stain":  # a darker or a brownish blotch
        colour = np.array([90, 60, 30], np.float32) if rng.random() < 0.5 else inside.mean(axis=0) * 0.45
        pixels[mask] = inside * 0.35 + colour * 0.65
    elif kind == "scratch":  # bright abrasion
        pixels[mask] = inside * 0.3 + 225 * 0.7
    elif kind == "hole":
        pixels[mask] = inside * 0.15 + 15
    elif kind == "crack":
        pixels[mask] = inside * 0.2 + 10
    else:  # foreign matter: a piece of another photo
        from skimage import data as skdata

        other = np.asarray(skdata.camera(), dtype=np.float32)
        ys, xs = np.nonzero(mask)
        oy, ox = int(rng.integers(0, 512 - 100)), int(rng.integers(0, 512 - 100))
        patch = other[oy + (ys - ys.min()) % 100, ox + (xs - xs.min()) % 100]
        pixels[mask] = patch[:, None] * np.array([0.9, 0.85, 1.0], np.float32)


def draw_defect(
    image: Image.Image, kind: str, share: tuple[float, float], rng: np.random.Generator
) -> tuple[Image.Image, np.ndarray]:
    """The image with one defect covering a share of its pixels inside the given range, and its mask."""
    size = image.width
    low, high = share
    for _ in range(50):
        target = rng.uniform(low, high) * size * size
        margin = 0.12 * size
        centre = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
        mask = _shape(kind, size, target, centre, rng)
        if low <= mask.mean() <= high:
            break
    else:
        raise AssertionError(f"could not draw a {kind} covering {share} of a {size} px image")
    pixels = np.asarray(image, dtype=np.float32).copy()
    _paint(kind, pixels, mask, rng)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), mask


def write_mvtec_tree(
    root: Path,
    *,
    seed: int = 0,
    categories: tuple[str, ...] = CATEGORIES,
    n_train: int = 6,
    n_good: int = 8,
    n_small: int = 8,
    n_large: int = 8,
    size: int = SIZE,
    on_sample: Callable[[str, str, str, np.ndarray], None] | None = None,
) -> Path:
    """An MVTec AD tree: ``<category>/{train/good, test/{good,small,large}, ground_truth/{small,large}}``.

    The defect folder says the size class; the kind cycles through KINDS. ``on_sample`` gets
    (category, defect folder, file name, mask) for each defective image.
    """
    rng = np.random.default_rng(seed)
    for category in categories:
        base = root / category
        for folder, count in (("train/good", n_train), ("test/good", n_good)):
            (base / folder).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                normal_image(category, rng, size).save(base / folder / f"{i:03d}.png")
        for folder, count, share in (("small", n_small, SMALL), ("large", n_large, LARGE)):
            (base / "test" / folder).mkdir(parents=True, exist_ok=True)
            (base / "ground_truth" / folder).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                kind = KINDS[i % len(KINDS)]
                image, mask = draw_defect(normal_image(category, rng, size), kind, share, rng)
                image.save(base / "test" / folder / f"{i:03d}.png")
                Image.fromarray(mask.astype(np.uint8) * 255).save(base / "ground_truth" / folder / f"{i:03d}_mask.png")
                if on_sample is not None:
                    on_sample(category, folder, f"{i:03d}.png", mask)
    return root
