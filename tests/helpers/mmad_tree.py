"""Generate small MMAD-format data roots at test time: images, masks, templates and mmad.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# (source dataset, category, split folder, abnormal folder names, template prefix)
LAYOUTS: list[tuple[str, str, str, list[str], str]] = [
    ("DS-MVTec", "bottle", "image", ["broken_large", "contamination"], "MVTec-AD/bottle/train/good"),
    (
        "MVTec-LOCO",
        "juice_bottle",
        "test",
        ["logical_anomalies", "structural_anomalies"],
        "MVTec-LOCO/juice_bottle/train/good",
    ),
    ("VisA", "candle", "test", ["bad"], "VisA/candle/train/good"),
    ("GoodsAD", "drink_can", "test", ["surface_damage"], "GoodsAD/drink_can/train/good"),
]
EXT = {"DS-MVTec": ".png", "MVTec-LOCO": ".png", "VisA": ".JPG", "GoodsAD": ".jpg"}

ABNORMAL_QUESTIONS = [
    ("Is there any defect in the object?", {"A": "Yes.", "B": "No."}, "A", "Anomaly Detection"),
    (
        "There is a defect in the object. What is the type of the defect?",
        {"A": "A scratch.", "B": "Contamination.", "C": "A large break.", "D": "A crack."},
        "C",
        "Defect Classification",
    ),
    (
        "There is a defect in the object. Where is the defect?",
        {"A": "At the bottom", "B": "Around the edges", "C": "Around the center", "D": "Top left"},
        "B",
        "Defect Localization",
    ),
    (
        "There is a defect in the object. What is the appearance of the defect?",
        {"A": "A dark spot.", "B": "A bright line.", "C": "A missing piece.", "D": "A bent edge."},
        "C",
        "Defect Description",
    ),
    (
        "There is a defect in the object. What is the potential effect of the defect?",
        {"A": "Leakage.", "B": "None.", "C": "Better grip.", "D": "Brighter colour."},
        "A",
        "Defect Analysis",
    ),
]
NORMAL_QUESTIONS = [
    ("Is there any defect in the object?", {"A": "Yes.", "B": "No."}, "B", "Anomaly Detection"),
    (
        "What kind of product is in the image?",
        {"A": "A bottle.", "B": "A cable.", "C": "A screw.", "D": "A pill."},
        "A",
        "Object Classification",
    ),
    (
        "What is the shape of the object's opening?",
        {"A": "Square.", "B": "Round.", "C": "Oval.", "D": "None."},
        "B",
        "Object Structure",
    ),
    (
        "What colour is the object?",
        {"A": "Red.", "B": "Blue.", "C": "Brown.", "D": "Green."},
        "C",
        "Object Details",
    ),
]


def _image(path: Path, seed: int, size: int = 32) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _mask(path: Path, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size, size), dtype=np.uint8)
    array[4:12, 4:12] = 255
    Image.fromarray(array).save(path)


def _qa(spec: tuple[str, dict[str, str], str, str]) -> dict[str, Any]:
    stem, options, answer, qtype = spec
    return {"Question": stem, "Options": dict(options), "Answer": answer, "type": qtype, "annotation": True}


def make_mmad_tree(root: Path, *, per_group: int = 2, images: bool = True) -> Path:
    """Write an MMAD-shaped data root with all eight types across the four sources; return mmad.json."""
    data: dict[str, Any] = {}
    seed = 0
    for dataset, category, split, defects, template_dir in LAYOUTS:
        ext = EXT[dataset]
        templates = [f"{template_dir}/{i:03d}{ext}" for i in range(3)]
        if images:
            for t in templates:
                seed += 1
                _image(root / t, seed)
        for folder in ["good", *defects]:
            for index in range(per_group):
                key = f"{dataset}/{category}/{split}/{folder}/{index:03d}{ext}"
                mask_path = ""
                if folder != "good":
                    mask_path = f"ground_truth/{folder}/{index:03d}_mask.png"
                    if images:
                        if dataset == "MVTec-LOCO":
                            _mask(root / dataset / category / f"ground_truth/{folder}/{index:03d}_mask" / "000.png")
                        else:
                            _mask(root / dataset / category / mask_path)
                if images:
                    seed += 1
                    _image(root / key, seed)
                questions = NORMAL_QUESTIONS if folder == "good" else ABNORMAL_QUESTIONS
                data[key] = {
                    "mask_path": mask_path,
                    "random_templates": templates[index % 3 :] + templates[: index % 3],
                    "similar_templates": list(reversed(templates)),
                    "conversation": [_qa(q) for q in questions],
                }
    path = root / "mmad.json"
    path.write_text(json.dumps(data, indent=4))
    return path
