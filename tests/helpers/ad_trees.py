"""Anomaly-detection dataset trees in each distributed layout, generated at test time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mmad.builder.synthetic import draw_defect, normal_image

SIZE = 96
# (defect folder, kind drawn, centre as fractions of the image)
DEFECTS = [("scratch", "scratch", (0.2, 0.2)), ("hole", "hole", (0.8, 0.8))]


def _pair(rng: np.random.Generator, kind: str, centre: tuple[float, float]) -> tuple[Image.Image, np.ndarray]:
    image = normal_image("tablet", SIZE, rng)
    mask = draw_defect(image, kind, (centre[0] * SIZE, centre[1] * SIZE), 0.08, rng, "tablet")
    return image, mask


def _save_mask(mask: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask * 255).astype(np.uint8)).save(path)


def make_tree(root: Path, layout: str, *, categories: tuple[str, ...] = ("tablet", "pill_box"), n: int = 2) -> Path:
    """Write a dataset in one of the layouts mvtec, visa, loco, goodsad, folder."""
    rng = np.random.default_rng(0)
    ext = {"visa": ".JPG", "goodsad": ".jpg"}.get(layout, ".png")
    for category in categories:
        base = root / category
        normal_dir = base / "good" if layout == "folder" else base / "train" / "good"
        normal_dir.mkdir(parents=True, exist_ok=True)
        for i in range(4):
            normal_image("tablet", SIZE, rng).save(normal_dir / f"{i:03d}{ext}")
        if layout == "loco":
            (base / "validation" / "good").mkdir(parents=True)
            normal_image("tablet", SIZE, rng).save(base / "validation" / "good" / "000.png")
        if layout != "folder":
            (base / "test" / "good").mkdir(parents=True)
            for i in range(n):
                normal_image("tablet", SIZE, rng).save(base / "test" / "good" / f"{i:03d}{ext}")
        defects = [("bad", *DEFECTS[0][1:])] if layout == "visa" else DEFECTS
        if layout == "loco":
            defects = [("structural_anomalies", *DEFECTS[0][1:]), ("logical_anomalies", *DEFECTS[1][1:])]
        for folder, kind, centre in defects:
            image_dir = base / folder if layout == "folder" else base / "test" / folder
            image_dir.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image, mask = _pair(rng, kind, centre)
                image.save(image_dir / f"{i:03d}{ext}")
                if layout == "mvtec":
                    _save_mask(mask, base / "ground_truth" / folder / f"{i:03d}_mask.png")
                elif layout in {"visa", "goodsad"}:
                    _save_mask(mask, base / "ground_truth" / folder / f"{i:03d}.png")
                elif layout == "loco":
                    half = mask.copy()
                    half[:, SIZE // 2 :] = False
                    _save_mask(half, base / "ground_truth" / folder / f"{i:03d}" / "000.png")
                    _save_mask(mask & ~half, base / "ground_truth" / folder / f"{i:03d}" / "001.png")
                else:
                    _save_mask(mask, base / "masks" / folder / f"{i:03d}.png")
    return root
