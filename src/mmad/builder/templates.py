"""Template images for each query: random ones, and similar ones by image features.

Similarity is the cosine similarity of a cheap global descriptor: a 16×16 grey thumbnail
(zero-mean, unit-norm) concatenated with an 8-bin-per-channel colour histogram. It ranks normal
images of the same category by overall layout and colour, which is what a template must match.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def descriptor(source: Path | np.ndarray) -> np.ndarray:
    """The global feature vector of an image file, or of an RGB array already loaded."""
    if isinstance(source, np.ndarray):
        rgb = Image.fromarray(source.astype(np.uint8))
        rgb.thumbnail((64, 64), Image.Resampling.BOX)
    else:
        with Image.open(source) as image:
            image.draft("RGB", (64, 64))
            rgb = image.convert("RGB")
            rgb.thumbnail((64, 64), Image.Resampling.BOX)
    small = np.asarray(rgb.resize((16, 16), Image.Resampling.BOX), dtype=np.float32)
    pixels = np.asarray(rgb, dtype=np.float32).reshape(-1, 3)
    grey = small.mean(axis=2).ravel()
    grey = grey - grey.mean()
    grey /= np.linalg.norm(grey) + 1e-6
    histogram = np.concatenate([np.histogram(pixels[:, c], bins=8, range=(0, 256))[0] for c in range(3)])
    histogram = histogram.astype(np.float32) / (np.linalg.norm(histogram) + 1e-6)
    return np.concatenate([grey, histogram])


def random_templates(pool: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
    """k templates drawn at random without replacement."""
    picks = rng.permutation(len(pool))[:k]
    return [pool[int(i)] for i in picks]


def similar_templates(query: np.ndarray, pool: Sequence[str], features: np.ndarray, k: int) -> list[str]:
    """The k templates whose descriptors are closest to the query's."""
    scores = features @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [pool[int(i)] for i in order]
