"""A synthetic anomaly-detection dataset, in MVTec AD layout, deterministic from a seed.

Textures are real photos shipped inside scikit-image (brick, gravel, grass; the ``[demo]``
extra), falling back to procedural textures without it. Products are drawn: a metal washer, a
round tablet and a circuit board. Defects (scratch, crack, stain, hole, contamination, missing
and extra parts) are drawn with the same primitives onto the image and its mask, so the masks
are exact. A domain-knowledge file in the official format describes each category.

Every image, normal or defective, goes through the same steps, so that nothing but the defect
tells them apart: a scene (a random crop of a texture; a product in its canonical place), the
defect if any, a pose (products move by a few per cent of the frame and turn), and a camera
(`capture`: exposure, an uneven light falling from a random side, colour balance, focus blur
and sensor noise, each drawn at random per image). About `SMALL_SHARE` of the defects are small,
0.1-0.7% of the image (MVTec AD and VisA have many such), the rest 1.2-4%.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

logger = logging.getLogger(__name__)

DATASET_NAME = "SynthAD"
DEFECTS: dict[str, tuple[str, ...]] = {
    "brick": ("scratch", "crack", "stain", "hole"),
    "gravel": ("stain", "hole", "contamination"),
    "grass": ("stain", "scratch", "contamination"),
    "washer": ("scratch", "crack", "contamination", "missing_part"),
    "tablet": ("crack", "stain", "hole", "contamination"),
    "board": ("missing_part", "extra_part", "scratch", "stain"),
}
KNOWLEDGE_GOOD = {
    "brick": "The surface is a wall of rectangular bricks laid in regular rows with mortar joints between them. "
    "The bricks have an even, rough texture with small natural variations in tone.",
    "gravel": "The surface is made of many small rounded stones packed closely together. "
    "The stones vary slightly in size and shade but show no spots or holes.",
    "grass": "The surface is a lawn of thin grass blades growing densely in all directions. "
    "The colour is an even green without bare patches or stains.",
    "washer": "The product is a flat metal washer consisting of a circular ring with a round hole in its centre. "
    "The ring has a smooth grey surface and an unbroken outer edge.",
    "tablet": "The product is a round white tablet lying on a blue tray with a straight score line across its middle. "
    "The tablet is evenly white with a smooth, intact rim.",
    "board": "The product is a green circuit board with four black chips placed in a regular two-by-two grid. "
    "Each chip sits flat on the board and the board has no marks or scratches.",
}
KNOWLEDGE_DEFECTS = {
    "scratch": "A thin straight line that stands out from the surface, caused by abrasion during handling.",
    "crack": "A dark, jagged fracture line that runs through the material and may grow under stress.",
    "stain": "A discoloured blotch on the surface left by a liquid or residue.",
    "hole": "A dark round opening where material is missing.",
    "contamination": "Small foreign specks scattered over the surface.",
    "missing_part": "A component or a piece of the product is absent from where it belongs.",
    "extra_part": "An additional component appears where none should be.",
}


@functools.lru_cache(maxsize=8)
def _photo(name: str) -> np.ndarray | None:
    """A scikit-image sample photo, read once per process; None without scikit-image."""
    try:
        from skimage import data as skdata

        photo = np.asarray(getattr(skdata, name)(), dtype=np.uint8)
    except (ImportError, AttributeError):
        return None
    photo.setflags(write=False)  # shared between calls
    return photo


def _texture(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a scikit-image photo (or a procedural stand-in), as RGB uint8."""
    photo = _photo(name)
    if photo is None:
        noise = rng.normal(0, 1, (size // 8 + 2, size // 8 + 2))
        coarse = Image.fromarray(((noise - noise.min()) / np.ptp(noise) * 160 + 50).astype(np.uint8))
        photo = np.asarray(coarse.resize((size * 2, size * 2), Image.Resampling.BICUBIC))
    if photo.ndim == 3:
        photo = photo.mean(axis=2).astype(np.uint8)
    y = int(rng.integers(0, photo.shape[0] - size + 1))
    x = int(rng.integers(0, photo.shape[1] - size + 1))
    crop = photo[y : y + size, x : x + size].astype(np.float32)
    tint = {"brick": (1.0, 0.75, 0.6), "gravel": (0.95, 0.92, 0.88), "grass": (0.55, 1.0, 0.5)}.get(name, (1, 1, 1))
    tinted: np.ndarray = np.clip(crop[..., None] * np.array(tint), 0, 255).astype(np.uint8)
    return tinted


def _washer(size: int, rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (size, size), (40, 40, 45))
    draw = ImageDraw.Draw(image)
    c = size / 2
    outer, inner = size * 0.36, size * 0.14
    draw.ellipse((c - outer, c - outer, c + outer, c + outer), fill=(170, 172, 178))
    draw.ellipse((c - inner, c - inner, c + inner, c + inner), fill=(40, 40, 45))
    return image


def _tablet(size: int, rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (size, size), (40, 70, 150))
    draw = ImageDraw.Draw(image)
    c = size / 2
    r = size * 0.34
    draw.ellipse((c - r, c - r, c + r, c + r), fill=(235, 235, 230))
    draw.line((c - r * 0.8, c, c + r * 0.8, c), fill=(205, 205, 200), width=2)
    return image


CHIP_SLOTS = ((0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7))


def _board(size: int, rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (size, size), (25, 25, 25))
    draw = ImageDraw.Draw(image)
    margin = size * 0.1
    draw.rectangle((margin, margin, size - margin, size - margin), fill=(30, 120, 60))
    for fx, fy in CHIP_SLOTS:
        x, y = fx * size, fy * size
        draw.rectangle((x - size * 0.08, y - size * 0.06, x + size * 0.08, y + size * 0.06), fill=(15, 15, 15))
    return image


PRODUCTS: dict[str, Callable[[int, np.random.Generator], Image.Image]] = {
    "washer": _washer,
    "tablet": _tablet,
    "board": _board,
}
# How far a product may move (fraction of the frame) and turn (degrees), and its background.
POSES: dict[str, tuple[float, float, tuple[int, int, int]]] = {
    "washer": (0.06, 180.0, (40, 40, 45)),
    "tablet": (0.06, 30.0, (40, 70, 150)),
    "board": (0.04, 4.0, (25, 25, 25)),
}
SMALL_SHARE = 0.5
SMALL_AREA = (0.0015, 0.006)  # inside the 0.1-0.7% band, with room for the pose's resampling
LARGE_AREA = (0.012, 0.04)


def scene(category: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A defect-free scene in its canonical place: a random crop of a texture, or a product centred."""
    if category in PRODUCTS:
        return PRODUCTS[category](size, rng)
    return Image.fromarray(_texture(category, size, rng))


def pose(
    category: str, image: Image.Image, mask: np.ndarray | None, rng: np.random.Generator
) -> tuple[Image.Image, np.ndarray | None]:
    """Move and turn a product (and its defect's mask with it); textures are already random crops."""
    if category not in POSES:
        return image, mask
    shift, turn, background = POSES[category]
    dx, dy = (round(float(v)) for v in rng.uniform(-shift, shift, 2) * image.width)
    angle = float(rng.uniform(-turn, turn))
    moved = image.rotate(angle, Image.Resampling.BICUBIC, translate=(dx, dy), fillcolor=background)
    if mask is None:
        return moved, None
    layer = Image.fromarray(mask.astype(np.uint8) * 255)
    return moved, np.asarray(layer.rotate(angle, Image.Resampling.NEAREST, translate=(dx, dy), fillcolor=0)) > 0


def capture(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The camera, the same for every image: exposure, uneven light, colour balance, focus blur, sensor noise."""
    height, width = image.height, image.width
    blurred = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.0))))
    pixels = np.asarray(blurred, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    across = (np.arange(width, dtype=np.float32) / width - 0.5) * np.float32(np.cos(angle))
    down = (np.arange(height, dtype=np.float32) / height - 0.5) * np.float32(np.sin(angle))
    ramp = down[:, None] + across[None, :]
    light = np.float32(rng.uniform(0.85, 1.15)) * (1 + np.float32(rng.uniform(0, 0.25)) * ramp)
    balance = rng.uniform(0.96, 1.04, 3).astype(np.float32)
    noise = rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(rng.uniform(1.0, 3.0))
    lit = pixels * light[..., None] * balance + noise
    return Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))


def normal_image(category: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A defect-free image of a category, in a random pose (not yet through `capture`)."""
    return pose(category, scene(category, size, rng), None, rng)[0]


def draw_defect(
    image: Image.Image,
    kind: str,
    center: tuple[float, float],
    scale: float,
    rng: np.random.Generator,
    category: str = "",
) -> np.ndarray:
    """Draw a defect around a centre (x, y in pixels) on the image, in place; return its exact mask."""
    size = image.width
    mask = Image.new("L", image.size, 0)
    on_image, on_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)

    def paint(shape: str, xy: Any, colour: tuple[int, int, int], **options: Any) -> None:
        getattr(on_image, shape)(xy, fill=colour, **options)
        getattr(on_mask, shape)(xy, fill=255, **options)

    x, y = center
    r = scale * size
    if kind == "scratch":
        angle = rng.uniform(0, np.pi)
        dx, dy = np.cos(angle) * r, np.sin(angle) * r
        paint("line", (x - dx, y - dy, x + dx, y + dy), (235, 235, 225), width=max(2, round(r / 7)))
    elif kind == "crack":
        points = [(x - r + 2 * r * step / 6, y + rng.uniform(-r, r) * 0.35) for step in range(7)]
        paint("line", points, (20, 18, 15), width=max(2, round(r / 6)))
    elif kind == "stain":
        palette = [(120, 60, 20), (150, 40, 120), (200, 170, 30)]
        colour = palette[int(rng.integers(len(palette)))]
        blob = [
            (x + np.cos(t) * r * rng.uniform(0.6, 1.0), y + np.sin(t) * r * rng.uniform(0.6, 1.0))
            for t in np.linspace(0, 2 * np.pi, 10, endpoint=False)
        ]
        paint("polygon", blob, colour)
    elif kind == "hole":
        paint("ellipse", (x - r * 0.6, y - r * 0.6, x + r * 0.6, y + r * 0.6), (8, 8, 8))
    elif kind == "contamination":
        speck = max(1.5, r / 5)
        for _ in range(int(rng.integers(4, 8))):
            px, py = x + rng.uniform(-r, r), y + rng.uniform(-r, r)
            paint("ellipse", (px - speck, py - speck, px + speck, py + speck), (10, 10, 10))
    elif kind == "missing_part":
        if category == "board":
            fx, fy = min(CHIP_SLOTS, key=lambda s: (s[0] * size - x) ** 2 + (s[1] * size - y) ** 2)
            cx, cy = fx * size, fy * size
            paint("rectangle", (cx - size * 0.08, cy - size * 0.06, cx + size * 0.08, cy + size * 0.06), (30, 120, 60))
        else:
            start = float(rng.uniform(0, 360))
            paint("pieslice", (x - r, y - r, x + r, y + r), (40, 40, 45), start=start, end=start + 50)
    elif kind == "extra_part":
        paint("rectangle", (x - r * 0.6, y - r * 0.5, x + r * 0.6, y + r * 0.5), (200, 180, 40))
    else:
        msg = f"unknown defect kind {kind!r}"
        raise ValueError(msg)
    return np.asarray(mask) > 0


def _defect_centre(category: str, kind: str, size: int, rng: np.random.Generator) -> tuple[float, float]:
    if category == "board" and kind == "missing_part":
        fx, fy = CHIP_SLOTS[int(rng.integers(len(CHIP_SLOTS)))]
        return fx * size, fy * size
    if category == "board" and kind == "extra_part":
        return 0.5 * size, float(rng.choice([0.2, 0.5, 0.8])) * size
    if category in {"washer", "tablet"}:
        angle = rng.uniform(0, 2 * np.pi)
        radius = size * (0.25 if category == "washer" else rng.uniform(0.05, 0.25))
        return size / 2 + np.cos(angle) * radius, size / 2 + np.sin(angle) * radius
    return rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size


def defect_of_area(
    image: Image.Image, kind: str, centre: tuple[float, float], area: float, rng: np.random.Generator, category: str
) -> tuple[Image.Image, np.ndarray]:
    """A copy of image with a defect covering about `area` of it (a fraction), and the defect's mask.

    The same shape is redrawn at a corrected scale until its area is within 25% of the target;
    kinds of a fixed size (a whole missing chip) keep theirs.
    """
    seed = int(rng.integers(2**63))
    scale, drawn, mask, previous = 0.08, image, np.zeros((image.height, image.width), bool), -1.0
    for _ in range(6):
        drawn = image.copy()
        mask = draw_defect(drawn, kind, centre, scale, np.random.default_rng(seed), category)
        got = float(mask.mean())
        if got == previous or 0.8 * area <= got <= 1.25 * area:
            break
        previous = got
        scale = float(np.clip(scale * (np.sqrt(area / got) if got > 0 else 1.5), 0.01, 0.35))
    return drawn, mask


@dataclass
class SyntheticDataset:
    """Where the generated dataset lies and what it holds."""

    root: Path
    knowledge: Path
    categories: list[str]
    images: int


def make_synthetic_dataset(
    root: str | Path,
    *,
    seed: int = 0,
    size: int = 256,
    n_train: int = 8,
    n_test_good: int = 6,
    n_per_defect: int = 4,
    categories: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticDataset:
    """Write the synthetic dataset in MVTec AD layout under root; deterministic from seed.
    ``progress`` is called with (done, total) images."""
    target = Path(root)
    chosen = categories or list(DEFECTS)
    total = sum(n_train + n_test_good + n_per_defect * len(DEFECTS[c]) for c in chosen)
    rng = np.random.default_rng(seed)
    count = 0
    knowledge: dict[str, dict[str, str]] = {}
    for category in chosen:
        base = target / category
        for split, folder, n in (("train", "good", n_train), ("test", "good", n_test_good)):
            (base / split / folder).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                placed, _ = pose(category, scene(category, size, rng), None, rng)
                capture(placed, rng).save(base / split / folder / f"{i:03d}.png", compress_level=1)
                count += 1
                if progress is not None:
                    progress(count, total)
        for kind in DEFECTS[category]:
            (base / "test" / kind).mkdir(parents=True, exist_ok=True)
            (base / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_defect):
                bounds = SMALL_AREA if rng.random() < SMALL_SHARE else LARGE_AREA
                area = float(rng.uniform(*bounds))
                centre = _defect_centre(category, kind, size, rng)
                drawn, mask = defect_of_area(scene(category, size, rng), kind, centre, area, rng, category)
                placed, moved = pose(category, drawn, mask, rng)
                capture(placed, rng).save(base / "test" / kind / f"{i:03d}.png", compress_level=1)
                Image.fromarray((mask if moved is None else moved).astype(np.uint8) * 255).save(
                    base / "ground_truth" / kind / f"{i:03d}_mask.png"
                )
                count += 1
                if progress is not None:
                    progress(count, total)
        entries = {"good": f" <Normal Characteristics>\n Description: {KNOWLEDGE_GOOD[category]}"}
        for kind in DEFECTS[category]:
            title = kind.replace("_", " ").title()
            entries[kind] = f" <{title}>\n Description: {KNOWLEDGE_DEFECTS[kind]}"
        knowledge[category] = entries
    knowledge_path = target / "domain_knowledge.json"
    knowledge_path.write_text(json.dumps({DATASET_NAME: knowledge}, indent=2))
    logger.info("wrote %d synthetic images to %s", count, target)
    return SyntheticDataset(target, knowledge_path, chosen, count)
