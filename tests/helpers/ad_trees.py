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


def _regions(rng: np.random.Generator, size: int = SIZE) -> tuple[Image.Image, list[np.ndarray]]:
    """A tablet with two separate defects: the image and one mask per defect region."""
    image = normal_image("tablet", size, rng)
    first = draw_defect(image, "hole", (0.35 * size, 0.5 * size), 0.06, rng, "tablet")
    second = draw_defect(image, "stain", (0.65 * size, 0.5 * size), 0.06, rng, "tablet")
    return image, [first, second & ~first]


def make_raw_visa(
    root: Path,
    *,
    categories: tuple[str, ...] = ("candle", "pcb1"),
    n_normal: int = 6,
    n_anomaly: int = 3,
    n_train_normal: int = 4,
) -> Path:
    """VisA as downloaded: Data/Images/{Normal,Anomaly}/*.JPG, Data/Masks/Anomaly/*.png holding 1 and 2
    for the two defect regions, and split_csv/{1cls,2cls_fewshot,2cls_highshot}.csv."""
    rng = np.random.default_rng(1)
    rows: dict[str, list[tuple[str, str, str, str, str]]] = {"1cls": [], "2cls_fewshot": [], "2cls_highshot": []}
    for category in categories:
        images = root / category / "Data" / "Images"
        masks = root / category / "Data" / "Masks" / "Anomaly"
        for folder in (images / "Normal", images / "Anomaly", masks):
            folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_normal):
            normal_image("tablet", SIZE, rng).save(images / "Normal" / f"{i:04d}.JPG", format="JPEG")
            split = "train" if i < n_train_normal else "test"
            for scheme in rows:
                rows[scheme].append((category, split, "normal", f"{category}/Data/Images/Normal/{i:04d}.JPG", ""))
        for i in range(n_anomaly):
            image, regions = _regions(rng)
            image.save(images / "Anomaly" / f"{i:03d}.JPG", format="JPEG")
            labels = np.zeros((SIZE, SIZE), np.uint8)
            labels[regions[0]] = 1
            labels[regions[1]] = 2
            Image.fromarray(labels, mode="L").save(masks / f"{i:03d}.png")
            entry = (f"{category}/Data/Images/Anomaly/{i:03d}.JPG", f"{category}/Data/Masks/Anomaly/{i:03d}.png")
            rows["1cls"].append((category, "test", "anomaly", *entry))
            rows["2cls_fewshot"].append((category, "train" if i == 0 else "test", "anomaly", *entry))
            rows["2cls_highshot"].append((category, "train" if i < 2 else "test", "anomaly", *entry))
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    for scheme, lines in rows.items():
        text = "object,split,label,image,mask\n" + "".join(",".join(line) + "\n" for line in lines)
        (root / "split_csv" / f"{scheme}.csv").write_text(text)
    return root


def make_loco(
    root: Path,
    *,
    categories: tuple[str, ...] = ("breakfast_box", "pushpins"),
    n_train: int = 10,
    n_validation: int = 5,
    n_test_good: int = 2,
    n_anomalies: int = 2,
) -> Path:
    """MVTec LOCO as shipped: train/good and validation/good both numbered from 000 (different images),
    test/{good,logical_anomalies,structural_anomalies}, ground_truth/<type>/<id>/000.png, 001.png."""
    rng = np.random.default_rng(2)
    for category in categories:
        base = root / category
        for split, n in (("train", n_train), ("validation", n_validation)):
            (base / split / "good").mkdir(parents=True)
            for i in range(n):
                normal_image("tablet", SIZE, rng).save(base / split / "good" / f"{i:03d}.png")
        (base / "test" / "good").mkdir(parents=True)
        for i in range(n_test_good):
            normal_image("tablet", SIZE, rng).save(base / "test" / "good" / f"{i:03d}.png")
        for kind in ("logical_anomalies", "structural_anomalies"):
            (base / "test" / kind).mkdir(parents=True)
            for i in range(n_anomalies):
                image, regions = _regions(rng)
                image.save(base / "test" / kind / f"{i:03d}.png")
                for j, region in enumerate(regions):
                    _save_mask(region, base / "ground_truth" / kind / f"{i:03d}" / f"{j:03d}.png")
        (base / "defects_config.json").write_text("[]")
    (root / "license.txt").write_text("CC BY-NC-SA 4.0")
    return root
