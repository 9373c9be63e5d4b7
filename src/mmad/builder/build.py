"""Build an MMAD-style benchmark from an anomaly-detection dataset.

The output folder gets ``mmad.json`` (the official format), ``domain_knowledge.json`` when one
is used, ``build_report.json`` (counts and what was skipped, and why) and a canonical image tree
``<name>/<category>/{train,test}/<defect>/<file>`` plus masks under
``<name>/<category>/ground_truth/``: links to the source files (or copies with ``copy=True``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmad._io import atomic_write_text
from mmad.builder import geometry, questions
from mmad.builder.readers import AdSample, read_dataset
from mmad.builder.templates import descriptor, random_templates, similar_templates
from mmad.data.official import load_benchmark
from mmad.data.schema import NORMAL_FLAG, Benchmark
from mmad.errors import DatasetLayoutError

logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    """What a build produced and skipped."""

    name: str
    layout: str
    images: int = 0
    questions: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    letters: dict[str, dict[str, int]] = field(default_factory=dict)


def _check_names(name: str, samples: list[AdSample]) -> None:
    # The official scorer calls an image normal when "good" occurs anywhere in its path.
    bad = {name} | {s.category for s in samples} | {s.defect_type for s in samples if not s.is_normal}
    clashing = sorted(n for n in bad if NORMAL_FLAG in n)
    if clashing:
        msg = (
            f"{clashing} contain 'good', which MMAD's scorer reads as 'normal image' anywhere in a path; "
            "rename them (or pass --name) before building"
        )
        raise DatasetLayoutError(msg)


def _place(source: Path, target: Path, copy: bool) -> None:
    if target.exists() or target.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    else:
        target.symlink_to(source.resolve(), target_is_directory=source.is_dir())


def _split_normals(samples: list[AdSample], rng: np.random.Generator, test_share: float) -> list[AdSample]:
    """Generic folders have no train/test split: hold out a share of the normal images as test images."""
    if any(s.split == "test" and s.is_normal for s in samples):
        return samples
    out: list[AdSample] = []
    by_category: dict[str, list[AdSample]] = defaultdict(list)
    for sample in samples:
        (by_category[sample.category] if sample.is_normal else out).append(sample)
    for category, normals in by_category.items():
        order = rng.permutation(len(normals))
        n_test = round(len(normals) * test_share)
        for rank, index in enumerate(order):
            sample = normals[int(index)]
            split = "test" if rank < n_test else "train"
            out.append(AdSample(category, split, "good", sample.image, ()))
    return out


def build_benchmark(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    layout: str = "auto",
    seed: int = 0,
    templates: int = 3,
    knowledge: str | os.PathLike[str] | None = None,
    copy: bool = False,
    progress: Progress | None = None,
) -> tuple[Benchmark, BuildReport]:
    """Read an anomaly-detection dataset and write an MMAD-format benchmark into out.

    Args:
        source: the dataset root (``<root>/<category>/...``).
        out: the folder to write (created).
        name: the benchmark's source-dataset name, the first path component of every key.
        layout: ``auto`` or one of mvtec, visa, loco, goodsad, folder.
        seed: makes every choice reproducible.
        templates: how many random and similar templates each image gets.
        knowledge: a domain-knowledge json in the official format, for Object Analysis.
        copy: copy the images instead of linking them.
        progress: called with (done, total) images.
    """
    source_root = Path(source)
    target = Path(out)
    name = name or source_root.name
    used_layout, samples = read_dataset(source_root, layout)
    rng = np.random.default_rng(seed)
    samples = _split_normals(samples, rng, test_share=0.5)
    _check_names(name, samples)
    table: dict[str, dict[str, str]] = {}
    if knowledge:
        raw = json.loads(Path(knowledge).read_text(encoding="utf-8"))
        table = raw.get(name) or next(iter(raw.values()), {}) if isinstance(raw, dict) else {}
    report = BuildReport(name=name, layout=used_layout)
    balancer = questions.LetterBalancer(rng)
    by_category: dict[str, list[AdSample]] = defaultdict(list)
    for sample in samples:
        by_category[sample.category].append(sample)
    categories = sorted(by_category)
    records: dict[str, Any] = {}
    total = sum(1 for s in samples if s.split == "test")
    done = 0
    for category in categories:
        members = by_category[category]
        normals = [s for s in members if s.is_normal and s.split != "test"]
        tests = sorted((s for s in members if s.split == "test"), key=lambda s: (s.defect_type, s.image.name))
        if not normals:
            msg = f"category {category} has no normal training images to use as templates"
            raise DatasetLayoutError(msg)
        defects = sorted({s.defect_type for s in tests if not s.is_normal})
        pool = [f"{name}/{category}/train/good/{s.image.name}" for s in normals]
        for sample, key in zip(normals, pool, strict=True):
            _place(sample.image, target / key, copy)
        pool_features = np.stack([descriptor(s.image) for s in normals])
        for sample in tests:
            key = f"{name}/{category}/test/{sample.defect_type}/{sample.image.name}"
            _place(sample.image, target / key, copy)
            rgb = geometry.load_rgb(sample.image)
            record = _image_record(
                sample, rgb, name, category, defects, categories, table, balancer, rng, report, target, copy
            )
            record["random_templates"] = random_templates(pool, templates, rng)
            record["similar_templates"] = similar_templates(descriptor(rgb), pool, pool_features, templates)
            records[key] = record
            report.images += 1
            done += 1
            if progress is not None:
                progress(done, total)
    target.mkdir(parents=True, exist_ok=True)
    json_path = target / "mmad.json"
    atomic_write_text(json_path, json.dumps(records, indent=4, ensure_ascii=False))
    if table:
        atomic_write_text(target / "domain_knowledge.json", json.dumps({name: table}, indent=4, ensure_ascii=False))
    report.letters = {k: dict(sorted(v.items())) for k, v in balancer.counts.items()}
    report_data = {
        "name": report.name,
        "layout": report.layout,
        "images": report.images,
        "questions": dict(report.questions),
        "skipped": dict(report.skipped),
        "letters": report.letters,
        "seed": seed,
        "source": str(source_root.resolve()),
    }
    atomic_write_text(target / "build_report.json", json.dumps(report_data, indent=2))
    return load_benchmark(json_path), report


def _image_record(
    sample: AdSample,
    rgb: np.ndarray,
    name: str,
    category: str,
    defects: list[str],
    categories: list[str],
    table: dict[str, dict[str, str]],
    balancer: questions.LetterBalancer,
    rng: np.random.Generator,
    report: BuildReport,
    target: Path,
    copy: bool,
) -> dict[str, Any]:
    conversation = [questions.anomaly_question(sample.is_normal, balancer)]
    mask_path = ""
    if sample.is_normal:
        generated = [questions.object_question(category, categories, balancer, rng)]
        generated += questions.object_analysis_questions(category, table, balancer, rng)
        if not table:
            report.skipped["Object Analysis: no domain knowledge"] += 1
    else:
        generated = [questions.classification_question(sample.defect_type, defects, balancer, rng)]
        if sample.masks:
            mask_path = _place_masks(sample, name, category, target, copy)
            mask = geometry.load_mask(sample.masks, rgb.shape[:2])
            extent = geometry.product_extent(rgb)
            location = geometry.locate(mask, extent)
            if location is None:
                report.skipped["Defect Localization: ambiguous or empty mask"] += 1
            else:
                generated.append(questions.localization_question(location, balancer, rng))
            appearance = geometry.describe(mask, rgb, extent)
            if appearance is None:
                report.skipped["Defect Description: defect too faint or empty"] += 1
            else:
                generated.append(questions.description_question(appearance, balancer, rng))
        else:
            report.skipped["Defect Localization/Description: no mask"] += 1
        generated.append(questions.analysis_question(sample.defect_type, balancer, rng))
    conversation += [q for q in generated if q is not None]
    for qa in conversation:
        report.questions[qa["type"]] += 1
    return {"mask_path": mask_path, "conversation": conversation}


def _place_masks(sample: AdSample, name: str, category: str, target: Path, copy: bool) -> str:
    base = target / name / category
    if len(sample.masks) == 1:
        relative = f"ground_truth/{sample.defect_type}/{sample.image.stem}_mask.png"
        _place(sample.masks[0], base / relative, copy)
        return relative
    folder = f"ground_truth/{sample.defect_type}/{sample.image.stem}_mask"
    for mask in sample.masks:
        _place(mask, base / folder / mask.name, copy)
    return f"{folder}.png"  # the LOCO convention: the stem names a folder of masks
