"""A data root of MMAD's size for the benches: the full-size json (39,672 questions on 8,366 images)
and a real image file for every query and template (photo-like JPEGs of a chosen size).

Made once per (size, format) under a cache folder and reused, since writing 8,366 images takes a
minute or two.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.fullsize import full_size_mmad


def photo(rng: np.random.Generator, size: int) -> Image.Image:
    """A smooth, photo-like image with fine texture (white noise would make every JPEG far too large)."""
    coarse = rng.integers(40, 215, (12, 12, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-6, 7, (size, size, 1), dtype=np.int16)
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def fullsize_root(cache: Path, *, size: int = 512, suffix: str = ".jpg") -> Path:
    """The cached data root (made on first use): mmad.json and every image it names."""
    root = cache / f"mmad-fullsize-{size}{suffix.strip('.')}"
    done = root / ".complete"
    if done.exists():
        return root
    raw = full_size_mmad()
    renamed = {}
    for key, item in raw.items():
        item["random_templates"] = [t.replace(".png", suffix) for t in item["random_templates"]]
        item["similar_templates"] = [t.replace(".png", suffix) for t in item["similar_templates"]]
        renamed[key.replace(".png", suffix)] = item
    rng = np.random.default_rng(0)
    paths = set(renamed)
    for item in renamed.values():
        paths.update(item["random_templates"], item["similar_templates"])
    for path in sorted(paths):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        photo(rng, size).save(target, quality=90) if suffix == ".jpg" else photo(rng, size).save(target)
    (root / "mmad.json").write_text(json.dumps(renamed))
    done.write_text("ok\n")
    return root


if __name__ == "__main__":
    made = fullsize_root(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp"))
    print(made)
